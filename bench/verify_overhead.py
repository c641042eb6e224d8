"""What checking every sentence costs a warm query: the same engine with verification and the gate on and off.

    uv run python bench/verify_overhead.py [--home .ragline-eval/lex] [--model extractive] [--reps 3]

Ingests the bundled Lex guide (once), then asks the 60 questions of ``bench/abstain/`` with ``RAGLINE_VERIFY=off``
and ``RAGLINE_ABSTAIN=false`` ("off") and with the defaults ("on"), interleaved, and prints the median total per
question and the median of the ``verify`` and ``gate`` stages. A benchmark, not a test: the machine should be idle.
"""

from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path

from ragline.compose import Ragline
from ragline.ingest.pipeline import source_items
from ragline.settings import Settings
from ragline.types import Query

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=ROOT / ".ragline-eval" / "lex")
    parser.add_argument("--model", default="extractive")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    questions = [row["question"] for row in csv.DictReader(
        (ROOT / "bench" / "abstain" / "lex-answerable.csv").open(encoding="utf-8"))]
    on = Ragline(Settings(home=args.home, cache=False, chat_model=args.model))
    on.ingestor.run(source_items([ROOT / "samples" / "amazon-lex-developer-guide.jsonl.gz"]))
    off = Ragline(Settings(home=args.home, cache=False, chat_model=args.model, verify="off", abstain=False),
                  embedder=on.embedder, store=on.store, registry=on.registry, queries=on.queries)
    for app in (on, off):
        app.engine.ask(Query("warm up"))
    totals: dict[str, list[float]] = {"off": [], "on": []}
    stages: dict[str, list[float]] = {"verify": [], "gate": []}
    for rep in range(args.reps):
        for question in questions:
            for name, app in (("off", off), ("on", on)) if rep % 2 == 0 else (("on", on), ("off", off)):
                answer = app.engine.ask(Query(question))
                totals[name].append(answer.timings["total"] * 1000)
                if name == "on":
                    stages["verify"].append(answer.timings.get("verify", 0.0) * 1000)
                    stages["gate"].append(answer.timings.get("gate", 0.0) * 1000)
    for name, values in totals.items():
        print(f"{name}: total median {statistics.median(values):.1f} ms, p95 "
              f"{statistics.quantiles(values, n=20)[-1]:.1f} ms ({len(values)} answers)")
    print(f"on / off: {statistics.median(totals['on']) / statistics.median(totals['off']):.3f}")
    for stage, values in stages.items():
        print(f"{stage} stage median {statistics.median(values):.1f} ms, p95 "
              f"{statistics.quantiles(values, n=20)[-1]:.1f} ms")


if __name__ == "__main__":
    main()
