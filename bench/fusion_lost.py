"""Two ways to rank the right passage first that were measured and lost, kept so that the figures can be checked.

    uv run python bench/fusion_lost.py --home .ragline-eval/aws-docs-400 --qa ../shared/data/aws-docs/qa.csv

Against the default (``rrf-firsts``) on the same vector and BM25 rankings as ``bench/fusion.py`` (hit@1 and hit@k
of the gold page among the k sources):

- **headings as a field of their own**: a second full-text index over each chunk's title and heading path (built
  in a temporary folder; the home is not changed), fused with the two rankings by RRF at a lower weight;
- **sentence windows at query time**: the fused top N re-ranked by RRF of the fused order and the order of each
  chunk's best sentence (its cosine to the question, sentences cut by the extractive answerer's segmenter and
  embedded by the index's own model).
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from fusion import Rankings, rankings

from ragline.compose import Ragline
from ragline.eval.qa import gold_rank, load_qa
from ragline.ingest.pipeline import embed_in_batches
from ragline.providers.local.sentences import units
from ragline.query.retrieval import fuse
from ragline.settings import Settings
from ragline.types import breadcrumb


def weighted_rrf(lists: Sequence[tuple[Sequence[str], float]], k_rrf: int = 60) -> list[str]:
    scores: dict[str, float] = {}
    for ids, weight in lists:
        for rank, cid in enumerate(ids, start=1):
            scores[cid] = scores.get(cid, 0.0) + weight / (k_rrf + rank)
    return sorted(scores, key=lambda c: (-scores[c], c))


def keep_first(order: list[str], r: Rankings, k: int) -> list[str]:
    """``order`` with the vector search's first hit among its first ``k`` (in the k-th place), as the default does."""
    first = r["vector"][0].chunk.id if r["vector"] else None
    if first is None or first in order[:k]:
        return order
    return [*order[: k - 1], first, *(c for c in order[k - 1:] if c != first)]


def heading_rankings(app: Ragline, questions: Sequence[str], depth: int, docs: dict[str, str]) -> list[list[str]]:
    """Each question's chunks ranked by BM25 over title and heading path only (``docs``: chunk id to its page)."""
    import lancedb
    from lancedb.index import FTS

    rows = app.store._open().search().select(["id", "doc_id", "title", "heading"]).limit(10**8).to_list()  # type: ignore[attr-defined]

    def head(row: dict[str, Any]) -> str:
        return breadcrumb(row["title"] or "", row["heading"] or "")

    docs.update({r["id"]: r["doc_id"] for r in rows})
    with tempfile.TemporaryDirectory() as folder:
        table = lancedb.connect(folder).create_table("heads", data=[{"id": r["id"], "head": head(r)} for r in rows])
        table.create_index("head", config=FTS(with_position=False, stem=True, remove_stop_words=True))
        return [[h["id"] for h in table.search(q.replace('"', " "), query_type="fts", fts_columns="head")
                 .limit(depth).to_list()] for q in questions]


def best_sentence_order(app: Ragline, question: str, ids: Sequence[str], texts: dict[str, str]) -> list[str]:
    """``ids`` ordered by the cosine of each chunk's best sentence to the question."""
    cut = {cid: [u.text for u in units(texts[cid])] or [texts[cid][:500]] for cid in ids}
    flat = [s for cid in ids for s in cut[cid]]
    vectors = embed_in_batches(app.embedder, [question, *flat], 32)
    sims = vectors[1:] @ vectors[0]
    best: dict[str, float] = {}
    at = 0
    for cid in ids:
        best[cid] = float(np.max(sims[at:at + len(cut[cid])]))
        at += len(cut[cid])
    return sorted(ids, key=lambda c: -best[c])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--qa", type=Path, required=True)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--depth", type=int, default=50)
    args = parser.parse_args()
    app = Ragline(Settings(home=args.home, cache=False))
    items = load_qa(args.qa)
    questions = [i.question for i in items]
    ranked: list[Rankings] = rankings(app, questions, args.depth)
    docs = {h.chunk.id: h.chunk.doc_id for r in ranked for hits in r.values() for h in hits}
    texts = {h.chunk.id: h.chunk.text for r in ranked for hits in r.values() for h in hits}
    base = [keep_first([h.chunk.id for h in fuse(r, args.depth * 2, 60)], r, args.k) for r in ranked]
    heads = heading_rankings(app, questions, args.depth, docs)
    variants: dict[str, list[list[str]]] = {"rrf-firsts (default)": base}
    for weight in (0.3, 1.0):
        variants[f"headings field, weight {weight:g}"] = [
            keep_first(weighted_rrf([([h.chunk.id for h in r["vector"]], 1.0), ([h.chunk.id for h in r["bm25"]], 1.0),
                                     (hs, weight)]), r, args.k) for r, hs in zip(ranked, heads, strict=True)]
    for top in (10, 20):
        variants[f"best sentence, top {top}"] = [
            keep_first(weighted_rrf([(ids[:top], 1.0), (best_sentence_order(app, q, ids[:top], texts), 1.0)], 5)
                       + ids[top:], r, args.k) for q, ids, r in zip(questions, base, ranked, strict=True)]
    for name, orders in variants.items():
        ranks = [gold_rank(list(dict.fromkeys(docs[c] for c in ids[: args.k])), item.gold)
                 for ids, item in zip(orders, items, strict=True)]
        n = len(ranks)
        print(f"{name:32s} hit@1 {sum(r == 1 for r in ranks) / n:.2f}  hit@{args.k} "
              f"{sum(r is not None for r in ranks) / n:.2f}", flush=True)


if __name__ == "__main__":
    main()
