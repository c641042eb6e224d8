"""Cold start of two ragline checkouts, interleaved: spawn → first answer byte of ``ragline ask``, same table.

    git worktree add /tmp/before REV && (cd /tmp/before && make setup)
    uv run python bench/ab_cold.py --before /tmp/before --home ~/.cache/ragline/peers/home-300 [--reps 12]

Both ask the loopback OpenAI-compatible server of ``bench/peers`` (a fixed answer at once), so only ragline's
own start differs; the order alternates every repetition. A benchmark, not a test: the machine should be idle.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench" / "peers"))

from compare import DATA, env_for, first_byte  # noqa: E402
from llm_server import start  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="the other checkout (with its own .venv)")
    parser.add_argument("--home", type=Path, required=True, help="a ragline home holding the table to query")
    parser.add_argument("--reps", type=int, default=12)
    args = parser.parse_args()
    import csv

    with (DATA / "qa.csv").open(encoding="utf-8") as fh:
        questions = [row["Question"].strip() for row in csv.DictReader(fh)]
    roots = {"before": args.before, "after": ROOT}
    runs: dict[str, list[float]] = {"before": [], "after": []}
    server, url = start()
    try:
        for rep in range(args.reps):
            for name in ("before", "after") if rep % 2 == 0 else ("after", "before"):
                cmd = [str(roots[name] / ".venv" / "bin" / "ragline"), "--home", str(args.home), "ask",
                       questions[rep % len(questions)]]
                runs[name].append(first_byte(cmd, env_for(url))[0])
            print(f"{rep + 1}/{args.reps}: " + ", ".join(f"{n} {v[-1]:.2f} s" for n, v in runs.items()),
                  file=sys.stderr)
    finally:
        server.shutdown()
    for name, values in runs.items():
        print(f"{name}: median {statistics.median(values):.3f} s, min {min(values):.3f} s")
    print(f"after / before: {statistics.median(runs['after']) / statistics.median(runs['before']):.3f}")


if __name__ == "__main__":
    main()
