"""Knowing when not to answer: the "I don't know" rate on 30 answerable and 30 unanswerable questions.

    uv run python bench/abstain/run.py [--home .ragline-eval/lex] [--model extractive] [--set abstain=false]

Ingests the bundled Lex guide (once), asks every question of ``lex-answerable.csv`` and ``lex-unanswerable.csv``
with the default settings (or those given with ``--set``), and prints the share answered "I don't know" per set
and per half (``tune``: the questions the gate's threshold was chosen on; ``test``: the others), with the
questions it got wrong.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

from ragline.compose import Ragline
from ragline.ingest.pipeline import source_items
from ragline.query.verify import DECLINES
from ragline.settings import Settings
from ragline.types import Query

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=ROOT / ".ragline-eval" / "lex")
    parser.add_argument("--model", default=None, help="chat model (default: the settings' default)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="SETTING=VALUE")
    args = parser.parse_args()
    overrides = dict(o.split("=", 1) for o in args.overrides)
    if args.model:
        overrides["chat_model"] = args.model
    app = Ragline(Settings(home=args.home, cache=False, **overrides))  # type: ignore[arg-type]
    app.ingestor.run(source_items([ROOT / "samples" / "amazon-lex-developer-guide.jsonl.gz"]))
    declined: dict[tuple[str, str], list[bool]] = defaultdict(list)
    wrong: list[str] = []
    for name in ("lex-answerable.csv", "lex-unanswerable.csv"):
        with (HERE / name).open(encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                answer = app.engine.ask(Query(row["question"], max_tokens=160))
                said = bool(DECLINES.search(answer.text)) or not answer.text.strip()
                declined[(row["label"], row["split"])].append(said)
                if said != (row["label"] == "unanswerable"):
                    wrong.append(f"{row['label']:<12} {row['split']:<5} {row['question']}\n"
                                 f"      -> {answer.text[:160]}")
    print(f"model {app.responder.name}; \"I don't know\" rate:")
    for label in ("answerable", "unanswerable"):
        both = declined[(label, "tune")] + declined[(label, "test")]
        print(f"  {label:<12} {sum(both) / len(both):.0%} of {len(both)}   (tune "
              f"{sum(declined[(label, 'tune')])}/{len(declined[(label, 'tune')])}, test "
              f"{sum(declined[(label, 'test')])}/{len(declined[(label, 'test')])})")
    print("wrong:")
    print("\n".join(wrong) or "  none")


if __name__ == "__main__":
    main()
