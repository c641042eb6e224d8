"""Does hybrid fusion depth pay on SciFact? nDCG@10, recall@10 and MRR@10 of the 10 chunks an answer would get.

    make eval-scifact                          # ingests SciFact into .ragline-eval/scifact once
    uv run python bench/depth_scifact.py [--depths 10,20,50,100]

``bench/scale.py depth`` asks the same question of the AWS documentation at full size.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from scale import app_for, at_depth, timed_hybrid

from ragline.eval.beir import load_queries, score_ranking

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--beir", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument("--home", type=Path, default=ROOT / ".ragline-eval" / "scifact")
    parser.add_argument("--depths", default="10,20,50,100")
    args = parser.parse_args()
    app = app_for(args.home, query_cache_size=0)
    queries, qrels = load_queries(args.beir, "test")
    print("| depth | nDCG@10 | recall@10 | MRR@10 | p50 ms |\n| ---: | ---: | ---: | ---: | ---: |")
    for depth in (int(d) for d in args.depths.split(",")):
        times, hits = timed_hybrid(at_depth(app, depth), list(queries.values()), k=10)
        totals: dict[str, float] = {}
        for qid, found in zip(queries, hits, strict=True):
            for name, value in score_ranking(list(dict.fromkeys(h.chunk.doc_id for h in found)), qrels[qid]).items():
                totals[name] = totals.get(name, 0.0) + value
        m = {name: total / len(queries) for name, total in totals.items()}
        print(f"| {depth} | {m['ndcg@10']:.3f} | {m['recall@10']:.3f} | {m['mrr@10']:.3f} | "
              f"{statistics.median(times):.1f} |", flush=True)


if __name__ == "__main__":
    main()
