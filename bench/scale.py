"""How cost grows with the corpus: the full AWS documentation (25,860 pages) ingested and queried on this machine.

    uv run python bench/scale.py ingest  [--corpus ../shared/data/aws-docs/corpus.jsonl.gz] [--work DIR]
    uv run python bench/scale.py measure [--queries 100] [--work DIR]
    uv run python bench/scale.py plot    [--work DIR] [--out docs/scale-latency.png]
    uv run python bench/scale.py depth   [--work DIR] [--depths 5,10,20,50,100] [--snapshot home-10k]

``ingest`` adds the pages in a fixed pseudo-random order (by a hash of their id, so every slice spans all the
guides) and stops at 1,000 pages, 10,000 pages and all of them. At each stop it snapshots the home folder, so
the smaller sizes can be measured later. It is resumable: stop it at any point (Ctrl-C, a lost session) and run
it again; documents already written are skipped by their content hash, as in any ``ragline ingest``, and every
run's own figures (pages, chunks, seconds, peak RSS) are appended to ``WORK/scale.json``.

``measure`` builds the BM25 index and an ANN index (IVF-HNSW-SQ) on each snapshot, then times hybrid retrieval
(k=5, the query path without the model) with exact vector search and with the ANN index: p50 and p95 over the
questions of ``qa.csv`` and chunk-derived questions. At the full size it also reports the recall@10 of the ANN
search against exact search. ``plot`` draws latency against corpus size. ``depth`` asks whether hybrid fusion's
depth pays at the full size: for each ``fusion_depth`` (chunks taken from each ranking before fusion), the hit@1,
hit@5 and MRR@5 of the gold documents of ``qa.csv`` among the 5 sources an answer gets, the context recall of
those sources (the share of the reference answer's words they hold), and the latency. Before the last stage has
run to its end (or with ``--snapshot home-10k``), it asks only the questions whose gold page is already in, and
files the figures under ``depth-SNAPSHOT-PAGES-pages``: a figure on part of the corpus, while the rest ingests.

A benchmark, not a test: the figures depend on the machine, which should otherwise be idle.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from ragline.compose import Ragline
from ragline.ingest.pipeline import source_items
from ragline.settings import Settings
from ragline.types import Hit

STOPS = (1000, 10000, None)  # None: every page
DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "aws-docs" / "corpus.jsonl.gz"
DEFAULT_WORK = Path.home() / ".cache" / "ragline" / "scale"


def label(stop: int | None) -> str:
    return "all" if stop is None else f"{stop // 1000}k"


def rank_of(doc_id: str) -> str:
    return hashlib.sha1(doc_id.encode()).hexdigest()


def load_results(work: Path) -> dict:
    path = work / "scale.json"
    return json.loads(path.read_text()) if path.exists() else {"ingest": {}, "measure": {}}


def save_results(work: Path, results: dict) -> None:
    (work / "scale.json").write_text(json.dumps(results, indent=2) + "\n")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def app_for(home: Path, **overrides: object) -> Ragline:
    return Ragline(Settings(home=home, chat_model="extractive", cache=False, **overrides))  # type: ignore[arg-type]


def at_depth(app: Ragline, depth: int) -> Ragline:
    """The same store, models and query cache, fusing ``depth`` chunks from each ranking."""
    return Ragline(app.settings.with_overrides(fusion_depth=depth), embedder=app.embedder, store=app.store,
                   registry=app.registry, queries=app.queries)


def ingest(corpus: Path, work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    ids = [item.doc_id for item in source_items([corpus])]
    order = sorted(ids, key=rank_of)
    home = work / "home"
    app = app_for(home)
    for stop in STOPS:
        name = label(stop)
        snapshot = work / f"home-{name}"
        if stop is not None and snapshot.exists():
            continue
        chosen = set(order[:stop]) if stop is not None else set(order)
        items = (item for item in source_items([corpus]) if item.doc_id in chosen)

        def progress(done: int, chunks: int, total: int = len(chosen), name: str = name) -> None:
            if done % 250 == 0:
                print(f"[{name}] {done}/{total} pages, {chunks} chunks written this run", file=sys.stderr, flush=True)

        report = app.ingestor.run(items, progress=progress)
        run = {
            "pages_added": report.added + report.updated, "pages_unchanged": report.unchanged,
            "failed": len(report.failed), "chunks": report.chunks, "seconds": round(report.seconds, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }  # recorded only when the run reached its end
        print(f"[{name}] {report.summary()}", file=sys.stderr, flush=True)
        results = load_results(work)
        results["ingest"].setdefault(name, {"pages": len(chosen), "runs": []})["runs"].append(run)
        save_results(work, results)
        if stop is not None:
            shutil.copytree(home, work / f"home-{name}.tmp", dirs_exist_ok=True)
            (work / f"home-{name}.tmp").rename(snapshot)
    summarise_ingest(work)


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def summarise_ingest(work: Path) -> None:
    results = load_results(work)
    pages = chunks = 0
    seconds = 0.0
    peak = 0.0
    for name in ("1k", "10k", "all"):
        for run in results["ingest"].get(name, {}).get("runs", []):
            pages += run["pages_added"]
            chunks += run["chunks"]
            seconds += run["seconds"]
            peak = max(peak, run["peak_rss_mb"])
    home = work / "home"
    results["ingest_total"] = {
        "pages": pages, "chunks": chunks, "seconds": round(seconds, 1),
        "pages_per_s": round(pages / seconds, 2) if seconds else 0.0,
        "chunks_per_s": round(chunks / seconds, 1) if seconds else 0.0,
        "peak_rss_mb": peak,
        "index_mb": round(dir_size(home / "index") / 2**20, 1) if (home / "index").exists() else None,
    }
    save_results(work, results)
    print(json.dumps(results["ingest_total"], indent=2))


def questions(qa_csv: Path, store: Any, extra: int) -> list[str]:
    """The qa.csv questions, then the first line of evenly spaced chunks (questions in the corpus's words)."""
    with qa_csv.open(encoding="utf-8") as fh:
        out = [row["Question"].strip() for row in csv.DictReader(fh)]
    table = store._open()
    n = table.count_rows()
    step = max(n // extra, 1)
    picked = table.take_offsets(list(range(0, n, step))[:extra]).select(["text"]).to_list()
    for row in picked:
        first = row["text"].strip().split("\n")[0][:200]
        if len(first.split()) >= 4:
            out.append(first)
    return out


def timed_hybrid(app: Ragline, qs: list[str], k: int = 5) -> tuple[list[float], list[list[Hit]]]:
    """Milliseconds per hybrid retrieval (the query path without the model), and each question's hits."""
    for q in qs[:5]:  # warm: model, table handles, index caches
        app.engine.retrieve(q, k=k, mode="hybrid")
    times, hits = [], []
    for q in qs:
        start = time.perf_counter()
        hits.append(app.engine.retrieve(q, k=k, mode="hybrid"))
        times.append((time.perf_counter() - start) * 1000)
    return times, hits


def recall_at_10(app: Ragline, qs: list[str]) -> float:
    """Share of the exact top-10 vector neighbours that the ANN search returns, averaged over the questions."""
    store = app.store
    shares = []
    for q in qs:
        vector = app.queries.embed(q)
        store.exact = True  # type: ignore[attr-defined]
        truth = {h.chunk.id for h in store.search_vector(vector, 10, {"tenant": "default"})}
        store.exact = False  # type: ignore[attr-defined]
        found = {h.chunk.id for h in store.search_vector(vector, 10, {"tenant": "default"})}
        shares.append(len(truth & found) / max(len(truth), 1))
    return round(sum(shares) / len(shares), 4)


def pct(values: list[float], q: int) -> float:
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1], 1)


def measure(work: Path, qa_csv: Path, extra: int) -> None:
    results = load_results(work)
    finished_all = bool(results["ingest"].get("all", {}).get("runs"))
    for name in ("1k", "10k", "all"):
        home = work / (f"home-{name}" if name != "all" else "home")
        if not home.exists() or (name == "all" and not finished_all):
            print(f"[{name}] not ingested yet: skipped", file=sys.stderr)
            continue
        app = app_for(home, query_cache_size=0, ann_min_rows=0)
        store = app.store
        qs = questions(qa_csv, store, extra)
        figures: dict[str, object] = {"pages": results["ingest"].get(name, {}).get("pages"),
                                      "chunks": store.count(), "questions": len(qs)}
        store.drop_vector_index()  # type: ignore[attr-defined]
        store.exact = True  # type: ignore[attr-defined]
        exact, _ = timed_hybrid(app, qs)
        started = time.perf_counter()
        store.build_vector_index()  # type: ignore[attr-defined]
        figures["ann_build_s"] = round(time.perf_counter() - started, 1)
        store.exact = False  # type: ignore[attr-defined]
        ann, _ = timed_hybrid(app, qs)
        figures["exact_ms"] = {"p50": pct(exact, 50), "p95": pct(exact, 95)}
        figures["ann_ms"] = {"p50": pct(ann, 50), "p95": pct(ann, 95)}
        figures["ann_recall@10"] = recall_at_10(app, qs)
        figures["index_mb"] = round(dir_size(home / "index") / 2**20, 1)
        print(f"[{name}] {json.dumps(figures)}", file=sys.stderr, flush=True)
        results = load_results(work)
        results["measure"][name] = figures
        save_results(work, results)


def depth(work: Path, qa_csv: Path, depths: list[int], snapshot: str = "home") -> None:
    from ragline.eval.qa import context_recall, gold_rank, load_qa

    app = app_for(work / snapshot, query_cache_size=0)
    items = load_qa(qa_csv)
    ready = {r.doc_id for r in app.registry.list(app.settings.tenant) if r.status == "ready"}
    whole = snapshot == "home" and "all" in load_results(work)["ingest"]  # the last stage ran to its end
    if not whole:  # a part of the corpus: only the questions whose gold page it holds can be asked of it
        items = [item for item in items if ready.intersection(item.gold)]
    figures: dict[str, object] = {"snapshot": snapshot, "pages": len(ready), "chunks": app.store.count(),
                                  "questions": len(items)}
    for d in depths:
        times, hits = timed_hybrid(at_depth(app, d), [item.question for item in items])
        ranks = [gold_rank(list(dict.fromkeys(h.chunk.doc_id for h in found)), item.gold)
                 for item, found in zip(items, hits, strict=True)]
        row = {
            "hit@1": round(sum(r == 1 for r in ranks) / len(ranks), 3),
            "hit@5": round(sum(r is not None for r in ranks) / len(ranks), 3),
            "mrr@5": round(sum(1 / r for r in ranks if r) / len(ranks), 3),
            "context_recall": round(statistics.mean(context_recall(item.reference, [h.chunk.text for h in found])
                                                    for item, found in zip(items, hits, strict=True)), 3),
            "p50_ms": pct(times, 50), "p95_ms": pct(times, 95),
        }
        figures[str(d)] = row
        print(f"[depth {d}] {json.dumps(row)}", file=sys.stderr, flush=True)
    results = load_results(work)
    results["depth" if whole else f"depth-{snapshot}-{len(ready)}-pages"] = figures
    save_results(work, results)


def plot(work: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = load_results(work)["measure"]
    names = [n for n in ("1k", "10k", "all") if n in measured]
    chunks = [measured[n]["chunks"] for n in names]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for key, label, style in (("exact_ms", "exact", "o-"), ("ann_ms", "ANN (IVF-HNSW-SQ)", "s-")):
        for q, alpha in (("p50", 1.0), ("p95", 0.5)):
            ax.plot(chunks, [measured[n][key][q] for n in names], style, alpha=alpha, label=f"{label} {q}")
    ax.set_xscale("log")
    ax.set_xlabel("chunks in the index (pages: " + ", ".join(
        str(measured[n]["pages"]) for n in names) + ")")
    ax.set_ylabel("hybrid retrieval, k=5 (ms)")
    ax.set_title("Query latency against corpus size (AWS documentation)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["ingest", "measure", "plot", "depth"])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK)
    parser.add_argument("--qa", type=Path, default=DEFAULT_CORPUS.with_name("qa.csv"))
    parser.add_argument("--queries", type=int, default=100, help="chunk-derived questions added to qa.csv's")
    parser.add_argument("--depths", default="5,10,20,50,100", help="fusion depths compared by `depth`")
    parser.add_argument("--snapshot", default="home", help="depth: the home (default) or a snapshot, e.g. home-10k; "
                        "before the last stage ends, only the questions whose gold page is in are asked")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "scale-latency.png")
    args = parser.parse_args()
    if args.command == "ingest":
        ingest(args.corpus, args.work)
    elif args.command == "measure":
        measure(args.work, args.qa, args.queries)
    elif args.command == "depth":
        depth(args.work, args.qa, [int(d) for d in args.depths.split(",")], args.snapshot)
    else:
        plot(args.work, args.out)


if __name__ == "__main__":
    main()
