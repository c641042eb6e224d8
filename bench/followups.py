"""Follow-up questions: does the second turn of a dialogue retrieve what it is about?

    uv run python bench/followups.py [--home .ragline] [--dialogues bench/dialogues/lex-followups.jsonl]

Each line of the dialogues file is two turns over the bundled Lex guide and the pages that answer the second one
(written for this benchmark, not taken from any existing set). The second turn is retrieved three ways: as it
stands (before), and as ragline searches it in a conversation (``query.retrieval.search_text``: a follow-up that
points back also carries the first question's words). The figure is hit@5: a gold page among the five sources.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ragline.compose import Ragline
from ragline.ingest.pipeline import source_items
from ragline.query.retrieval import search_text
from ragline.settings import Settings
from ragline.types import Message

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=ROOT / ".ragline-eval" / "lex")
    parser.add_argument("--dialogues", type=Path, default=ROOT / "bench" / "dialogues" / "lex-followups.jsonl")
    parser.add_argument("--k", type=int, default=5)
    args = parser.parse_args()
    app = Ragline(Settings(home=args.home, cache=False))
    app.ingestor.run(source_items([ROOT / "samples" / "amazon-lex-developer-guide.jsonl.gz"]))
    dialogues = [json.loads(line) for line in args.dialogues.read_text(encoding="utf-8").splitlines() if line]
    hits = {"as asked": 0, "with the conversation": 0}
    for d in dialogues:
        first, second = d["turns"]
        history = [Message("user", first), Message("assistant", "")]
        for name, text in (("as asked", second), ("with the conversation", search_text(second, history))):
            found = [h.chunk.doc_id.rsplit("/", 1)[-1] for h in app.engine.retrieve(text, k=args.k)]
            ok = any(g in found for g in d["gold"])
            hits[name] += ok
            print(f"{'✓' if ok else '✗'} {name:<22} {second!r} → {text!r}: {found[:3]}")
    n = len(dialogues)
    for name, count in hits.items():
        print(f"second turn hit@{args.k}, {name}: {count}/{n} = {count / n:.2f}")


if __name__ == "__main__":
    main()
