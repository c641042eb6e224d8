"""The ``ragline`` command line: ingest, ask, chat, ls, rm, serve, doctor, eval.

Heavy libraries load only inside the command that needs them, so ``ragline --help`` stays instant.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from ragline.errors import InputError, RaglineError
from ragline.interfaces.cli_common import app_from, exit_on_error, pairs, run_ingest
from ragline.interfaces.cli_eval import eval_group
from ragline.interfaces.cli_serve import keys_group, mcp_command, serve


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(path_type=Path), help="Index folder (RAGLINE_HOME, default .ragline).")
@click.option("--tenant", help="Owner of the documents read and written (RAGLINE_TENANT).")
@click.option("-v", "--verbose", is_flag=True, help="Log one structured line per stage to stderr.")
@click.pass_context
def cli(ctx: click.Context, home: Path | None, tenant: str | None, verbose: bool) -> None:
    """Answers from your own documents, with verified citations."""
    ctx.obj = {"home": home, "tenant": tenant}
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s", stream=sys.stderr)


cli.add_command(eval_group)
for _command in (serve, mcp_command, keys_group):
    cli.add_command(_command)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@click.pass_context
def doctor(ctx: click.Context, as_json: bool) -> None:
    """Show which part is configured for what, and check that each one answers (exit 1 if one fails)."""
    from ragline.interfaces.doctor import checks, render

    with exit_on_error():
        results = checks(app_from(ctx))
    if as_json:
        click.echo(json.dumps([c.as_dict() for c in results], indent=2))
    else:
        click.echo(render(results))
    if any(c.status == "failed" for c in results):
        sys.exit(1)


@cli.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--tag", "tags", multiple=True, help="key=value stored with every chunk (filter with --where).")
@click.option("--chunk-tokens", type=int, help="Chunk size in embedding tokens.")
@click.option("--chunk-overlap", type=int, help="Overlap between chunks in tokens.")
@click.option("--watch", is_flag=True, help="Then keep watching: ingest new and changed files, remove deleted ones.")
@click.pass_context
def ingest(ctx: click.Context, paths: tuple[str, ...], tags: tuple[str, ...],
           chunk_tokens: int | None, chunk_overlap: int | None, watch: bool) -> None:
    """Ingest files, folders, globs and JSONL corpora (txt md html pdf docx pptx xlsx csv jsonl[.gz])."""
    from ragline.ingest.bounds import Limits
    from ragline.ingest.pipeline import count_items, expand_paths, source_items

    with exit_on_error():
        app = app_from(ctx, chunk_tokens=chunk_tokens, chunk_overlap=chunk_overlap)
        tag_pairs = tuple(f"{k}={v}" for k, v in pairs(tags, "--tag").items())
        files = expand_paths(paths)
        items = source_items(files, Limits.of(app.settings))
        report = run_ingest(app, items, lambda: count_items(files), tag_pairs)
        for doc_id, reason in report.failed:
            click.echo(f"failed: {doc_id}: {reason}", err=True)
        click.echo(report.summary())
        if watch:
            from ragline.ingest.watch import watch as keep_watching

            roots = [Path(p) for p in paths if Path(p).exists()] or files
            click.echo(f"watching {', '.join(map(str, roots))} (Ctrl+C to stop)", err=True)
            keep_watching(app, roots, tags=tag_pairs, echo=lambda line: click.echo(line, err=line.startswith("fail")))


def _print_sources(answer: Any) -> None:
    click.echo("\nSources:")
    cited = {c.number for c in answer.citations}
    for s in answer.sources:
        where = f" — {s.location}" if s.location else ""
        mark = "*" if s.number in cited else " "
        click.echo(f" {mark}[{s.number}] {s.doc_id}{where} (score {s.score:.3f})")
    if answer.invalid_citations:
        click.echo(f"({answer.invalid_citations} citation(s) to sources that were not retrieved were removed)")
    if answer.partial:
        click.echo(f"(partial answer: {answer.partial_reason})")
    if answer.cache == "hit":
        click.echo("(answered from the cache)")
    _print_checks(answer)


def _print_checks(answer: Any) -> None:
    """One line on how many sentences the sources support, then each doubtful one with the reason."""
    claims = [v for v in answer.sentences if v.verdict != "remark"]
    if not claims:
        return
    shown = [v for v in claims if v.shown]
    supported = sum(v.verdict == "supported" for v in shown)
    line = f"Checked: {supported} of {len(shown)} sentence{'s' if len(shown) != 1 else ''} supported by their sources"
    dropped = len(claims) - len(shown)
    click.echo(line + (f"; {dropped} unsupported dropped" if dropped else "") +
               (" (the answer was replaced: its sources do not support it)" if answer.refused else ""))
    for v in claims:
        if v.verdict != "supported":
            label = click.style(f"[{v.verdict}{'' if v.shown else ', dropped'}]", fg=_COLOURS[v.verdict], bold=True)
            click.echo(f"  {label} \"{v.text[:100]}{'…' if len(v.text) > 100 else ''}\": {v.reason}")


_COLOURS = {"unsupported": "red", "uncited": "yellow", "supported": "green", "remark": "white"}


class _AnswerPrinter:
    """Prints the answer as it streams.

    With verification on, each sentence is printed once its verdict came, a doubtful one marked where it stands
    (red ``[unsupported]``, yellow ``[uncited]``).
    """

    def __init__(self, verified: bool) -> None:
        self.verified = verified
        self.text = ""
        self.cursor = 0
        self.pending: list[Any] = []

    def token(self, text: str) -> None:
        if not self.verified:
            click.echo(text, nl=False)
            return
        self.text += text
        self._flush()

    def verdict(self, verdict: Any) -> None:
        if verdict.shown:
            self.pending.append(verdict)
            self._flush()

    def done(self) -> None:
        self._flush()
        click.echo(self.text[self.cursor:], nl=False)
        self.cursor = len(self.text)

    def _flush(self) -> None:
        while self.pending:
            verdict = self.pending[0]
            at = self.text.find(verdict.text, self.cursor)
            if at < 0:
                return
            end = at + len(verdict.text)
            click.echo(self.text[self.cursor:at], nl=False)
            if verdict.verdict in ("unsupported", "uncited"):
                colour = _COLOURS[verdict.verdict]
                click.echo(click.style(verdict.text, fg=colour) + click.style(f" [{verdict.verdict}]", fg=colour,
                                                                               bold=True), nl=False)
            else:
                click.echo(verdict.text, nl=False)
            self.cursor = end
            self.pending.pop(0)


def _stream_answer(events: Any, as_json: bool, show_prompt: bool = False, model: str = "",
                   verified: bool = True) -> Any:
    """Print a turn's events as they come; return the answer.

    The prompt when asked, the answer sentence by sentence with its verdicts, then the sources and the check.
    """
    from ragline.errors import error_by_name
    from ragline.types import Done, ErrorEvent, PromptEvent, Sources, Token, Verdict

    answer = None
    prompted = False
    printer = _AnswerPrinter(verified)
    for event in events:
        if isinstance(event, PromptEvent) and not as_json:
            prompted = True
            for m in event.messages:
                click.echo(f"--- {m.role} ---\n{m.content}")
            click.echo("--- answer ---")
        elif isinstance(event, Sources) and show_prompt and not prompted and not as_json:
            click.echo(f"--- no prompt: {model} answers without a language model ---")
        elif isinstance(event, Token) and not as_json:
            printer.token(event.text)
        elif isinstance(event, Verdict) and not as_json:
            printer.verdict(event)
        elif isinstance(event, Done):
            answer = event.answer
        elif isinstance(event, ErrorEvent):
            raise error_by_name(event.kind, event.message)
    if answer is None:  # pragma: no cover - the engine always ends with Done or ErrorEvent
        raise RaglineError("the answer stream ended early")
    if as_json:
        click.echo(json.dumps(answer.as_dict(), indent=2))
    else:
        printer.done()
        click.echo()
        _print_sources(answer)
    return answer


@cli.command()
@click.argument("question")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of streaming.")
@click.option("--where", "where", multiple=True, help="Filter: key=value (language, source, doc_id, or a tag).")
@click.option("--k", type=int, help="Sources to retrieve.")
@click.option("--model", help="Generator: local, extractive or openai.")
@click.option("--mode", type=click.Choice(["hybrid", "vector", "bm25"]), help="Retrieval mode.")
@click.option("--max-tokens", type=int, help="Answer length limit in tokens.")
@click.option("--show-prompt", is_flag=True, help="Print the exact prompt sent to the model first.")
@click.option("--deadline", type=float, help="Seconds for the whole answer; then it is returned partial.")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the answer cache.")
@click.option("--image", "images", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A picture to send with the question (png, jpg, gif, webp), for models that take images.")
@click.pass_context
def ask(ctx: click.Context, question: str, as_json: bool, where: tuple[str, ...], k: int | None,
        model: str | None, mode: str | None, max_tokens: int | None, show_prompt: bool,
        deadline: float | None, no_cache: bool, images: tuple[Path, ...]) -> None:
    """Answer a question from the ingested documents, streaming tokens, then the sources."""
    from dataclasses import replace

    from ragline.interfaces.requests import QueryRequest, query_for
    from ragline.types import Image

    with exit_on_error():
        app = app_from(ctx, chat_model=model, k=k, retrieval=mode, max_tokens=max_tokens, deadline=deadline)
        request = QueryRequest(question=question, filters=pairs(where, "--where"), use_cache=not no_cache)
        query = replace(query_for(app.settings, request, show_prompt=show_prompt),
                        images=[Image.from_bytes(p.read_bytes(), p.name) for p in images])
        app.engine.check(query)
        _stream_answer(app.engine.stream(query), as_json, show_prompt, app.responder.name,
                       verified=app.settings.verify != "off")


@cli.command()
@click.option("--model", help="Generator: local, extractive or openai.")
@click.option("--where", "where", multiple=True, help="Filter: key=value.")
@click.option("--conversation", help="Resume (or name) a conversation; it is kept in the registry across runs.")
@click.pass_context
def chat(ctx: click.Context, model: str | None, where: tuple[str, ...], conversation: str | None) -> None:
    """Ask questions in a loop; the conversation is kept (and can be resumed). CTRL-D exits."""
    import uuid

    from ragline.interfaces.requests import QueryRequest
    from ragline.interfaces.turns import Turns

    with exit_on_error():
        app = app_from(ctx, chat_model=model)
        turns = Turns(app)
        filters = pairs(where, "--where")
        conversation = conversation or f"cli-{uuid.uuid4().hex[:12]}"
        while True:
            try:
                question = input("\nAsk a question, start a new search, or CTRL-D to exit: ").strip()
            except EOFError:
                click.echo(f"\n(resume with: ragline chat --conversation {conversation})")
                return
            if not question:
                continue
            try:
                request = QueryRequest(question=question, filters=filters)
                _stream_answer(turns.answer(app.settings.tenant, request, conversation=conversation), False,
                               verified=app.settings.verify != "off")
            except InputError as err:
                click.echo(f"error: {err}", err=True)


@cli.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
@click.argument("prefix", default="")
@click.pass_context
def list_documents(ctx: click.Context, as_json: bool, prefix: str) -> None:
    """List ingested documents with status, chunks, size and ingestion time."""
    import datetime as dt

    with exit_on_error():
        app = app_from(ctx)
        for r in app.registry.list(app.settings.tenant, prefix):
            when = dt.datetime.fromtimestamp(r.ingested_at).isoformat(timespec="seconds")
            if as_json:
                click.echo(json.dumps({**r.as_dict(), "ingested_at": when}))
            else:
                note = f"  {r.error}" if r.error else ""
                click.echo(f"{r.status:6} {r.chunks:5} chunks {r.bytes:>10,} B  {when}  {r.doc_id}{note}")


@cli.command("rm")
@click.argument("doc_ids", nargs=-1, required=True)
@click.pass_context
def remove(ctx: click.Context, doc_ids: tuple[str, ...]) -> None:
    """Remove documents (every chunk and the registry row)."""
    from ragline.errors import NotFoundError

    with exit_on_error():
        app = app_from(ctx)
        missing = [d for d in doc_ids if not app.ingestor.remove(d)]
        for d in doc_ids:
            if d not in missing:
                click.echo(f"removed {d}")
        if missing:
            raise NotFoundError(f"no such document: {', '.join(missing)} (see `ragline ls`)")


@cli.group("cache")
def cache_group() -> None:
    """Inspect or clear the answer cache."""


@cache_group.command("stats")
@click.pass_context
def cache_stats(ctx: click.Context) -> None:
    """Cached answers stored (live and expired) and the tenant's index version."""
    with exit_on_error():
        app = app_from(ctx)
        stats = app.cache.stats() if app.cache is not None else {"enabled": 0}
        stats["index_version"] = app.registry.index_version(app.settings.tenant)
        click.echo(json.dumps(stats))


@cache_group.command("clear")
@click.pass_context
def cache_clear(ctx: click.Context) -> None:
    """Drop every cached answer of this tenant."""
    from ragline.query.cache import AnswerCache

    with exit_on_error():
        app = app_from(ctx)
        removed = AnswerCache(app.registry).clear(app.settings.tenant)
        click.echo(f"cleared {removed} cached answer(s)")


@cli.group("workflow")
def workflow_group() -> None:
    """Prompt chains and parallel prompts as data (YAML): run locally, or export to AWS Step Functions."""


@workflow_group.command("run")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--input", "input_json", default="{}", help="The workflow's input, as a JSON object.")
@click.option("--sequential", is_flag=True, help="One model call at a time (to compare with the parallel run).")
@click.option("--no-cache", is_flag=True, help="Ignore the workflow's cache block.")
@click.pass_context
def workflow_run(ctx: click.Context, file: Path, input_json: str, sequential: bool, no_cache: bool) -> None:
    """Run a workflow with asyncio and print its result (outputs, timings per step) as JSON."""
    from ragline.workflows.models import S3Objects, WorkflowModels
    from ragline.workflows.run import load_workflow, run_workflow

    with exit_on_error():
        try:
            inputs = json.loads(input_json)
        except json.JSONDecodeError as err:
            raise InputError(f"--input is not valid JSON: {err}") from err
        if not isinstance(inputs, dict):
            raise InputError("--input must be a JSON object")
        workflow = load_workflow(file)
        app = app_from(ctx)
        models = WorkflowModels(app.settings, workflow.max_concurrency)
        cache = None if no_cache else app.registry
        result = run_workflow(workflow, inputs, models, cache=cache, sequential=sequential,
                              objects=S3Objects(app.settings))
        click.echo(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))


@workflow_group.command("export")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--bedrock-model", default=None, help="Bedrock model id for steps that name a local model.")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write the definition here (default stdout).")
def workflow_export(file: Path, bedrock_model: str | None, output: Path | None) -> None:
    """Write the AWS Step Functions state machine (ASL JSON) that runs the workflow on Bedrock."""
    from ragline.workflows.export import DEFAULT_BEDROCK_MODEL, export_asl
    from ragline.workflows.run import load_workflow

    with exit_on_error():
        definition = json.dumps(export_asl(load_workflow(file), bedrock_model=bedrock_model or DEFAULT_BEDROCK_MODEL),
                                indent=2)
        if output is None:
            click.echo(definition)
        else:
            output.write_text(definition + "\n", encoding="utf-8")
            click.echo(f"wrote {output}")


@workflow_group.command("template")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--bedrock-model", default=None, help="Bedrock model id for steps that name a local model.")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write the template here (default stdout).")
def workflow_template_command(files: tuple[Path, ...], bedrock_model: str | None, output: Path | None) -> None:
    """Write the SAM template that deploys the workflows: state machines, their roles, the cache tables."""
    import yaml

    from ragline.workflows.deploy import workflow_template
    from ragline.workflows.export import DEFAULT_BEDROCK_MODEL
    from ragline.workflows.run import load_workflow

    with exit_on_error():
        template = workflow_template([load_workflow(f) for f in files],
                                     bedrock_model=bedrock_model or DEFAULT_BEDROCK_MODEL)
        text = yaml.safe_dump(template, sort_keys=False, width=120)
        if output is None:
            click.echo(text)
        else:
            output.write_text(text, encoding="utf-8")
            click.echo(f"wrote {output}; deploy it with: sam deploy -t {output} --guided")


def main() -> None:
    """Entry point of the ``ragline`` script."""
    cli()


if __name__ == "__main__":
    main()
