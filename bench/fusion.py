"""Hybrid fusion side by side: RRF, convex and adaptive fusion at several weights, on the same vector and BM25
rankings.

    uv run python bench/fusion.py beir --home .ragline-eval/scifact --beir ../shared/data/scifact
    uv run python bench/fusion.py qa --home .ragline-eval/aws-docs-400 --qa ../shared/data/aws-docs/qa.csv

Each question is searched once per ranking (vector and BM25, to ``--depth``), then every fusion ranks the same
lists: nDCG@10, recall@10/100 and MRR@10 on a BEIR set (ingested first, e.g. by ``make eval-scifact``), or hit@1
and hit@k of the gold page on a question set (ingested by ``ragline eval qa``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

from ragline.compose import Ragline
from ragline.eval.beir import load_queries, score_ranking
from ragline.eval.qa import gold_rank, load_qa
from ragline.query.retrieval import fuse, fuse_convex
from ragline.settings import Settings
from ragline.types import Hit

Rankings = dict[str, list[Hit]]


def rankings(app: Ragline, questions: Sequence[str], depth: int) -> list[Rankings]:
    scoped = {"tenant": app.settings.tenant}
    return [{"vector": app.store.search_vector(app.queries.embed(q), depth, scoped),
             "bm25": app.store.search_text(q, depth, scoped)} for q in questions]


def fusions(k: int, depth: int, alphas: Sequence[float]) -> dict[str, Callable[[Rankings], list[Hit]]]:
    out: dict[str, Callable[[Rankings], list[Hit]]] = {
        "rrf60": lambda r: fuse(r, k, 60), "rrf10": lambda r: fuse(r, k, 10),
        "rrf60-firsts": lambda r: fuse(r, k, 60, keep_vector_first=True)}
    for c in (5, 10, 20, 100):  # the RRF constant, with the vector search's first kept
        out[f"rrf{c}-firsts"] = lambda r, c=c: fuse(r, k, c, keep_vector_first=True)
    for a in alphas:
        out[f"convex{a:g}"] = lambda r, a=a: fuse_convex(r, k, a, depth)
        out[f"adaptive{a:g}"] = lambda r, a=a: fuse_convex(r, k, a, depth, adaptive=True, keep_vector_first=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["beir", "qa"])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--beir", type=Path)
    parser.add_argument("--qa", type=Path)
    parser.add_argument("--k", type=int, default=5, help="qa: sources per answer")
    parser.add_argument("--alphas", default="0.5,0.6,0.7,0.8,0.9")
    args = parser.parse_args()
    app = Ragline(Settings(home=args.home, cache=False))
    alphas = [float(a) for a in args.alphas.split(",")]
    if args.kind == "beir":
        queries, qrels = load_queries(args.beir, "test")
        ranked = rankings(app, list(queries.values()), 200)
        for name, fusion in fusions(200, 200, alphas).items():
            totals: dict[str, float] = {}
            for qid, r in zip(queries, ranked, strict=True):
                docs = list(dict.fromkeys(h.chunk.doc_id for h in fusion(r)))
                for metric, value in score_ranking(docs, qrels[qid]).items():
                    totals[metric] = totals.get(metric, 0.0) + value
            print(name, {m: round(v / len(queries), 4) for m, v in totals.items()})
        return
    items = load_qa(args.qa)
    ranked = rankings(app, [i.question for i in items], 50)
    for name, fusion in fusions(args.k, 50, alphas).items():
        ranks = [gold_rank(list(dict.fromkeys(h.chunk.doc_id for h in fusion(r))), i.gold)
                 for i, r in zip(items, ranked, strict=True)]
        first = sum(rank == 1 for rank in ranks) / len(items)
        found = sum(rank is not None for rank in ranks) / len(items)
        print(f"{name}: hit@1 {first:.2f}, hit@{args.k} {found:.2f}")


if __name__ == "__main__":
    main()
