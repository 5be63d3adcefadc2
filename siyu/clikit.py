"""What every command module shares: the consoles, the --data-dir state, settings, failing."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import typer
from rich.console import Console

from siyu.config import Settings, load_settings

console = Console()
err = Console(stderr=True)


class State:
    data_dir: Path | None = None


def settings() -> Settings:
    return load_settings(data_dir=State.data_dir)


def open_brand(s: Settings):  # type: ignore[no-untyped-def]
    """siyu.runtime.open_brand for a command: a PII key problem (no key for sealed data, the
    wrong key) is a clear error, not a traceback."""
    from siyu import pii, runtime

    try:
        return runtime.open_brand(s)
    except pii.PiiError as e:
        raise fail(str(e)) from None


def fail(message: str) -> typer.Exit:
    """Print a clear error (no traceback) and return the exit to raise."""
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code=2)


def metric_constants(s: Settings):  # type: ignore[no-untyped-def]
    """The SPEC §5–6 constants from the settings; a bad one is a clear error, not a traceback."""
    try:
        return s.metric_constants
    except ValueError as e:
        raise fail(f"settings: {e}") from None


def as_of_day(s: Settings, value: str | None) -> date:
    """`--as-of DATE` (default: today, brand-local); a malformed or future day is an error."""
    today = datetime.now(ZoneInfo(s.timezone)).date()
    if value is None:
        return today
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise fail(f"--as-of: {value!r} is not a date (YYYY-MM-DD)") from None
    if day > today:
        raise fail(f"--as-of {day} is in the future (today is {today})")
    return day


def cli_actor() -> str:
    """Who is at the terminal, as the audit log names them (SPEC §12)."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "cli:unknown"
