"""``ragline eval``: retrieval quality on BEIR sets, answer quality on question sets."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ragline.interfaces.cli_common import app_from, exit_on_error, run_ingest


@click.group("eval")
def eval_group() -> None:
    """Measure retrieval (and later answer) quality."""


@eval_group.command("retrieval")
@click.option("--beir", "beir", type=click.Path(path_type=Path, exists=True, file_okay=False), required=True,
              help="BEIR folder: corpus.jsonl[.gz], queries.jsonl, qrels/SPLIT.tsv")
@click.option("--split", default="test", show_default=True)
@click.option("--limit", type=int, help="Evaluate only the first N queries.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.pass_context
def eval_retrieval(ctx: click.Context, beir: Path, split: str, limit: int | None, as_json: bool) -> None:
    """nDCG@10, recall@10/100 and MRR@10 for vector, BM25 and hybrid retrieval."""
    from ragline.eval.beir import beir_corpus, evaluate, format_table, load_queries
    from ragline.ingest.bounds import Limits
    from ragline.ingest.pipeline import source_items

    with exit_on_error():
        home = ctx.obj.get("home") or Path(".ragline-eval") / beir.resolve().name
        app = app_from(ctx, home=home, chat_model="extractive")
        report = app.ingestor.run(source_items([beir_corpus(beir)], Limits.of(app.settings)))
        click.echo(report.summary(), err=True)
        queries, qrels = load_queries(beir, split)
        if limit:
            queries = dict(list(queries.items())[:limit])
        results = evaluate(app.engine, queries, qrels)
        click.echo(json.dumps(results, indent=2) if as_json else format_table(results))


@eval_group.command("qa")
@click.option("--qa", "qa_csv", type=click.Path(path_type=Path, exists=True, dir_okay=False), required=True,
              help="CSV: a question, a reference answer and the gold document(s) per row.")
@click.option("--corpus", "corpus", multiple=True, required=True,
              help="Documents to answer from: files, folders, globs or a JSONL corpus (repeatable).")
@click.option("--max-docs", type=int, help="Ingest only the gold documents and others up to N in all.")
@click.option("--model", help="Generator: local, extractive, openai or bedrock.")
@click.option("--max-tokens", type=int, default=128, show_default=True, help="Answer length limit in tokens.")
@click.option("--k", type=int, default=5, show_default=True, help="Sources given to the model.")
@click.option("--mode", type=click.Choice(["hybrid", "vector", "bm25"]), default="hybrid", show_default=True)
@click.option("--limit", type=int, help="Evaluate only the first N questions.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("eval-report"),
              show_default=True, help="Folder for qa.json and qa.html.")
@click.pass_context
def eval_qa(ctx: click.Context, qa_csv: Path, corpus: tuple[str, ...], max_docs: int | None, model: str | None,
            max_tokens: int, k: int, mode: str, limit: int | None, out: Path) -> None:
    """Answer quality: hit@k and MRR of the gold document, citations, token-F1, ROUGE-L, "I don't know", latency."""
    from ragline.eval import qa as qa_eval
    from ragline.eval.report import render
    from ragline.ingest.bounds import Limits
    from ragline.ingest.pipeline import count_items, expand_paths, source_items

    with exit_on_error():
        items = qa_eval.load_qa(qa_csv)[:limit] if limit else qa_eval.load_qa(qa_csv)
        files = expand_paths(corpus)
        home = ctx.obj.get("home") or Path(".ragline-eval") / f"{qa_csv.parent.name}-{max_docs or 'all'}"
        app = app_from(ctx, home=home, chat_model=model)
        limits = Limits.of(app.settings)
        documents = source_items(files, limits)
        if max_docs is None:  # every document: one pass over the corpus
            report = run_ingest(app, documents, lambda: count_items(files))
        else:  # a first pass for the ids, then only the chosen ones are read again
            chosen = qa_eval.select_documents([i.doc_id for i in documents], items, max_docs)
            report = run_ingest(app, (i for i in source_items(files, limits) if i.doc_id in chosen),
                                 lambda: len(chosen))
        click.echo(report.summary(), err=True)
        for doc_id, reason in report.failed:
            click.echo(f"failed: {doc_id}: {reason}", err=True)

        def show(done: int, result: qa_eval.QAResult) -> None:
            rank = result.gold_rank or "-"
            click.echo(f"[{done}/{len(items)}] gold rank {rank}, F1 {result.f1:.2f}, "
                       f"{result.timings_ms.get('total', 0):.0f} ms: {result.question[:70]}", err=True)

        results = qa_eval.run(app.engine, items, k=k, mode=mode, max_tokens=max_tokens, progress=show)
        settings = {"qa": str(qa_csv), "corpus": ", ".join(corpus), "documents": report.documents,
                    "chunks": app.store.count(), "model": app.responder.name, "max_tokens": max_tokens, "k": k,
                    "mode": mode, "embedder": app.embedder.name, "verify": app.settings.verify}
        qa_report = qa_eval.QAReport(settings, qa_eval.aggregate(results), results)
        out.mkdir(parents=True, exist_ok=True)
        (out / "qa.json").write_text(json.dumps(qa_report.as_dict(), indent=2) + "\n", encoding="utf-8")
        (out / "qa.html").write_text(render(qa_report), encoding="utf-8")
        click.echo(qa_eval.format_summary(qa_report.summary))
        click.echo(f"wrote {out / 'qa.json'} and {out / 'qa.html'}")


@eval_group.command("verify")
@click.option("--corpus", "corpus", multiple=True, required=True,
              help="Documents to build sentences from (files, folders, globs, JSONL corpora).")
@click.option("--max-docs", type=int, default=1000, show_default=True, help="Read at most N documents (shuffled).")
@click.option("--per-kind", type=int, default=60, show_default=True, help="Sentences of each kind.")
@click.option("--seed", type=int, default=3, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON (with the misses).")
@click.pass_context
def eval_verify(ctx: click.Context, corpus: tuple[str, ...], max_docs: int, per_kind: int, seed: int,
                as_json: bool) -> None:
    """Hallucination benchmark: faithful and perturbed sentences from the corpus, checked by the verifier."""
    import random

    from ragline.eval import verify as bench
    from ragline.ingest.bounds import Limits
    from ragline.ingest.pipeline import expand_paths, source_items

    with exit_on_error():
        app = app_from(ctx)
        items = list(source_items(expand_paths(corpus), Limits.of(app.settings)))
        random.Random(seed).shuffle(items)
        chunks = []
        for item in items[:max_docs]:
            try:
                doc = item.load()
            except Exception as err:
                click.echo(f"skipped {item.doc_id}: {err}", err=True)
                continue
            chunks += app.chunker.chunk(doc, doc_id=item.doc_id, content_hash=item.sha256, tenant="eval",
                                        language=app.settings.language)
        cases = bench.build_cases(chunks, per_kind, seed)
        verifier = app.verifier or app.local_verifier
        summary = bench.run(verifier, cases)
        if app.settings.verifier == "local":
            from ragline.providers.local.verifier import LocalVerifier

            summary["ms_per_answer"] = bench.time_answers(lambda: LocalVerifier(app.embedder), cases)
        summary["verifier"] = verifier.name
        summary["documents"], summary["passages"] = min(len(items), max_docs), len(chunks)
        click.echo(json.dumps(summary, indent=2) if as_json else bench.format_summary(summary))
