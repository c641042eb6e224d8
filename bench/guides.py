"""The "AWS guides" set: every page of the guides that hold the gold pages of ``qa.csv``.

    uv run python bench/guides.py --out GUIDES.jsonl.gz
    uv run ragline --home GUIDES-HOME eval qa --qa ../shared/data/aws-docs/qa.csv --corpus GUIDES.jsonl.gz \\
        --model extractive
    uv run python bench/fusion.py qa --home GUIDES-HOME --qa ../shared/data/aws-docs/qa.csv

A stand-in for the full AWS documentation (25,860 pages, about 3.5 hours to ingest here): 2,757 pages of 14
guides, so every page that a gold page can be confused with inside its guide is there. With RRF it gives figures
close to the full index's (hit@5 0.88 against 0.83-0.86, hit@1 0.63 against 0.53-0.55): most of the full corpus's
difficulty is within a guide. What it leaves out is confusion across guides.
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

from ragline.eval.qa import load_qa

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "aws-docs"


def guide(doc_id: str) -> str:
    return doc_id.split("/", 1)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DATA / "corpus.jsonl.gz")
    parser.add_argument("--qa", type=Path, default=DATA / "qa.csv")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    guides = {guide(gold) for item in load_qa(args.qa) for gold in item.gold}
    pages = 0
    with gzip.open(args.corpus, "rt", encoding="utf-8") as src, gzip.open(args.out, "wt", encoding="utf-8") as out:
        for line in src:
            if line.strip() and guide(str(json.loads(line)["_id"])) in guides:
                out.write(line if line.endswith("\n") else line + "\n")
                pages += 1
    print(f"{pages} pages of {len(guides)} guides written to {args.out}")


if __name__ == "__main__":
    main()
