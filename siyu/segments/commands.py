"""`siyu segments …`: create, update, list, count, preview, export and refresh segments."""

from __future__ import annotations

import csv
import json
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from siyu.audit import service as audit
from siyu.clikit import cli_actor, console, fail, metric_constants, open_brand, settings
from siyu.config import Settings
from siyu.metrics.scope import Scope
from siyu.segments import evaluate, service
from siyu.segments.rules import FIELDS, Node
from siyu.segments.service import SegmentError
from siyu.warehouse.service import Warehouse, open_synced

app = typer.Typer(
    help="Segments 人群: rules over profile, tags, orders, lifecycle, RFM… (SPEC §6).",
    no_args_is_help=True,
)

NameArg = Annotated[str | None, typer.Argument(help="A saved segment's name.")]
AsOfOpt = Annotated[
    str | None,
    typer.Option(
        "--as-of",
        help="Evaluate as of the start of this day, YYYY-MM-DD (brand-local; default: now).",
    ),
]
RuleOpt = Annotated[
    Path | None, typer.Option("--rule", help="A rule JSON file instead of a saved segment.")
]


def _read_rule(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise fail(f"--rule: no file {path}") from None
    except json.JSONDecodeError as e:
        raise fail(f"--rule: {path}, line {e.lineno} column {e.colno}: {e.msg}") from None


def _rule_of(s: Settings, name: str | None, rule_file: Path | None) -> tuple[str, Node]:
    """The rule to evaluate: a saved segment's, or a file's; (label, parsed rule)."""
    if (name is None) == (rule_file is None):
        raise fail("give a saved segment's NAME or --rule FILE (one of them)")
    try:
        if rule_file is not None:
            return str(rule_file), service.parse_or_raise(_read_rule(rule_file))
        engine, brand_id = open_brand(s)
        try:
            with engine.connect() as conn:
                seg = service.get_by_name_or_raise(conn, brand_id=brand_id, name=name or "")
        finally:
            engine.dispose()
        return seg.name, service.parse_or_raise(seg.rule)
    except SegmentError as e:
        raise fail(str(e)) from None


def _instant(s: Settings, as_of: str | None) -> datetime:
    """Now, or the instant `as_of` begins in the brand's zone."""
    if as_of is None:
        return datetime.now(UTC)
    try:
        day = date.fromisoformat(as_of)
    except ValueError:
        raise fail(f"--as-of: {as_of!r} is not a date (YYYY-MM-DD)") from None
    return evaluate.day_start(day, s.timezone)


def _evaluation(
    s: Settings, wh: Warehouse, rule: Node, as_of: str | None = None
) -> evaluate.Evaluation:
    return evaluate.prepare(
        wh.con,
        rule,
        scope=Scope(wh.brand_id, s.timezone),
        as_of=_instant(s, as_of),
        constants=metric_constants(s),
    )


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Name of the new segment.")],
    rule: Annotated[Path, typer.Option("--rule", help="The rule as a JSON file.")],
    description: Annotated[str | None, typer.Option(help="What the segment is for.")] = None,
) -> None:
    """Save a rule under a name (checked first; nothing is saved if it is malformed)."""
    s = settings()
    raw = _read_rule(rule)
    engine, brand_id = open_brand(s)
    try:
        with engine.begin() as conn:
            service.create(conn, brand_id=brand_id, name=name, rule=raw, description=description)
    except SegmentError as e:
        raise fail(str(e)) from None
    finally:
        engine.dispose()
    console.print(
        f"Segment {name!r} saved (version 1). Count it with [bold]siyu segments count "
        f"{name!r}[/bold]; members are recorded by [bold]siyu segments refresh[/bold]."
    )


@app.command("update")
def update(
    name: Annotated[str, typer.Argument(help="A saved segment's name.")],
    rule: Annotated[Path, typer.Option("--rule", help="The new rule as a JSON file.")],
) -> None:
    """Replace a segment's rule; the version moves, members change at the next refresh."""
    s = settings()
    raw = _read_rule(rule)
    engine, brand_id = open_brand(s)
    try:
        with engine.begin() as conn:
            version = service.update_rule(conn, brand_id=brand_id, name=name, rule=raw)
    except SegmentError as e:
        raise fail(str(e)) from None
    finally:
        engine.dispose()
    console.print(f"Segment {name!r} is now version {version}.")


@app.command("list")
def list_cmd() -> None:
    """Saved segments with their version, members at the last refresh and its time."""
    s = settings()
    engine, brand_id = open_brand(s)
    try:
        with engine.connect() as conn:
            segs = service.list_all(conn, brand_id=brand_id)
    finally:
        engine.dispose()
    if not segs:
        console.print("No segments yet: [bold]siyu segments create NAME --rule rule.json[/bold]")
        return
    t = Table(title="Segments 人群")
    for col in ("name", "version", "members", "refreshed", "rule"):
        t.add_column(col, justify="right" if col in ("version", "members") else "left")
    for seg in segs:
        rule = json.dumps(seg.rule, ensure_ascii=False)
        t.add_row(
            seg.name,
            str(seg.version),
            f"{seg.member_count:,}" if seg.refreshed_at else "—",
            seg.refreshed_at.strftime("%Y-%m-%d %H:%M UTC") if seg.refreshed_at else "never",
            rule if len(rule) <= 60 else rule[:57] + "…",
        )
    console.print(t)


@app.command("count")
def count(name: NameArg = None, rule: RuleOpt = None, as_of: AsOfOpt = None) -> None:
    """How many customers the rule selects now (counted before use)."""
    s = settings()
    label, parsed = _rule_of(s, name, rule)
    wh = open_synced(s)
    try:
        started = time.perf_counter()
        ev = _evaluation(s, wh, parsed, as_of)
        n = evaluate.count(wh.con, ev)
    finally:
        wh.con.close()
    source = f", attributes from the {ev.snapshot} snapshot" if ev.snapshot else ""
    console.print(
        f"{label}: [bold]{n:,}[/bold] customers "
        f"[dim]({time.perf_counter() - started:.2f} s{source})[/dim]"
    )


@app.command("preview")
def preview(
    name: NameArg = None,
    rule: RuleOpt = None,
    limit: Annotated[int, typer.Option(help="Rows to show.", min=1, max=1000)] = 10,
    as_of: AsOfOpt = None,
) -> None:
    """A sample of the members with masked PII (phone 138****8000, name 王**)."""
    s = settings()
    label, parsed = _rule_of(s, name, rule)
    wh = open_synced(s)
    try:
        ev = _evaluation(s, wh, parsed, as_of)
        total = evaluate.count(wh.con, ev)
        rows = evaluate.profiles(wh.con, ev, limit=limit)
    finally:
        wh.con.close()
    t = Table(title=f"{label}: {total:,} customers (first {len(rows)})")
    for col, right in (("id", True), ("name", False), ("phone", False), ("city", False),
                       ("gender", False), ("orders", True), ("net ¥", True), ("last order", False)):  # fmt: skip
        t.add_column(col, justify="right" if right else "left", no_wrap=True)
    for r in rows:
        t.add_row(
            str(r["customer_id"]),
            r["name"] or "",
            r["phone"] or "",
            r["city"] or "",
            r["gender"] or "",
            str(r["paid_orders"]),
            f"{r['net_fen'] / 100:,.2f}",
            str(r["last_order_day"] or ""),
        )
    console.print(t)


@app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", help="CSV file to write (UTF-8 with BOM).")],
    name: NameArg = None,
    rule: RuleOpt = None,
    pii: Annotated[
        bool, typer.Option("--pii", help="Write unmasked names and phones (PIPL: only if needed).")
    ] = False,
    as_of: AsOfOpt = None,
) -> None:
    """Every member as CSV, PII masked unless --pii."""
    s = settings()
    label, parsed = _rule_of(s, name, rule)
    wh = open_synced(s)
    try:
        rows = evaluate.profiles(wh.con, _evaluation(s, wh, parsed, as_of), pii=pii)
    finally:
        wh.con.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    # UTF-8 with BOM: Excel in China opens it with the right encoding.
    with out.open("w", encoding="utf-8-sig", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(evaluate.PROFILE_COLUMNS))
        w.writeheader()
        w.writerows(rows)
    engine, brand_id = open_brand(s)
    with engine.begin() as conn:
        audit.record(
            conn, brand_id=brand_id, actor=cli_actor(), action="export", target=f"segment:{label}",
            detail={"file": str(out), "customers": len(rows), "pii": pii},
        )  # fmt: skip
    engine.dispose()
    console.print(f"{label}: {len(rows):,} customers written to {out}")


@app.command("refresh")
def refresh(
    names: Annotated[
        list[str] | None, typer.Argument(help="Segments to refresh (default: all saved).")
    ] = None,
    as_of: AsOfOpt = None,
) -> None:
    """Recompute members; record entries and exits and emit segment.entered / segment.exited
    events for the SOP engine."""
    s = settings()
    constants = metric_constants(s)
    engine, brand_id = open_brand(s)
    try:
        with engine.connect() as conn:
            todo = names or service.list_names(conn, brand_id=brand_id)
        if not todo:
            console.print("No segments to refresh.")
            return
        wh = open_synced(s)
        try:
            t = Table(title="Segment refresh 人群刷新")
            for col in ("segment", "refresh", "members", "entered", "exited", "seconds"):
                t.add_column(col, justify="left" if col == "segment" else "right")
            for name in todo:
                started = time.perf_counter()
                r = service.refresh(
                    engine, wh.con, scope=Scope(brand_id, s.timezone), name=name,
                    constants=constants, as_of=_instant(s, as_of),
                )  # fmt: skip
                t.add_row(
                    r.segment, str(r.refresh_no), f"{r.members:,}", f"{r.entered:,}",
                    f"{r.exited:,}", f"{time.perf_counter() - started:.2f}",
                )  # fmt: skip
        finally:
            wh.con.close()
    except SegmentError as e:
        raise fail(str(e)) from None
    finally:
        engine.dispose()
    console.print(t)


@app.command("fields")
def fields() -> None:
    """The fields a rule can use, with their operators and options."""
    t = Table(title="Rule fields 规则字段")
    for col in ("field", "operators", "options", "meaning"):
        t.add_column(col)
    for f in FIELDS.values():
        values = f" ({', '.join(f.choices)})" if f.choices else ""
        t.add_row(f.name, ", ".join(f.ops), ", ".join(f.options), f.help + values)
    console.print(t)
