"""The answer cache: hits skip the store and the model; any ingest or delete makes old answers unreachable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from ragline.ingest.pipeline import expand_paths, source_items
from ragline.query.cache import AnswerCache, normalise
from ragline.query.engine import Query
from ragline.testing.fakes import FaultyOpenAIServer
from ragline.types import Message

from conftest import write

LEX = "# What Is Amazon Lex?\n\nAmazon Lex is an AWS service for building conversational interfaces.\n"


def ingest(app, folder):
    return app.ingestor.run(source_items(expand_paths([str(folder)])))


def test_second_ask_is_a_hit_that_calls_no_model(make_app, tmp_path) -> None:
    with FaultyOpenAIServer(["ok"]) as server:
        app = make_app(chat_model="openai", openai_base_url=server.base_url, cache=True)
        write(tmp_path / "kb", "lex.md", LEX)
        ingest(app, tmp_path / "kb")
        first = app.engine.ask(Query("What is Amazon Lex?", k=1))
        second = app.engine.ask(Query("  what is amazon lex  ", k=1))  # same question, normalised
        other_k = app.engine.ask(Query("What is Amazon Lex?", k=2))
    assert (first.cache, second.cache, other_k.cache) == ("miss", "hit", "miss")
    assert second.text == first.text
    assert [s.as_dict() for s in second.sources] == [s.as_dict() for s in first.sources]
    assert len(server.requests) == 2  # the hit never reached the model


def test_ingest_and_delete_bump_the_index_version(make_app, tmp_path) -> None:
    app = make_app(cache=True)
    write(tmp_path / "kb", "lex.md", LEX)
    ingest(app, tmp_path / "kb")
    assert app.engine.ask(Query("What is Amazon Lex?")).cache == "miss"
    assert app.engine.ask(Query("What is Amazon Lex?")).cache == "hit"
    write(tmp_path / "kb", "lex.md", LEX + "\nAmazon Lex V2 adds streaming conversations.\n")
    ingest(app, tmp_path / "kb")
    after_update = app.engine.ask(Query("What is Amazon Lex?"))
    assert after_update.cache == "miss"
    app.ingestor.remove(app.registry.list("default")[0].doc_id)
    after_delete = app.engine.ask(Query("What is Amazon Lex?"))
    assert after_delete.cache == "miss" and after_delete.sources == []


def test_conversation_turns_are_not_cached_unless_configured(make_app, tmp_path) -> None:
    history = (Message("user", "hi"), Message("assistant", "hello"))
    app = make_app(cache=True)
    write(tmp_path / "kb", "lex.md", LEX)
    ingest(app, tmp_path / "kb")
    assert app.engine.ask(Query("What is Amazon Lex?", history=history)).cache == "off"
    assert app.engine.ask(Query("What is Amazon Lex?", history=history)).cache == "off"
    chatty = make_app(cache=True, cache_conversations=True)
    assert chatty.engine.ask(Query("What is Amazon Lex?", history=history)).cache == "miss"


def test_ttl_and_normalisation(make_app) -> None:
    now = [1000.0]
    app = make_app()
    cache = AnswerCache(app.registry, ttl=10, clock=lambda: now[0])
    key = cache.key(question="Q?", filters={}, k=1, mode="hybrid", tenant="t", model="m")
    cache.put(key, "t", {"x": 1})
    assert cache.get(key) == {"x": 1}
    fresh = AnswerCache(app.registry, ttl=10, clock=lambda: now[0])  # a new process: from SQLite
    now[0] += 11
    assert fresh.get(key) is None
    assert normalise("  What IS   Lex?? ") == "what is lex"


def test_a_cold_process_answers_from_the_cache_without_loading_store_or_models(tmp_path) -> None:
    write(tmp_path / "kb", "lex.md", LEX)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGLINE_")}
    env.update(RAGLINE_HOME=str(tmp_path / "home"), RAGLINE_CHAT_MODEL="extractive",
               RAGLINE_CONFIG=str(tmp_path / "absent.toml"))
    ask = [sys.executable, "-m", "ragline", "ask", "--json", "What is Amazon Lex?"]
    subprocess.run([sys.executable, "-m", "ragline", "ingest", str(tmp_path / "kb")], env=env, check=True,
                   capture_output=True)
    assert json.loads(subprocess.run(ask, env=env, check=True, capture_output=True).stdout)["cache"] == "miss"
    probe = textwrap.dedent("""
        import json, sys
        from ragline.compose import Ragline
        from ragline.query.engine import Query
        answer = Ragline().engine.ask(Query("What is Amazon Lex?"))
        heavy = sorted(m for m in ("lancedb", "onnxruntime", "llama_cpp", "pyarrow") if m in sys.modules)
        print(json.dumps({"cache": answer.cache, "heavy": heavy}))
    """)
    out = json.loads(subprocess.run([sys.executable, "-c", probe], env=env, check=True, capture_output=True).stdout)
    assert out == {"cache": "hit", "heavy": []}


def test_cache_cli(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGLINE_")}
    env.update(RAGLINE_HOME=str(tmp_path / "home"), RAGLINE_CONFIG=str(tmp_path / "absent.toml"))
    run = [sys.executable, "-m", "ragline", "cache"]
    stats = json.loads(subprocess.run([*run, "stats"], env=env, check=True, capture_output=True, text=True).stdout)
    assert stats == {"entries": 0, "expired": 0, "hits": 0, "misses": 0, "index_version": 0}
    out = subprocess.run([*run, "clear"], env=env, check=True, capture_output=True, text=True).stdout
    assert out == "cleared 0 cached answer(s)\n"
