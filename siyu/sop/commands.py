"""`siyu sop …` (import, export, list, show, activate, pause, tick, run, dry-run, report) and
`siyu tasks …` (the staff tasks SOPs create)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.table import Table
from sqlalchemy import select, update

from siyu.clikit import console, fail, open_brand, settings
from siyu.db import utcnow
from siyu.sop import engine as sop_engine
from siyu.sop import report as sop_report
from siyu.sop import service
from siyu.sop.definition import DefinitionError
from siyu.sop.models import StaffTask
from siyu.sop.service import SopError
from siyu.staff.models import Staff

app = typer.Typer(
    help="SOP automation 标准作业程序: triggers, journeys, guarded sends (SPEC §7).",
    no_args_is_help=True,
)
tasks_app = typer.Typer(help="Staff tasks 导购任务 created by SOPs.", no_args_is_help=True)

KeyArg = Annotated[str, typer.Argument(help="The SOP's key.")]


def playbook_paths() -> list[Path]:
    """The playbooks shipped with Siyu (SPEC §13)."""
    root = resources.files("siyu.sop") / "playbooks"
    return sorted(Path(str(p)) for p in root.iterdir() if p.name.endswith(".yaml"))


@app.command("import")
def import_(
    files: Annotated[
        list[Path] | None, typer.Argument(help="YAML definitions (one SOP per file).")
    ] = None,
    playbooks: Annotated[
        bool, typer.Option("--playbooks", help="Import the shipped playbooks (SPEC §13).")
    ] = False,
) -> None:
    """Store SOP definitions: a changed file becomes a new version, an identical one is a
    no-op. Nothing is stored from a file with errors."""
    paths = list(files or []) + (playbook_paths() if playbooks else [])
    if not paths:
        raise fail("give YAML files, or --playbooks")
    engine, brand_id = open_brand(settings())
    failed = False
    try:
        for path in paths:
            try:
                raw = service.load_yaml(path.read_text(encoding="utf-8-sig"), str(path))
                with engine.begin() as conn:
                    done = service.import_definition(conn, brand_id=brand_id, raw=raw, by="cli")
            except FileNotFoundError:
                raise fail(f"no file {path}") from None
            except DefinitionError as e:
                failed = True
                console.print(f"[red]{path}[/red]: not imported")
                for line in e.errors:
                    console.print(f"  {line}", highlight=False)
                continue
            what = (
                f"version {done.version}" if done.changed else f"unchanged (version {done.version})"
            )
            console.print(f"{done.key}: {what}")
    finally:
        engine.dispose()
    if failed:
        raise typer.Exit(code=2)


@app.command("export")
def export(key: KeyArg) -> None:
    """Print the current version as YAML."""
    engine, brand_id = open_brand(settings())
    try:
        with engine.connect() as conn:
            cur = service.get(conn, brand_id=brand_id, key=key)
    except SopError as e:
        raise fail(str(e)) from None
    finally:
        engine.dispose()
    typer.echo(service.to_yaml(cur.definition), nl=False)


@app.command("list")
def list_() -> None:
    """SOPs with status, version and trigger."""
    engine, brand_id = open_brand(settings())
    try:
        with engine.connect() as conn:
            table = Table("key", "name", "status", "version", "trigger")
            for sop in service.list_all(conn, brand_id=brand_id):
                defn = service.definition_of(conn, sop.id, sop.version)
                table.add_row(sop.key, sop.name, sop.status, str(sop.version), defn.trigger.kind)
    finally:
        engine.dispose()
    console.print(table)


@app.command("show")
def show(key: KeyArg) -> None:
    """One SOP: status, trigger state, steps and journeys by status."""
    from sqlalchemy import func

    from siyu.sop.models import SopEnrollment

    engine, brand_id = open_brand(settings())
    try:
        with engine.connect() as conn:
            cur = service.get(conn, brand_id=brand_id, key=key)
            counts = conn.execute(
                select(SopEnrollment.status, func.count())
                .where(SopEnrollment.sop_id == cur.sop.id)
                .group_by(SopEnrollment.status)
            ).all()
    except SopError as e:
        raise fail(str(e)) from None
    finally:
        engine.dispose()
    s, d = cur.sop, cur.definition
    console.print(f"[bold]{s.key}[/bold] {s.name} — {s.status}, version {s.version}")
    console.print(f"trigger: {d.trigger.model_dump(exclude_none=True)}")
    console.print(f"audience: {d.audience.model_dump(exclude_none=True) or 'everyone triggered'}")
    for i, step in enumerate(d.steps):
        console.print(f"  {i}. {step.kind}" + (f" ({step.id})" if step.id else ""))
    console.print("journeys: " + (", ".join(f"{k} {n}" for k, n in counts) or "none"))


def _set(key: str, status: str) -> None:
    engine, brand_id = open_brand(settings())
    try:
        with engine.begin() as conn:
            service.set_status(conn, brand_id=brand_id, key=key, status=status, now=utcnow())
    except SopError as e:
        raise fail(str(e)) from None
    finally:
        engine.dispose()
    console.print(f"{key}: {status}")


@app.command("activate")
def activate(key: KeyArg) -> None:
    """Start running an SOP (its triggers count from now)."""
    _set(key, "active")


@app.command("pause")
def pause(key: KeyArg) -> None:
    """Stop firing and advancing; journeys resume where they were on activate."""
    _set(key, "paused")


def _tick_once() -> sop_engine.TickReport:
    s = settings()
    engine, brand_id = open_brand(s)
    try:
        return sop_engine.tick(s, engine, brand_id)
    except SopError as e:
        raise fail(str(e)) from None
    finally:
        engine.dispose()


def _print_tick(r: sop_engine.TickReport) -> None:
    if r.busy:
        console.print("another process is ticking; skipped")
        return
    fired = ", ".join(f"{k} +{n}" for k, n in r.fired.items() if n) or "none"
    console.print(
        f"enrolled: {fired} (holdout {r.holdout}); steps: "
        + (", ".join(f"{k} {n}" for k, n in r.steps.items()) or "none")
        + f"; enqueued {r.enqueued}; tasks {r.tasks}"
    )
    for key, error in r.errors.items():
        console.print(f"  [red]{key}[/red]: {error}", highlight=False)
    for note, n in r.notes.items():
        console.print(f"  not reached — {note}: {n}", highlight=False)


@app.command("tick")
def tick() -> None:
    """One pass: fire triggers, enroll, advance due journeys, enqueue their messages."""
    _print_tick(_tick_once())


@app.command("run")
def run(
    every: Annotated[float, typer.Option(help="Seconds between ticks.")] = 30.0,
) -> None:
    """Tick forever (several may run: on PostgreSQL they take turns by advisory lock)."""
    try:
        while True:
            _print_tick(_tick_once())
            time.sleep(every)
    except KeyboardInterrupt:
        pass


@app.command("dry-run")
def dry_run(key: KeyArg) -> None:
    """Audience after each guard and one rendered sample per variant; sends nothing."""
    s = settings()
    engine, brand_id = open_brand(s)
    try:
        r = sop_report.dry_run(s, engine, brand_id, key, datetime.now(UTC))
    except SopError as e:
        raise fail(str(e)) from None
    finally:
        engine.dispose()
    console.print(f"[bold]{r.key}[/bold] version {r.version} — dry run, nothing sent")
    table = Table("guard", "count")
    for label, n in r.funnel:
        table.add_row(label, str(n))
    console.print(table)
    if r.held_until is not None:
        held = r.held_until.astimezone(ZoneInfo(s.timezone)).strftime("%Y-%m-%d %H:%M")
        console.print(f"quiet hours 免打扰: held until {held} ({s.timezone})")
    for label, sample in r.samples:
        console.print(f"[bold]{label}[/bold]: {sample}", highlight=False)


@app.command("report")
def report(key: KeyArg) -> None:
    """Reached, delivered, converted, holdout conversion and uplift with its 95 % CI."""
    engine, brand_id = open_brand(settings())
    try:
        with engine.connect() as conn:
            r = sop_report.report(conn, brand_id=brand_id, key=key)
    except SopError as e:
        raise fail(str(e)) from None
    finally:
        engine.dispose()

    def pct(x: float | None) -> str:
        return "—" if x is None else f"{x:.1%}"

    table = Table("measure", "value")
    table.add_row("journeys 参与", str(r.enrolled))
    table.add_row("reached 触达 (outbox rows)", str(r.reached))
    table.add_row("delivered 送达", str(r.delivered))
    table.add_row(f"converted 转化 ({r.conversion_days} d)",
                  f"{r.treated_converted} / {r.treated} = {pct(r.conversion)}")  # fmt: skip
    table.add_row("holdout conversion 对照组转化",
                  f"{r.holdout_converted} / {r.holdout} = {pct(r.holdout_conversion)}")  # fmt: skip
    u = r.uplift
    table.add_row("uplift 增量 (95 % CI)",
                  "— (no holdout)" if u is None else
                  f"{u[0]:+.1%} ({u[1]:+.1%} … {u[2]:+.1%})")  # fmt: skip
    console.print(table)


@tasks_app.command("list")
def tasks_list(
    staff: Annotated[str | None, typer.Option(help="Only this staff member's (code).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Done and skipped too.")] = False,
) -> None:
    """Open staff tasks, soonest due first."""
    engine, brand_id = open_brand(settings())
    try:
        with engine.connect() as conn:
            q = (
                select(StaffTask.id, Staff.code, StaffTask.customer_id, StaffTask.title,
                       StaffTask.due_at, StaffTask.status, StaffTask.sop_key)
                .join(Staff, Staff.id == StaffTask.staff_id)
                .where(StaffTask.brand_id == brand_id)
                .order_by(StaffTask.due_at, StaffTask.id)
            )  # fmt: skip
            if staff:
                q = q.where(Staff.code == staff)
            if not all_:
                q = q.where(StaffTask.status == "open")
            rows = conn.execute(q).all()
    finally:
        engine.dispose()
    table = Table("id", "staff", "customer", "title", "due", "status", "sop")
    for r in rows:
        table.add_row(str(r[0]), r[1], str(r[2]), r[3], f"{r[4]:%Y-%m-%d %H:%M}", r[5], r[6] or "")
    console.print(table)


def _task_status(task_id: int, status: str) -> None:
    engine, brand_id = open_brand(settings())
    try:
        with engine.begin() as conn:
            n = conn.execute(
                update(StaffTask)
                .where(StaffTask.id == task_id, StaffTask.brand_id == brand_id)
                .values(status=status, done_at=utcnow())
            ).rowcount
    finally:
        engine.dispose()
    if not n:
        raise fail(f"no task {task_id}")
    console.print(f"task {task_id}: {status}")


@tasks_app.command("done")
def tasks_done(task_id: Annotated[int, typer.Argument(help="The task's id.")]) -> None:
    """Mark a task done."""
    _task_status(task_id, "done")


@tasks_app.command("skip")
def tasks_skip(task_id: Annotated[int, typer.Argument(help="The task's id.")]) -> None:
    """Mark a task skipped."""
    _task_status(task_id, "skipped")
