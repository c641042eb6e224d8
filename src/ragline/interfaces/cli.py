"""The ``ragline`` command line: ingest, ask, chat, ls, rm, serve, doctor, eval.

Heavy libraries load only inside the command that needs them, so ``ragline --help`` stays instant.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from ragline.errors import ConfigError, InputError, RaglineError, validation_message


def _settings(ctx: click.Context, **overrides: Any) -> Any:
    from pydantic import ValidationError

    from ragline.settings import Settings

    try:
        return Settings(**{k: v for k, v in {**ctx.obj, **overrides}.items() if v is not None})
    except ValidationError as err:
        raise ConfigError(f"invalid settings: {validation_message(err)}") from err


def _app(ctx: click.Context, **overrides: Any) -> Any:
    from ragline.compose import Ragline

    return Ragline(_settings(ctx, **overrides))


def _pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    out = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key.strip():
            raise InputError(f"{what} takes key=value, got {value!r}")
        out[key.strip()] = val.strip()
    return out


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except RaglineError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)


def _run_ingest(app: Any, items: Any, total: Any, tags: tuple[str, ...] = ()) -> Any:
    """Run the ingestor, with a progress bar on a terminal (``total`` is called only then).

    Elsewhere (a log file, CI) a plain line every ``progress_seconds`` (``RAGLINE_PROGRESS_SECONDS``) tells
    how far a long run is, so a log never sits silent for an hour.
    """
    if not sys.stderr.isatty():
        every = app.settings.progress_seconds
        started = last = time.monotonic()

        def log(done: int, chunks: int) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last >= every:
                last = now
                click.echo(f"ingesting: {done} documents, {chunks} chunks, "
                           f"{chunks / max(now - started, 1e-9):.0f} chunks/s", err=True)

        return app.ingestor.run(items, tags=tags, progress=log)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[chunks]} chunks, {task.fields[rate]:.0f}/s"), TimeRemainingColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("ingesting", total=total(), chunks=0, rate=0.0)

        def show(done: int, chunks: int) -> None:
            elapsed = bar.tasks[task].elapsed or 0.0
            bar.update(task, completed=done, chunks=chunks, rate=chunks / elapsed if elapsed else 0.0)

        return app.ingestor.run(items, tags=tags, progress=show)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(path_type=Path), help="Index folder (RAGLINE_HOME, default .ragline).")
@click.option("--tenant", help="Owner of the documents read and written (RAGLINE_TENANT).")
@click.option("-v", "--verbose", is_flag=True, help="Log one structured line per stage to stderr.")
@click.pass_context
def cli(ctx: click.Context, home: Path | None, tenant: str | None, verbose: bool) -> None:
    """Answers from your own documents, with verified citations."""
    ctx.obj = {"home": home, "tenant": tenant}
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s", stream=sys.stderr)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@click.pass_context
def doctor(ctx: click.Context, as_json: bool) -> None:
    """Show which part is configured for what, and check that each one answers (exit 1 if one fails)."""
    from ragline.interfaces.doctor import checks, render

    with _errors():
        results = checks(_app(ctx))
    if as_json:
        click.echo(json.dumps([c.as_dict() for c in results], indent=2))
    else:
        click.echo(render(results))
    if any(c.status == "failed" for c in results):
        sys.exit(1)


@cli.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--tag", "tags", multiple=True, help="key=value stored with every chunk (filter with --where).")
@click.option("--chunk-tokens", type=int, help="Chunk size in embedding tokens.")
@click.option("--chunk-overlap", type=int, help="Overlap between chunks in tokens.")
@click.pass_context
def ingest(ctx: click.Context, paths: tuple[str, ...], tags: tuple[str, ...],
           chunk_tokens: int | None, chunk_overlap: int | None) -> None:
    """Ingest files, folders, globs and JSONL corpora (txt md html pdf docx pptx xlsx csv jsonl[.gz])."""
    from ragline.ingest.pipeline import count_items, expand_paths, source_items

    with _errors():
        app = _app(ctx, chunk_tokens=chunk_tokens, chunk_overlap=chunk_overlap)
        tag_pairs = tuple(f"{k}={v}" for k, v in _pairs(tags, "--tag").items())
        files = expand_paths(paths)
        items = source_items(files, app.settings.max_file_bytes)
        report = _run_ingest(app, items, lambda: count_items(files), tag_pairs)
        for doc_id, reason in report.failed:
            click.echo(f"failed: {doc_id}: {reason}", err=True)
        click.echo(report.summary())


def _print_sources(answer: Any) -> None:
    click.echo("\nSources:")
    cited = {c.number for c in answer.citations}
    for s in answer.sources:
        where = f" — {s.location}" if s.location else ""
        mark = "*" if s.number in cited else " "
        click.echo(f" {mark}[{s.number}] {s.doc_id}{where} (score {s.score:.3f})")
    if answer.invalid_citations:
        click.echo(f"({answer.invalid_citations} citation(s) to sources that were not retrieved were removed)")
    if answer.partial:
        click.echo(f"(partial answer: {answer.partial_reason})")
    if answer.cache == "hit":
        click.echo("(answered from the cache)")


def _stream_answer(app: Any, query: Any, as_json: bool) -> Any:
    from ragline.types import Done, Token

    answer = None
    for event in app.engine.stream(query):
        if isinstance(event, Token) and not as_json:
            click.echo(event.text, nl=False)
        elif isinstance(event, Done):
            answer = event.answer
    if answer is None:  # pragma: no cover - the engine always ends with Done
        raise RaglineError("the answer stream ended early")
    if as_json:
        click.echo(json.dumps(answer.as_dict(), indent=2))
    else:
        click.echo()
        _print_sources(answer)
    return answer


@cli.command()
@click.argument("question")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of streaming.")
@click.option("--where", "where", multiple=True, help="Filter: key=value (language, source, doc_id, or a tag).")
@click.option("--k", type=int, help="Sources to retrieve.")
@click.option("--model", help="Generator: local, extractive or openai.")
@click.option("--mode", type=click.Choice(["hybrid", "vector", "bm25"]), help="Retrieval mode.")
@click.option("--max-tokens", type=int, help="Answer length limit in tokens.")
@click.option("--show-prompt", is_flag=True, help="Print the exact prompt sent to the model first.")
@click.option("--deadline", type=float, help="Seconds for the whole answer; then it is returned partial.")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the answer cache.")
@click.option("--image", "images", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A picture to send with the question (png, jpg, gif, webp), for models that take images.")
@click.pass_context
def ask(ctx: click.Context, question: str, as_json: bool, where: tuple[str, ...], k: int | None,
        model: str | None, mode: str | None, max_tokens: int | None, show_prompt: bool,
        deadline: float | None, no_cache: bool, images: tuple[Path, ...]) -> None:
    """Answer a question from the ingested documents, streaming tokens, then the sources."""
    from ragline.query.engine import Query
    from ragline.types import Image

    with _errors():
        app = _app(ctx, chat_model=model, k=k, retrieval=mode, max_tokens=max_tokens, deadline=deadline)
        s = app.settings
        query = Query(question, _pairs(where, "--where"), s.k, s.retrieval, max_tokens=s.max_tokens,
                      deadline=s.deadline, use_cache=not no_cache,
                      images=[Image.from_bytes(p.read_bytes(), p.name) for p in images])
        if show_prompt:
            app.engine.check(query)
            hits = app.engine.retrieve(question, k=query.k, mode=query.mode, filters=query.filters)
            messages, _ = app.engine.prompt(query, app.engine.sources(hits))
            for m in messages:
                click.echo(f"--- {m.role} ---\n{m.content}")
            click.echo("--- answer ---")
        _stream_answer(app, query, as_json)


@cli.command()
@click.option("--model", help="Generator: local, extractive or openai.")
@click.option("--where", "where", multiple=True, help="Filter: key=value.")
@click.pass_context
def chat(ctx: click.Context, model: str | None, where: tuple[str, ...]) -> None:
    """Ask questions in a loop; the conversation is kept. CTRL-D exits."""
    from ragline.query.engine import Query
    from ragline.types import Message

    with _errors():
        app = _app(ctx, chat_model=model)
        filters = _pairs(where, "--where")
        history: list[Message] = []
        while True:
            try:
                question = input("\nAsk a question, start a new search, or CTRL-D to exit: ").strip()
            except EOFError:
                click.echo()
                return
            if not question:
                continue
            try:
                query = Query(question, filters, app.settings.k, app.settings.retrieval, tuple(history[-4:]),
                              app.settings.max_tokens, app.settings.deadline)
                answer = _stream_answer(app, query, False)
            except InputError as err:
                click.echo(f"error: {err}", err=True)
                continue
            history += [Message("user", question), Message("assistant", answer.text)]


@cli.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
@click.argument("prefix", default="")
@click.pass_context
def list_documents(ctx: click.Context, as_json: bool, prefix: str) -> None:
    """List ingested documents with status, chunks, size and ingestion time."""
    import datetime as dt

    with _errors():
        app = _app(ctx)
        for r in app.registry.list(app.settings.tenant, prefix):
            when = dt.datetime.fromtimestamp(r.ingested_at).isoformat(timespec="seconds")
            if as_json:
                click.echo(json.dumps({**r.as_dict(), "ingested_at": when}))
            else:
                note = f"  {r.error}" if r.error else ""
                click.echo(f"{r.status:6} {r.chunks:5} chunks {r.bytes:>10,} B  {when}  {r.doc_id}{note}")


@cli.command("rm")
@click.argument("doc_ids", nargs=-1, required=True)
@click.pass_context
def remove(ctx: click.Context, doc_ids: tuple[str, ...]) -> None:
    """Remove documents (every chunk and the registry row)."""
    from ragline.errors import NotFoundError

    with _errors():
        app = _app(ctx)
        missing = [d for d in doc_ids if not app.ingestor.remove(d)]
        for d in doc_ids:
            if d not in missing:
                click.echo(f"removed {d}")
        if missing:
            raise NotFoundError(f"no such document: {', '.join(missing)} (see `ragline ls`)")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (loopback by default).")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--model", help="Generator: local, extractive or openai.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, model: str | None) -> None:
    """Serve the HTTP API (JSON, SSE, OpenAI-compatible); OpenAPI spec at /openapi.json."""
    import uvicorn

    from ragline.compose import Ragline
    from ragline.interfaces.http import create_app

    with _errors():
        settings = _settings(ctx, chat_model=model)
        if settings.auth == "none" and host not in ("127.0.0.1", "localhost", "::1"):
            raise ConfigError(f"auth=none serves only on loopback; set RAGLINE_AUTH=api_key or jwt to bind {host}")
        app = create_app(Ragline(settings))
        click.echo(f"ragline serving on http://{host}:{port}  (OpenAPI: http://{host}:{port}/docs)", err=True)
        uvicorn.run(app, host=host, port=port, log_level="warning")


@cli.group("keys")
def keys_group() -> None:
    """API keys for the HTTP service (RAGLINE_AUTH=api_key); each key belongs to one tenant."""


@keys_group.command("create")
@click.option("--tenant", "key_tenant", required=True, help="The tenant the key acts for.")
@click.option("--name", default="", help="A label to recognise the key by.")
@click.pass_context
def keys_create(ctx: click.Context, key_tenant: str, name: str) -> None:
    """Create a key and print it once (only its hash is stored)."""
    from ragline.interfaces.auth import create_key

    with _errors():
        key_id, key = create_key(_app(ctx).registry, key_tenant, name)
        click.echo(f"id {key_id} for tenant {key_tenant}: {key}")
        click.echo("Store the key now: it cannot be shown again.", err=True)


@keys_group.command("list")
@click.pass_context
def keys_list(ctx: click.Context) -> None:
    """List keys (id, tenant, name, created, revoked), never the keys themselves."""
    import datetime as dt

    with _errors():
        for key_id, key_tenant, name, created, revoked in _app(ctx).registry.key_list():
            when = dt.datetime.fromtimestamp(created).isoformat(timespec="seconds")
            state = "revoked" if revoked else "active"
            click.echo(f"{key_id}  {state:7}  {key_tenant}  {when}  {name}")


@keys_group.command("revoke")
@click.argument("key_id")
@click.pass_context
def keys_revoke(ctx: click.Context, key_id: str) -> None:
    """Revoke a key by its id."""
    from ragline.errors import NotFoundError

    with _errors():
        if not _app(ctx).registry.key_revoke(key_id):
            raise NotFoundError(f"no active key with id {key_id}")
        click.echo(f"revoked {key_id}")


@cli.group("cache")
def cache_group() -> None:
    """Inspect or clear the answer cache."""


@cache_group.command("stats")
@click.pass_context
def cache_stats(ctx: click.Context) -> None:
    """Cached answers stored (live and expired) and the tenant's index version."""
    with _errors():
        app = _app(ctx)
        stats = app.cache.stats() if app.cache is not None else {"enabled": 0}
        stats["index_version"] = app.registry.index_version(app.settings.tenant)
        click.echo(json.dumps(stats))


@cache_group.command("clear")
@click.pass_context
def cache_clear(ctx: click.Context) -> None:
    """Drop every cached answer of this tenant."""
    from ragline.query.cache import AnswerCache

    with _errors():
        app = _app(ctx)
        removed = AnswerCache(app.registry).clear(app.settings.tenant)
        click.echo(f"cleared {removed} cached answer(s)")


@cli.group("workflow")
def workflow_group() -> None:
    """Prompt chains and parallel prompts as data (YAML): run locally, or export to AWS Step Functions."""


@workflow_group.command("run")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--input", "input_json", default="{}", help="The workflow's input, as a JSON object.")
@click.option("--sequential", is_flag=True, help="One model call at a time (to compare with the parallel run).")
@click.option("--no-cache", is_flag=True, help="Ignore the workflow's cache block.")
@click.pass_context
def workflow_run(ctx: click.Context, file: Path, input_json: str, sequential: bool, no_cache: bool) -> None:
    """Run a workflow with asyncio and print its result (outputs, timings per step) as JSON."""
    from ragline.providers.chat import workflow_models
    from ragline.workflows.run import load_workflow, run_workflow

    with _errors():
        try:
            inputs = json.loads(input_json)
        except json.JSONDecodeError as err:
            raise InputError(f"--input is not valid JSON: {err}") from err
        if not isinstance(inputs, dict):
            raise InputError("--input must be a JSON object")
        workflow = load_workflow(file)
        app = _app(ctx)
        models = workflow_models(app.settings, app.embedder, workflow.max_concurrency)
        cache = None if no_cache else app.registry
        result = run_workflow(workflow, inputs, models, cache=cache, sequential=sequential)
        click.echo(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))


@workflow_group.command("export")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--bedrock-model", default=None, help="Bedrock model id for steps that name a local model.")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write the definition here (default stdout).")
def workflow_export(file: Path, bedrock_model: str | None, output: Path | None) -> None:
    """Write the AWS Step Functions state machine (ASL JSON) that runs the workflow on Bedrock."""
    from ragline.workflows.export import DEFAULT_BEDROCK_MODEL, export_asl
    from ragline.workflows.run import load_workflow

    with _errors():
        definition = json.dumps(export_asl(load_workflow(file), bedrock_model=bedrock_model or DEFAULT_BEDROCK_MODEL),
                                indent=2)
        if output is None:
            click.echo(definition)
        else:
            output.write_text(definition + "\n", encoding="utf-8")
            click.echo(f"wrote {output}")


@cli.group("eval")
def eval_group() -> None:
    """Measure retrieval (and later answer) quality."""


@eval_group.command("retrieval")
@click.option("--beir", "beir", type=click.Path(path_type=Path, exists=True, file_okay=False), required=True,
              help="BEIR folder: corpus.jsonl[.gz], queries.jsonl, qrels/SPLIT.tsv")
@click.option("--split", default="test", show_default=True)
@click.option("--limit", type=int, help="Evaluate only the first N queries.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.pass_context
def eval_retrieval(ctx: click.Context, beir: Path, split: str, limit: int | None, as_json: bool) -> None:
    """nDCG@10, recall@10/100 and MRR@10 for vector, BM25 and hybrid retrieval."""
    from ragline.eval.beir import beir_corpus, evaluate, format_table, load_queries
    from ragline.ingest.pipeline import source_items

    with _errors():
        home = ctx.obj.get("home") or Path(".ragline-eval") / beir.resolve().name
        app = _app(ctx, home=home, chat_model="extractive")
        report = app.ingestor.run(source_items([beir_corpus(beir)], app.settings.max_file_bytes))
        click.echo(report.summary(), err=True)
        queries, qrels = load_queries(beir, split)
        if limit:
            queries = dict(list(queries.items())[:limit])
        results = evaluate(app.engine, queries, qrels)
        click.echo(json.dumps(results, indent=2) if as_json else format_table(results))


@eval_group.command("qa")
@click.option("--qa", "qa_csv", type=click.Path(path_type=Path, exists=True, dir_okay=False), required=True,
              help="CSV: a question, a reference answer and the gold document(s) per row.")
@click.option("--corpus", "corpus", multiple=True, required=True,
              help="Documents to answer from: files, folders, globs or a JSONL corpus (repeatable).")
@click.option("--max-docs", type=int, help="Ingest only the gold documents and others up to N in all.")
@click.option("--model", help="Generator: local, extractive, openai or bedrock.")
@click.option("--max-tokens", type=int, default=128, show_default=True, help="Answer length limit in tokens.")
@click.option("--k", type=int, default=5, show_default=True, help="Sources given to the model.")
@click.option("--mode", type=click.Choice(["hybrid", "vector", "bm25"]), default="hybrid", show_default=True)
@click.option("--limit", type=int, help="Evaluate only the first N questions.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("eval-report"),
              show_default=True, help="Folder for qa.json and qa.html.")
@click.pass_context
def eval_qa(ctx: click.Context, qa_csv: Path, corpus: tuple[str, ...], max_docs: int | None, model: str | None,
            max_tokens: int, k: int, mode: str, limit: int | None, out: Path) -> None:
    """Answer quality: hit@k and MRR of the gold document, citations, token-F1, ROUGE-L, "I don't know", latency."""
    from ragline.eval import qa as qa_eval
    from ragline.eval.report import render
    from ragline.ingest.pipeline import count_items, expand_paths, source_items

    with _errors():
        items = qa_eval.load_qa(qa_csv)[:limit] if limit else qa_eval.load_qa(qa_csv)
        files = expand_paths(corpus)
        home = ctx.obj.get("home") or Path(".ragline-eval") / f"{qa_csv.parent.name}-{max_docs or 'all'}"
        app = _app(ctx, home=home, chat_model=model)
        limit_bytes = app.settings.max_file_bytes
        documents = source_items(files, limit_bytes)
        if max_docs is None:  # every document: one pass over the corpus
            report = _run_ingest(app, documents, lambda: count_items(files))
        else:  # a first pass for the ids, then only the chosen ones are read again
            chosen = qa_eval.select_documents([i.doc_id for i in documents], items, max_docs)
            report = _run_ingest(app, (i for i in source_items(files, limit_bytes) if i.doc_id in chosen),
                                 lambda: len(chosen))
        click.echo(report.summary(), err=True)
        for doc_id, reason in report.failed:
            click.echo(f"failed: {doc_id}: {reason}", err=True)

        def show(done: int, result: qa_eval.QAResult) -> None:
            rank = result.gold_rank or "-"
            click.echo(f"[{done}/{len(items)}] gold rank {rank}, F1 {result.f1:.2f}, "
                       f"{result.timings_ms.get('total', 0):.0f} ms: {result.question[:70]}", err=True)

        results = qa_eval.run(app.engine, items, k=k, mode=mode, max_tokens=max_tokens, progress=show)
        settings = {"qa": str(qa_csv), "corpus": ", ".join(corpus), "documents": report.documents,
                    "chunks": app.store.count(), "model": app.generator.name, "max_tokens": max_tokens, "k": k,
                    "mode": mode, "embedder": app.embedder.name}
        qa_report = qa_eval.QAReport(settings, qa_eval.aggregate(results), results)
        out.mkdir(parents=True, exist_ok=True)
        (out / "qa.json").write_text(json.dumps(qa_report.as_dict(), indent=2) + "\n", encoding="utf-8")
        (out / "qa.html").write_text(render(qa_report), encoding="utf-8")
        click.echo(qa_eval.format_summary(qa_report.summary))
        click.echo(f"wrote {out / 'qa.json'} and {out / 'qa.html'}")


def main() -> None:
    """Entry point of the ``ragline`` script."""
    cli()


if __name__ == "__main__":
    main()
