"""What every ``ragline`` command shares: settings, the app, key=value pairs, error exits, ingestion progress."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from ragline.errors import ConfigError, InputError, RaglineError, validation_message


def settings_from(ctx: click.Context, **overrides: Any) -> Any:
    """The Settings of the command's options and ``overrides`` (a ConfigError says what is invalid)."""
    from pydantic import ValidationError

    from ragline.settings import Settings

    try:
        return Settings(**{k: v for k, v in {**ctx.obj, **overrides}.items() if v is not None})
    except ValidationError as err:
        raise ConfigError(f"invalid settings: {validation_message(err)}") from err


def app_from(ctx: click.Context, **overrides: Any) -> Any:
    """A Ragline over ``settings_from``."""
    from ragline.compose import Ragline

    return Ragline(settings_from(ctx, **overrides))


def pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    """``key=value`` options as a dict (an InputError names the malformed one)."""
    out = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key.strip():
            raise InputError(f"{what} takes key=value, got {value!r}")
        out[key.strip()] = val.strip()
    return out


@contextmanager
def exit_on_error() -> Iterator[None]:
    """Print a RaglineError as ``error: …`` and exit with its code."""
    try:
        yield
    except RaglineError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)


def run_ingest(app: Any, items: Any, total: Any, tags: tuple[str, ...] = ()) -> Any:
    """Run the ingestor, with a progress bar on a terminal (``total`` is called only then).

    Elsewhere (a log file, CI) a plain line every ``progress_seconds`` (``RAGLINE_PROGRESS_SECONDS``) tells
    how far a long run is, so a log never sits silent for an hour.
    """
    if not sys.stderr.isatty():
        every = app.settings.progress_seconds
        started = last = time.monotonic()

        def log(done: int, chunks: int) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last >= every:
                last = now
                click.echo(f"ingesting: {done} documents, {chunks} chunks, "
                           f"{chunks / max(now - started, 1e-9):.0f} chunks/s", err=True)

        return app.ingestor.run(items, tags=tags, progress=log)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[chunks]} chunks, {task.fields[rate]:.0f}/s"), TimeRemainingColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("ingesting", total=total(), chunks=0, rate=0.0)

        def show(done: int, chunks: int) -> None:
            elapsed = bar.tasks[task].elapsed or 0.0
            bar.update(task, completed=done, chunks=chunks, rate=chunks / elapsed if elapsed else 0.0)

        return app.ingestor.run(items, tags=tags, progress=show)
