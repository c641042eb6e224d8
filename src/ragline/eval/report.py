"""The HTML report of ``ragline eval qa``: aggregates, plots (matplotlib PNGs, embedded), one row per question.

matplotlib comes with the ``eval`` extra (``pip install 'ragline[eval]'``). Without it the page is written
all the same, without plots, and says how to get them.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

from ragline.eval.qa import KS, STAGES, QAReport


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def plots(report: QAReport) -> dict[str, str]:
    """Title → base64 PNG: latency per stage, hit@k with MRR, and the answer scores' spread."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, str] = {}
    stages = [s for s in STAGES if any(s in r.timings_ms for r in report.results)]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.boxplot([[r.timings_ms[s] for r in report.results if s in r.timings_ms] for s in stages],
               tick_labels=stages, showfliers=True)
    ax.set_ylabel("ms (log scale)")
    ax.set_yscale("log")
    ax.set_title("Latency per stage (retrieve, total: from the question; first_token, generate: from the model "
                 "call)", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    out["Latency per stage"] = _png(fig)
    plt.close(fig)

    summary = report.summary
    names = [f"hit@{k}" for k in KS] + ["mrr@10"]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    bars = ax.bar(names, [summary[n] for n in names], color=["#4c78a8"] * len(KS) + ["#f58518"])
    ax.bar_label(bars, fmt="%.2f")
    ax.set_ylim(0, 1.05)
    ax.set_title("Gold document in the retrieved results")
    out["Retrieval: hit@k and MRR"] = _png(fig)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.hist([[r.f1 for r in report.results], [r.rouge_l for r in report.results]], bins=10, range=(0, 1),
            label=["token F1", "ROUGE-L"])
    ax.set_xlabel("score against the reference answer")
    ax.set_ylabel("questions")
    ax.legend()
    ax.set_title("Answer scores")
    out["Answer scores"] = _png(fig)
    plt.close(fig)
    return out


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}"
    return html.escape(str(value))


STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#222;max-width:1400px}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ddd;padding:4px 8px;vertical-align:top}
th{background:#f4f4f4;text-align:left}td.n{text-align:right;white-space:nowrap}
td.t{max-width:420px;font-size:12px}tr.miss td.rank{background:#fde2e2}tr.bad td.cit{background:#fde2e2}
img{max-width:100%;margin:.5rem 1rem .5rem 0}
"""


def render(report: QAReport) -> str:
    """The whole page."""
    try:
        images = plots(report)
        plot_html = "".join(
            f'<figure><img alt="{html.escape(t)}" src="data:image/png;base64,{b}"><figcaption>{html.escape(t)}'
            "</figcaption></figure>" for t, b in images.items()
        )
    except ImportError:
        plot_html = "<p>Plots need matplotlib: <code>pip install 'ragline[eval]'</code>.</p>"
    settings = "".join(f"<tr><th>{html.escape(k)}</th><td>{_cell(v)}</td></tr>" for k, v in report.settings.items())
    rows = []
    for k, v in report.summary.items():
        if k == "latency_ms":
            for stage, p in v.items():
                rows.append(f"<tr><th>latency {stage} (ms)</th>"
                            f"<td class=n>p50 {p['p50']:.1f} · p95 {p['p95']:.1f}</td></tr>")
        else:
            rows.append(f"<tr><th>{html.escape(k)}</th><td class=n>{_cell(v)}</td></tr>")
    head = ("#", "question", "gold", "rank", "in sources", "F1", "ROUGE-L", "citations ok", "unknown", "total ms",
            "answer", "reference")
    body = []
    for r in report.results:
        classes = " ".join(c for c, on in (("miss", r.gold_rank is None), ("bad", not r.citations_valid)) if on)
        c = r.citations
        cites = f"{_cell(r.citations_valid)} ({c['supported_sentences']}/{c['cited_sentences']} supported, " \
                f"{c['valid_markers']}/{c['markers']} markers)"
        answer = r.answer + (f" [error: {r.error}]" if r.error else "")
        body.append(
            f"<tr class='{classes}'><td class=n>{r.number}</td><td class=t>{_cell(r.question)}</td>"
            f"<td class=t>{_cell(', '.join(r.gold))}</td><td class='n rank'>{_cell(r.gold_rank)}</td>"
            f"<td>{_cell(r.gold_in_sources)}</td><td class=n>{r.f1:.2f}</td><td class=n>{r.rouge_l:.2f}</td>"
            f"<td class='cit'>{cites}</td>"
            f"<td>{_cell(r.unknown)}</td><td class=n>{r.timings_ms.get('total', 0):.0f}</td>"
            f"<td class=t>{_cell(answer)}</td><td class=t>{_cell(r.reference)}</td></tr>"
        )
    return (
        "<!doctype html><html lang=en><meta charset=utf-8><title>ragline eval qa</title>"
        f"<style>{STYLE}</style><h1>ragline eval qa</h1>"
        f"<h2>Settings</h2><table>{settings}</table><h2>Summary</h2><table>{''.join(rows)}</table>"
        f"<h2>Plots</h2>{plot_html}<h2>Questions</h2><table><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>"
        f"{''.join(body)}</table></html>\n"
    )
