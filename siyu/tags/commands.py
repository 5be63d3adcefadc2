"""`siyu tags …`: tag groups and tags, who carries them, and rule tags' daily refresh."""

from __future__ import annotations

import csv
import getpass
import json
import time
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.table import Table
from sqlalchemy import Connection, text

from siyu.clikit import console, err, fail, metric_constants, open_brand, settings
from siyu.customers import service as customer_service
from siyu.metrics.scope import Scope
from siyu.segments.commands import _instant
from siyu.segments.service import SegmentError
from siyu.segments.service import get_by_name_or_raise as get_segment
from siyu.tags import refresh as rule_refresh
from siyu.tags import service
from siyu.tags.service import TagError
from siyu.warehouse.service import open_synced

app = typer.Typer(
    help="Tags 标签: groups, tags, who carries them (with history), rule tags (SPEC §3, §6).",
    no_args_is_help=True,
)

TagArg = Annotated[str, typer.Argument(help="A tag: its id, its name, or GROUP/NAME.")]
ForceOpt = Annotated[
    bool, typer.Option("--force", help="Even when saved segments or rule tags name the tag.")
]
ByOpt = Annotated[
    str | None, typer.Option("--by", help="Who does it, for the history (default: your login).")
]
CustomersOpt = Annotated[
    list[str] | None,
    typer.Option("--customer", help="A customer: id or type:value (repeatable)."),
]
SegmentOpt = Annotated[
    str | None, typer.Option("--segment", help="A saved segment: its members at its last refresh.")
]
CsvOpt = Annotated[
    Path | None,
    typer.Option("--csv", help="A CSV file whose first column is a customer id or type:value."),
]
HEADERS = {"customer", "customer_id", "key", "id", "顾客"}


def _by(by: str | None) -> str:
    return by or getpass.getuser()


def _run(work: Any) -> Any:
    """Run `work(conn, brand_id)` in one transaction; a TagError is a clear error, no traceback."""
    engine, brand_id = open_brand(settings())
    try:
        with engine.begin() as conn:
            return work(conn, brand_id)
    except TagError as e:
        raise fail(str(e)) from None
    finally:
        engine.dispose()


@app.command("groups")
def groups() -> None:
    """Tag groups 标签组 with their number of tags and WeCom group id."""
    rows = _run(lambda conn, b: service.list_groups(conn, brand_id=b))
    if not rows:
        console.print("No tag groups yet: [bold]siyu tags create GROUP NAME[/bold]")
        return
    t = Table(title="Tag groups 标签组")
    for col in ("id", "group", "tags", "WeCom id"):
        t.add_column(col, justify="right" if col in ("id", "tags") else "left")
    for r in rows:
        t.add_row(str(r["id"]), r["name"], str(r["tags"]), r["wecom_group_id"] or "—")
    console.print(t)


@app.command("list")
def list_cmd(
    group: Annotated[str | None, typer.Option("--group", help="Only this tag group.")] = None,
) -> None:
    """Tags with their kind, WeCom id and how many customers carry each."""
    rows = _run(lambda conn, b: service.list_tags(conn, brand_id=b, group=group))
    if not rows:
        console.print("No tags yet: [bold]siyu tags create GROUP NAME[/bold]")
        return
    t = Table(title="Tags 标签")
    for col in ("id", "group", "tag", "kind", "customers", "WeCom id"):
        t.add_column(col, justify="right" if col in ("id", "customers") else "left")
    for r in rows:
        t.add_row(str(r["id"]), r["group"], r["name"], r["kind"], f"{r['customers']:,}",
                  r["wecom_tag_id"] or "—")  # fmt: skip
    console.print(t)


def _read_rule(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise fail(f"--rule: no file {path}") from None
    except json.JSONDecodeError as e:
        raise fail(f"--rule: {path}, line {e.lineno} column {e.colno}: {e.msg}") from None


@app.command("create")
def create(
    group: Annotated[str, typer.Argument(help="Tag group (created on first use).")],
    name: Annotated[str, typer.Argument(help="Tag name, unique in its group.")],
    rule: Annotated[
        Path | None,
        typer.Option(
            "--rule", help="A segment rule (JSON file): makes a rule tag, refreshed daily."
        ),
    ] = None,
) -> None:
    """Create a tag (manual, or a rule tag with --rule)."""
    raw = _read_rule(rule) if rule is not None else None
    tag_id = _run(lambda conn, b: service.create_tag(conn, brand_id=b, group=group, name=name,
                                                     rule=raw))  # fmt: skip
    kind = "rule tag" if raw is not None else "tag"
    console.print(f"Created {kind} {group.strip()}/{name.strip()} (id {tag_id}).")
    if raw is not None:
        console.print("Its customers are set by [bold]siyu tags refresh[/bold] (run daily).")


@app.command("rule")
def set_rule(
    tag: TagArg,
    rule: Annotated[Path, typer.Option("--rule", help="The new segment rule (JSON file).")],
) -> None:
    """Replace a rule tag's rule; its customers change at the next refresh."""
    raw = _read_rule(rule)

    def work(conn: Connection, b: int) -> str:
        info = service.find_tag(conn, brand_id=b, ref=tag)
        service.set_rule(conn, brand_id=b, tag=info, rule=raw)
        return info.label

    console.print(f"Rule of {_run(work)} replaced; run [bold]siyu tags refresh[/bold].")


@app.command("rename")
def rename(
    tag: TagArg,
    new_name: Annotated[str, typer.Argument(help="The new name, unique in the tag's group.")],
    force: ForceOpt = False,
) -> None:
    """Rename a tag (it keeps its id, customers and WeCom id)."""

    def work(conn: Connection, b: int) -> str:
        info = service.find_tag(conn, brand_id=b, ref=tag)
        service.rename_tag(conn, brand_id=b, tag=info, new_name=new_name, force=force)
        return info.label

    old = _run(work)
    console.print(f"Renamed {old} to {new_name.strip()}.")


@app.command("delete")
def delete(tag: TagArg, force: ForceOpt = False, by: ByOpt = None) -> None:
    """Delete a tag, untagging its customers (each removal kept in their history)."""

    def work(conn: Connection, b: int) -> tuple[str, int]:
        info = service.find_tag(conn, brand_id=b, ref=tag)
        return info.label, service.delete_tag(conn, brand_id=b, tag=info, by=_by(by), force=force)

    label, n = _run(work)
    console.print(f"Deleted {label}; {n:,} customers untagged.")


@app.command("merge")
def merge(
    src: Annotated[str, typer.Argument(help="The tag to merge away (deleted afterwards).")],
    dst: Annotated[str, typer.Argument(help="The tag its customers get.")],
    force: ForceOpt = False,
    by: ByOpt = None,
) -> None:
    """Give SRC's customers DST, then delete SRC (with history)."""

    def work(conn: Connection, b: int) -> tuple[str, str, int, int]:
        s_info = service.find_tag(conn, brand_id=b, ref=src, field="SRC")
        d_info = service.find_tag(conn, brand_id=b, ref=dst, field="DST")
        added, removed = service.merge_tags(conn, brand_id=b, src=s_info, dst=d_info,
                                            by=_by(by), force=force)  # fmt: skip
        return s_info.label, d_info.label, added, removed

    s_label, d_label, added, removed = _run(work)
    console.print(
        f"Merged {s_label} into {d_label}: {removed:,} customers had {s_label}, "
        f"{added:,} newly got {d_label}; {s_label} is deleted."
    )


def _keys(customers: list[str] | None, segment: str | None, csv_file: Path | None) -> Any:
    given = [x for x in (customers, segment, csv_file) if x]
    if len(given) != 1:
        raise fail("give exactly one of --customer KEY…, --segment NAME, --csv FILE")
    if customers:
        return [(f"--customer #{i}", k) for i, k in enumerate(customers, 1)]
    if segment:
        return segment
    assert csv_file is not None
    try:
        with csv_file.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            keys = []
            for row in reader:
                if not row or not row[0].strip():
                    continue
                if not keys and reader.line_num == 1 and row[0].strip().lower() in HEADERS:
                    continue
                keys.append((f"line {reader.line_num}", row[0]))
    except FileNotFoundError:
        raise fail(f"--csv: no file {csv_file}") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise fail(f"--csv: {csv_file} is not a UTF-8 CSV file ({e})") from None
    if not keys:
        raise fail(f"--csv: {csv_file} names no customers")
    return keys


def _customers(conn: Connection, b: int, keys: Any) -> list[int]:
    """The customers the keys name; any bad key fails the whole command (nothing is changed)."""
    if isinstance(keys, str):
        try:
            seg = get_segment(conn, brand_id=b, name=keys)
        except SegmentError as e:
            raise TagError(f"--segment: {e}") from None
        if seg.refreshed_at is None:
            raise TagError(f"--segment: {seg.name!r} was never refreshed (siyu segments refresh)")
        return list(
            conn.execute(
                text(
                    "SELECT customer_id FROM segment_member WHERE segment_id = :s "
                    "AND exited_at IS NULL"
                ),
                {"s": seg.id},
            ).scalars()
        )
    ids, bad = customer_service.resolve_keys(conn, brand_id=b, keys=keys)
    if bad:
        for where, key, why in bad:
            err.print(f"  {where}: {key!r} — {why}", highlight=False)
        raise TagError(
            f"{len(bad)} of {len(keys)} customers not found (listed above); nothing changed"
        )
    return ids


def _change(action: str, tag: str, keys: Any, by: str | None) -> None:
    def work(conn: Connection, b: int) -> tuple[str, int, int]:
        info = service.find_tag(conn, brand_id=b, ref=tag)
        ids = _customers(conn, b, keys)
        fn = service.tag_customers if action == "add" else service.untag_customers
        n = fn(conn, brand_id=b, tag_id=info.id, customer_ids=ids, by=_by(by), source="manual")
        return info.label, len(set(ids)), n

    label, asked, n = _run(work)
    if action == "add":
        console.print(f"{label}: {n:,} customers tagged ({asked - n:,} of {asked:,} already were).")
    else:
        console.print(
            f"{label}: {n:,} customers untagged ({asked - n:,} of {asked:,} did not have it)."
        )


@app.command("add")
def add(
    tag: TagArg,
    customer: CustomersOpt = None,
    segment: SegmentOpt = None,
    csv_file: CsvOpt = None,
    by: ByOpt = None,
) -> None:
    """Tag customers (by key, a saved segment's members, or a CSV); bad keys are listed by line
    and nothing is changed."""
    _change("add", tag, _keys(customer, segment, csv_file), by)


@app.command("remove")
def remove(
    tag: TagArg,
    customer: CustomersOpt = None,
    segment: SegmentOpt = None,
    csv_file: CsvOpt = None,
    by: ByOpt = None,
) -> None:
    """Untag customers (same ways of naming them as `add`)."""
    _change("remove", tag, _keys(customer, segment, csv_file), by)


@app.command("refresh")
def refresh(
    tags: Annotated[
        list[str] | None, typer.Argument(help="Rule tags to refresh (default: all of them).")
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Evaluate as of the start of this day (default: now)."),
    ] = None,
) -> None:
    """Set each rule tag's customers to its rule's members (warehouse synced first); additions
    and removals go to history and emit tag.added / tag.removed events. Run daily."""
    s = settings()
    constants = metric_constants(s)
    engine, brand_id = open_brand(s)
    try:
        todo = rule_refresh.rule_tags(engine, brand_id=brand_id, refs=tags)
        if not todo:
            console.print("No rule tags: [bold]siyu tags create GROUP NAME --rule rule.json[/bold]")
            return
        wh = open_synced(s)
        t = Table(title="Rule tag refresh 规则标签刷新")
        for col in ("tag", "customers", "added", "removed", "seconds"):
            t.add_column(col, justify="left" if col == "tag" else "right")
        try:
            for tag in todo:
                started = time.perf_counter()
                r = rule_refresh.refresh(engine, wh.con, scope=Scope(brand_id, s.timezone), tag=tag,
                                         constants=constants, as_of=_instant(s, as_of))  # fmt: skip
                t.add_row(r.tag, f"{r.members:,}", f"{r.added:,}", f"{r.removed:,}",
                          f"{time.perf_counter() - started:.2f}")  # fmt: skip
        finally:
            wh.con.close()
    except TagError as e:
        raise fail(str(e)) from None
    finally:
        engine.dispose()
    console.print(t)


@app.command("history")
def history(
    key: Annotated[str, typer.Argument(help="Customer id or type:value, e.g. phone:13800138000")],
    limit: Annotated[int, typer.Option(help="Latest changes to show.", min=1, max=10_000)] = 50,
) -> None:
    """A customer's tag changes, newest first: added / removed, by whom, how, when."""
    s = settings()

    def work(conn: Connection, b: int) -> tuple[int, list[dict[str, Any]]]:
        try:
            cid, _ = customer_service.resolve_key_or_raise(conn, brand_id=b, key=key)
        except customer_service.CustomerNotFound as e:
            raise TagError(f"KEY: {e}") from None
        return cid, service.customer_history(conn, customer_id=cid, limit=limit)

    cid, rows = _run(work)
    zone = ZoneInfo(s.timezone)
    t = Table(title=f"Tag history 标签记录 of customer {cid} ({s.timezone})")
    for col in ("at", "tag", "action", "by", "source"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["at"].astimezone(zone).strftime("%Y-%m-%d %H:%M"), r["tag"], r["action"],
                  r["by"] or "", r["source"])  # fmt: skip
    console.print(t if rows else f"Customer {cid} has no tag changes.")
