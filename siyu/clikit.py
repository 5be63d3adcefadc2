"""What every command module shares: the consoles, the --data-dir state, settings, failing."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from siyu.config import Settings, load_settings

console = Console()
err = Console(stderr=True)


class State:
    data_dir: Path | None = None


def settings() -> Settings:
    return load_settings(data_dir=State.data_dir)


def fail(message: str) -> typer.Exit:
    """Print a clear error (no traceback) and return the exit to raise."""
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code=2)
