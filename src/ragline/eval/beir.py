"""Retrieval evaluation on a BEIR-format set: nDCG@10, recall@10, recall@100 and MRR@10 per retrieval mode."""

from __future__ import annotations

import csv
import gzip
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from ragline.errors import InputError
from ragline.query.engine import Engine

METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")


def _open_text(path: Path) -> Path:
    for candidate in (path, path.with_name(path.name + ".gz")):
        if candidate.exists():
            return candidate
    raise InputError(f"missing BEIR file: {path}(.gz)")


def beir_corpus(folder: Path) -> Path:
    """The corpus file of a BEIR folder (``corpus.jsonl`` or ``.jsonl.gz``)."""
    return _open_text(folder / "corpus.jsonl")


def load_queries(folder: Path, split: str) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """Queries that have judgments in the split, and the judgments (query → doc → grade)."""
    qrels: dict[str, dict[str, int]] = {}
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.exists():
        raise InputError(f"missing BEIR file: {qrels_path}")
    with qrels_path.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            if int(row["score"]) > 0:
                qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    path = _open_text(folder / "queries.jsonl")
    opener = gzip.open if path.suffix == ".gz" else open
    queries: dict[str, str] = {}
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            if str(record["_id"]) in qrels:
                queries[str(record["_id"])] = record["text"]
    return queries, qrels


def score_ranking(ranked: Sequence[str], relevant: Mapping[str, int]) -> dict[str, float]:
    """The four metrics for one query's ranked document ids."""
    dcg = sum(
        (2 ** relevant.get(d, 0) - 1) / math.log2(i + 2) for i, d in enumerate(ranked[:10])
    )
    ideal = sorted(relevant.values(), reverse=True)[:10]
    idcg = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))
    mrr = next((1.0 / (i + 1) for i, d in enumerate(ranked[:10]) if d in relevant), 0.0)
    return {
        "ndcg@10": dcg / idcg if idcg else 0.0,
        "recall@10": len(set(ranked[:10]) & set(relevant)) / len(relevant),
        "recall@100": len(set(ranked[:100]) & set(relevant)) / len(relevant),
        "mrr@10": mrr,
    }


def evaluate(
    engine: Engine, queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]],
    modes: Sequence[str] = ("vector", "bm25", "hybrid"),
) -> dict[str, dict[str, float]]:
    """Mean of each metric per mode; documents ranked by their best chunk."""
    results: dict[str, dict[str, float]] = {}
    for mode in modes:
        totals = dict.fromkeys(METRICS, 0.0)
        for qid, text in queries.items():
            hits = engine.retrieve(text, k=200, mode=mode)
            ranked = list(dict.fromkeys(h.chunk.doc_id for h in hits))
            for name, value in score_ranking(ranked, qrels[qid]).items():
                totals[name] += value
        results[mode] = {name: total / max(len(queries), 1) for name, total in totals.items()}
    return results


def format_table(results: Mapping[str, Mapping[str, float]]) -> str:
    """A Markdown table of the results."""
    lines = ["| mode | " + " | ".join(METRICS) + " |", "| --- |" + " ---: |" * len(METRICS)]
    lines += [f"| {mode} | " + " | ".join(f"{r[m]:.3f}" for m in METRICS) + " |" for mode, r in results.items()]
    return "\n".join(lines)
