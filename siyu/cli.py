"""The `siyu` command line (Typer + Rich)."""

from __future__ import annotations

import gc
import sys
import time
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.table import Table
from rich.tree import Tree
from sqlalchemy import Engine, text

from siyu import clikit, migrate, pii
from siyu.audit import service as audit
from siyu.auth import commands as auth_commands
from siyu.automation import commands as automation_commands
from siyu.clikit import State, cli_actor, console, err, open_brand
from siyu.config import Settings
from siyu.customers import service as customer_service
from siyu.db import make_engine
from siyu.identity import service as identity_service
from siyu.identity.normalize import InvalidIdentifier, parse_key
from siyu.imports import service as import_service
from siyu.imports.reader import FileUnreadable
from siyu.lifecycle import reports as lifecycle_reports
from siyu.lifecycle.commands import lifecycle as lifecycle_cmd
from siyu.metrics import commands as metric_commands
from siyu.privacy import commands as privacy_commands
from siyu.segments import commands as segment_commands
from siyu.sop import commands as sop_commands
from siyu.tags import commands as tag_commands
from siyu.tags import service as tag_service
from siyu.warehouse import commands as warehouse_commands
from siyu.warehouse import duck
from siyu.wecom.cli import wecom_app, wecom_sim

app = typer.Typer(
    help="Siyu (私域): one owned customer base for a consumer brand.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
customer_app = typer.Typer(help="Look up unified customers.", no_args_is_help=True)
identity_app = typer.Typer(
    help="Identity resolution: quarantine, unmerge, relink.", no_args_is_help=True
)
app.add_typer(customer_app, name="customer")
customer_app.command("export")(privacy_commands.export)
customer_app.command("erase")(privacy_commands.erase)
customer_app.command("recollect")(privacy_commands.recollect)
app.add_typer(identity_app, name="identity")
app.add_typer(warehouse_commands.app, name="warehouse")
app.add_typer(metric_commands.metrics_app, name="metrics")
app.add_typer(metric_commands.clv_app, name="clv")
app.command("cohorts")(metric_commands.cohorts)
app.command("lifecycle")(lifecycle_cmd)
app.command("quadrant")(lifecycle_reports.quadrant)
app.command("ladder")(lifecycle_reports.ladder)
app.add_typer(segment_commands.app, name="segments")
app.add_typer(tag_commands.app, name="tags")
app.add_typer(wecom_app, name="wecom")
app.add_typer(auth_commands.app, name="api-token")
app.add_typer(auth_commands.app, name="token", help="The same as `siyu api-token`.")
app.command("worker")(automation_commands.worker)
app.command("sms-sim")(automation_commands.sms_sim)
app.add_typer(auth_commands.user_app, name="user")
app.command(name="wecom-sim")(wecom_sim)
app.add_typer(sop_commands.app, name="sop")
app.add_typer(sop_commands.tasks_app, name="tasks")

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Data directory (default ./siyu-data).")
]


@app.callback()
def main(data_dir: DataDir = None) -> None:
    State.data_dir = data_dir


_settings = clikit.settings
_fail = clikit.fail


@app.command()
def init() -> None:
    """Create the database (or upgrade it) and the brand."""
    settings = _settings()
    engine, _ = open_brand(settings)
    console.print(
        f"Database ready at schema {migrate.current_revision(engine)}: "
        f"{engine.url.render_as_string(hide_password=True)}"
    )


@app.command(name="migrate")
def migrate_cmd() -> None:
    """Upgrade the database schema to the newest version."""
    settings = _settings()
    engine = make_engine(settings)
    before = migrate.current_revision(engine)
    try:
        migrate.upgrade(engine)
    except pii.PiiError as e:
        raise _fail(str(e)) from None
    after = migrate.current_revision(engine)
    console.print(
        "Schema already current." if before == after else f"Schema upgraded {before} → {after}."
    )


@app.command(name="import")
def import_cmd(
    directory: Annotated[
        Path, typer.Argument(help="Directory of interchange files (DATA_FORMAT.md).")
    ],
) -> None:
    """Import a directory in the interchange format v1: idempotent and incremental."""
    settings = _settings()
    engine, brand_id = open_brand(settings)
    summary = run_import(engine, brand_id, settings, directory)
    if summary.failed_files:
        raise typer.Exit(code=1)


def run_import(
    engine: Engine, brand_id: int, settings: Settings, directory: Path
) -> import_service.ImportSummary:
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    started = time.perf_counter()
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("starting", total=None)

        def hook(file: str, stage: str) -> None:
            progress.update(task, description=f"{file}: {stage}")

        try:
            summary = import_service.import_directory(
                engine,
                directory,
                brand_id=brand_id,
                timezone=settings.timezone,
                k_guard=settings.k_guard,
                report_dir=settings.data_dir / "import-reports",
                progress=hook,
            )
        except (import_service.ImportRefused, FileUnreadable) as e:
            raise _fail(str(e)) from None
    print_summary(summary, time.perf_counter() - started)
    return summary


def print_summary(summary: import_service.ImportSummary, seconds: float) -> None:
    table = Table(title="Import summary 导入汇总")
    for col in ("file", "read", "inserted", "updated", "unchanged", "rejected"):
        table.add_column(col, justify="left" if col == "file" else "right")
    for f in summary.files:
        if f.error:
            table.add_row(f.file, "—", "—", "—", "—", "[red]file refused[/red]")
            continue
        rejected = str(f.rejected) + (f" (+{f.values_dropped} values)" if f.values_dropped else "")
        table.add_row(
            f.file, str(f.read), str(f.inserted), str(f.updated), str(f.unchanged), rejected
        )
    console.print(table)
    for f in summary.failed_files:
        err.print(f"[red]refused:[/red] {f.error}")
    if summary.identity:
        i = summary.identity
        console.print(
            f"Identity 身份识别: {i.records} records → {i.customers} customers; "
            f"{i.created} created, {i.merged} merged, {i.split} split; "
            f"{i.quarantined} identifiers quarantined."
        )
    if summary.inserted == 0 and summary.updated == 0:
        console.print("Nothing changed: every row was already stored.")
    if summary.reject_report:
        console.print(f"Rejects written to {summary.reject_report}")
    console.print(f"Done in {seconds:.1f} s.")


@customer_app.command("show")
def customer_show(
    key: Annotated[str, typer.Argument(help="Customer id or type:value, e.g. phone:13800138000")],
    as_user: Annotated[
        str | None,
        typer.Option(
            "--as",
            help="Show the customer as this console user may see them: within their scope, "
            "phones and names masked (138****8000, 王**) unless their role may read them "
            "(hq_admin, store_manager, guide). Default: the operator at the terminal, who holds "
            "the data and its key, sees it whole.",
        ),
    ] = None,
) -> None:
    """A customer's identities, why they are one customer, connections and order totals."""
    from siyu.auth import users
    from siyu.auth.principal import OutOfScope

    settings = _settings()
    engine, brand_id = open_brand(settings)
    with engine.connect() as conn:
        try:
            me = None
            if as_user is not None:
                me = users.principal_by_name(conn, brand_id=brand_id, username=as_user)
                view = customer_service.get_readable_view_or_raise(conn, principal=me, key=key)
                cid, asked = view.id, view.redirected_from
            else:
                cid, asked = customer_service.resolve_key_or_raise(conn, brand_id=brand_id, key=key)
                view = customer_service.get_view(conn, brand_id=brand_id, customer_id=cid)
        except (customer_service.CustomerNotFound, OutOfScope, users.UserError) as e:
            if isinstance(e, OutOfScope) and me is not None:
                audit.record(
                    conn, brand_id=brand_id, user_id=me.user_id, actor=cli_actor(),
                    action="denied", target=e.target, detail={"as": me.username},
                )  # fmt: skip
                conn.commit()
            raise _fail(str(e)) from None
        except pii.PiiError as e:
            raise _fail(str(e)) from None
        tags = tag_service.customer_tags(conn, customer_id=cid)
        if me is not None and not me.sees_pii:
            view = customer_service.masked(view)
        else:
            detail = {"command": "customer show"} | ({"as": me.username} if me else {})
            audit.record(
                conn, brand_id=brand_id, user_id=me.user_id if me else None, actor=cli_actor(),
                action="pii.read", target=f"customer:{cid}", detail=detail,
            )  # fmt: skip
        conn.commit()
    zone = ZoneInfo(settings.timezone)

    def local(at: datetime | None) -> str:
        """Brand-local time, to the minute: how an operator reads a timestamp."""
        return at.astimezone(zone).strftime("%Y-%m-%d %H:%M") if at else ""

    if asked:
        console.print(f"[yellow]Customer {asked} was merged into {cid}.[/yellow]")
    profile = " · ".join(x for x in (view.name, view.gender, view.city) if x)
    console.print(f"[bold]Customer 顾客 {view.id}[/bold]  {profile}")
    ids = Table(title="Identities 身份")
    for col in ("record", "source", "identifiers"):
        ids.add_column(col)
    for rec in view.records:
        ids.add_row(
            rec.key,
            rec.source,
            ", ".join(
                f"{t}:{v}" + ("" if s == "linked" else f" [dim]({s})[/dim]")
                for t, v, s in rec.identifiers
            ),
        )
    console.print(ids)
    keys = {r.id: f"{r.key} ({r.source})" for r in view.records}
    tree = Tree(
        f"Why one customer 合并依据: {keys[view.records[0].id]}" if view.records else "no records"
    )
    nodes = {view.records[0].id: tree} if view.records else {}
    for link in view.links:
        nodes[link.to] = nodes[link.frm].add(f"{keys[link.to]}  via [cyan]{link.via}[/cyan]")
    console.print(tree)
    for ty, val, why in view.not_merging:
        console.print(f"  [dim]{ty}:{val} did not merge — {why}[/dim]")
    conns = Table(title="Connections 连接")
    for col in ("kind", "staff", "group", "channel", "created_at", "ended_at"):
        conns.add_column(col)
    for c in view.connections:
        conns.add_row(
            *(str(c[k] or "") for k in ("kind", "staff", "grp", "channel")),
            local(c["created_at"]),
            local(c["ended_at"]),
        )
    conns.title = f"Connections 连接 ({settings.timezone})"
    console.print(conns)
    o = view.orders
    console.print(
        f"Orders 订单: {o.orders} ({o.paid_orders} paid), GMV ¥{o.gmv_fen / 100:,.2f}, "
        f"net ¥{o.net_fen / 100:,.2f}, first {local(o.first_at) or '—'}, "
        f"last {local(o.last_at) or '—'}"
    )
    tag_table = Table(title=f"Tags 标签 ({settings.timezone})")
    for col in ("tag", "kind", "added", "by", "source"):
        tag_table.add_column(col)
    for tg in tags:
        tag_table.add_row(f"{tg['group']}/{tg['name']}", tg["kind"], local(tg["added_at"]),
                          tg["added_by"] or "", tg["source"] or "")  # fmt: skip
    console.print(tag_table if tags else "Tags 标签: none")


@identity_app.command("quarantined")
def identity_quarantined() -> None:
    """Identifier values the K-guard quarantined, with record counts per source."""
    settings = _settings()
    engine, brand_id = open_brand(settings)
    with engine.connect() as conn:
        rows = identity_service.quarantined(conn, brand_id=brand_id)
    if not rows:
        console.print("No quarantined identifiers.")
        return
    table = Table(
        title=f"Quarantined identifiers 隔离标识 (> {settings.k_guard} records of one source)"
    )
    for col in ("identifier", "source", "records"):
        table.add_column(col, justify="right" if col == "records" else "left")
    for r in rows:
        table.add_row(f"{r.id_type}:{r.value}", r.source, str(r.record_count))
    console.print(table)


@identity_app.command("resolve")
def identity_resolve(
    full: Annotated[
        bool, typer.Option("--full", help="Re-resolve every record, not only what changed.")
    ] = False,
) -> None:
    """Run identity resolution: records changed since the last pass join or bridge customers."""
    settings = _settings()
    engine, brand_id = open_brand(settings)
    started = time.perf_counter()
    i = identity_service.resolve(engine, brand_id=brand_id, k_guard=settings.k_guard, full=full)
    scope = f"{i.resolved} records touched since the last pass"
    if i.full:  # asked for, or chosen because most of the brand changed (siyu.identity.planner)
        scope = "every record" if full else "every record: most of the brand changed"
    console.print(
        f"Identity 身份识别 ({scope}): {i.records} records → {i.customers} customers; "
        f"{i.created} created, {i.merged} merged, {i.split} split; "
        f"{i.quarantined} identifiers quarantined. {time.perf_counter() - started:.1f} s."
    )


Identifier = Annotated[str, typer.Option("--identifier", help="The link, as type:value.")]


def _identity_change(key: str, identifier: str, undo: bool) -> None:
    settings = _settings()
    engine, brand_id = open_brand(settings)
    try:
        id_type, value = parse_key(identifier)
        with engine.connect() as conn:
            before, _ = customer_service.resolve_key_or_raise(conn, brand_id=brand_id, key=key)
        change = identity_service.relink if undo else identity_service.unmerge
        result = change(
            engine, brand_id=brand_id, id_type=id_type, value=value, k_guard=settings.k_guard
        )
    except (
        InvalidIdentifier,
        identity_service.IdentityError,
        customer_service.CustomerNotFound,
    ) as e:
        raise _fail(str(e)) from None
    if undo:
        console.print(f"Relinked {id_type}:{value}: {result.merged} customers merged back.")
    else:
        console.print(
            f"Unmerged {id_type}:{value} from customer {before}: "
            f"{result.split} customers split off."
        )


@identity_app.command("unmerge")
def identity_unmerge(
    key: Annotated[str, typer.Argument(help="Customer id or type:value.")], identifier: Identifier
) -> None:
    """Remove one link: the customer splits into the parts that remain connected."""
    _identity_change(key, identifier, undo=False)


@identity_app.command("relink")
def identity_relink(
    key: Annotated[str, typer.Argument(help="Customer id or type:value.")], identifier: Identifier
) -> None:
    """Undo an unmerge: the identifier links records again."""
    _identity_change(key, identifier, undo=True)


def _showcase(engine: Engine, brand_id: int) -> list[str]:
    """Keys of one customer worth opening after the demo import: seen through the most sources,
    then with the most orders — by id, and by their phone (any identifier works as a key)."""
    with engine.begin() as conn:
        row = conn.execute(text(
            "WITH sources AS (SELECT customer_id AS c, count(DISTINCT source) AS n "
            "  FROM source_record WHERE brand_id = :b AND customer_id IS NOT NULL GROUP BY 1), "
            "orders AS (SELECT i.customer_id AS c, count(*) AS n FROM \"order\" o "
            "  JOIN identifier i ON i.brand_id = o.brand_id AND i.id_type = o.id_type "
            "   AND i.value = o.id_value WHERE o.brand_id = :b GROUP BY 1) "
            "SELECT s.c FROM sources s JOIN orders o ON o.c = s.c "
            "ORDER BY s.n DESC, o.n DESC, s.c LIMIT 1"), {"b": brand_id}).first()  # fmt: skip
        if row is None:
            return []
        sealed = conn.execute(text(
            "SELECT value_sealed FROM identifier WHERE customer_id = :c AND id_type = 'phone' "
            "AND status = 'linked' ORDER BY id LIMIT 1"), {"c": row[0]}).scalar()  # fmt: skip
        phone = pii.keyring(conn).open_or_none(sealed)
    return [str(row[0])] + ([f"phone:{phone.removeprefix('+86')}"] if phone else [])


@app.command()
def demo(
    seed: Annotated[int, typer.Option(help="Same seed, same brand.")] = 7,
    persons: Annotated[int, typer.Option(help="People in the demo brand.")] = 20_000,
    serve_it: Annotated[
        bool,
        typer.Option("--serve/--no-serve", help="End by serving the console (Ctrl-C stops it)."),
    ] = True,
    port: Annotated[int, typer.Option(help="Port to serve the console on.")] = 8000,
) -> None:
    """Build the demo coffee brand, write it in the interchange format, import it, and serve
    its console with two printed logins."""
    from siyu.demo import wecom_live
    from siyu.demo.generator import generate

    settings = _settings()
    out = settings.data_dir / "demo-brand"
    started = time.perf_counter()
    with console.status("Generating the demo coffee brand 生成演示品牌…"):
        made = generate(out, seed=seed, persons=persons)
    console.print(f"Demo brand written to {out} in {time.perf_counter() - started:.1f} s.")
    console.print(made.format())
    engine, brand_id = open_brand(settings)
    summary = run_import(engine, brand_id, settings, out)
    # The last full calendar quarter the demo covers, for the metrics example.
    q_end = date(made.end.year, (made.end.month - 1) // 3 * 3 + 1, 1)
    q_start = date(q_end.year - (q_end.month == 1), (q_end.month - 4) % 12 + 1, 1)
    prog = _prog()
    siyu = f"{prog} --data-dir {settings.data_dir}"
    tries = [
        f"metrics --from {q_start} --to {q_end}",
        "cohorts --by month",
        f"lifecycle --as-of {q_end}",
        *(f"customer show {key}" for key in _showcase(engine, brand_id)),
        "identity quarantined",
        f"import {out}",
    ]
    console.print(
        "\nTry 试试 — metrics 指标, cohorts 留存, lifecycle 生命周期, one customer 单客, "
        "quarantine 隔离, and a re-import that changes nothing:",
        highlight=False,
    )
    for t in tries:
        console.print(f"  {siyu} {t}", highlight=False, soft_wrap=True)
    if summary.failed_files:
        raise typer.Exit(code=1)
    _demo_playbooks(engine, brand_id)
    with console.status("A live WeCom day through the local simulator 企业微信模拟…"):
        live = wecom_live.run(settings, engine, brand_id, seed=seed)
    console.print(live.format(), highlight=False)
    console.print(
        "\nSOP playbooks 行业模板 imported as drafts: see what one would send, sending nothing:",
        highlight=False,
    )
    console.print(f"  {siyu} sop list\n  {siyu} sop dry-run coffee-1200-flash",
                  highlight=False, soft_wrap=True)  # fmt: skip
    from siyu.serverthread import port_free

    host = "127.0.0.1"
    busy = serve_it and not port_free(host, port)
    _demo_logins(engine, brand_id, settings, served=serve_it and not busy, port=port)
    engine.dispose()
    if busy:
        err.print(
            f"[red]error:[/red] port {port} is in use, so the console is not served. The demo "
            f"brand is ready: serve it on another port with `{siyu} serve --port {port + 1}`.",
            highlight=False,
        )
        raise typer.Exit(code=1)
    if serve_it:
        serve(host=host, port=port, access_log=False)


def _demo_playbooks(engine: Engine, brand_id: int) -> None:
    """The shipped SOP playbooks (SPEC §13), as drafts: the console's SOP page is not empty and
    `siyu sop dry-run` has something to show. Re-running the demo changes nothing."""
    from siyu.sop import service as sop_service

    for path in sop_commands.playbook_paths():
        raw = sop_service.load_yaml(path.read_text(encoding="utf-8"), str(path))
        with engine.begin() as conn:
            sop_service.import_definition(conn, brand_id=brand_id, raw=raw, by="demo")


def _prog() -> str:
    """How the user ran us, for copy-paste hints: `.venv/bin/siyu` after `make demo`."""
    argv0 = Path(sys.argv[0])
    return str(argv0) if argv0.name == "siyu" and not argv0.is_absolute() else "siyu"


def _demo_logins(
    engine: Engine, brand_id: int, settings: Settings, *, served: bool, port: int
) -> None:
    """An HQ operator and a store manager for the demo console, with fresh printed passwords."""
    from siyu.auth import passwords, users
    from siyu.orgs import service as org_service

    with engine.begin() as conn:
        stores = org_service.list_stores(conn, brand_id=brand_id)
        if not stores:
            return
        store = str(stores[0]["code"])
        logins = [("hq", "hq_operator", None), ("store", "store_manager", store)]
        made = []
        for name, role, org in logins:
            password = passwords.generate()
            users.ensure(conn, brand_id=brand_id, username=name, role=role, password=password,
                         org=org)  # fmt: skip
            made.append((name, role, org, password))
    again = f"{_prog()} --data-dir {settings.data_dir} serve"
    if served:
        head = f"open [bold]http://127.0.0.1:{port}[/bold] — log in as:"
        tail = f"Ctrl-C stops the console; [bold]{again}[/bold] serves it again."
    else:
        head = f"run [bold]{again}[/bold] and open http://127.0.0.1:8000 — log in as:"
        tail = ""
    console.print(f"\n[bold]Console 运营台[/bold]: {head}", highlight=False)
    for name, role, org, password in made:
        where = f" of store {org}" if org else " (whole brand)"
        console.print(f"  {name} / {password}   {role}{where}", highlight=False)
    if tail:
        console.print(tail, highlight=False)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    access_log: Annotated[
        bool, typer.Option(help="Log every request to stdout (uvicorn's line, written in bulk).")
    ] = True,
) -> None:
    """Serve the REST API (OpenAPI at /docs) and, when configured, the WeCom callback URL."""
    import uvicorn

    from siyu.accesslog import AccessLog
    from siyu.app import create_app

    app_: Any = create_app(_settings())
    if access_log:  # Siyu's own: uvicorn's costs a third of a one-event request (siyu.accesslog)
        app_ = AccessLog(app_)
    console.print(f"Siyu API on http://{host}:{port}/api/v1 — OpenAPI at http://{host}:{port}/docs")
    # The cycle collector, tuned for a server (bench/RESULTS.md, "Event ingest: the writer
    # thread, the collector…").
    # What exists now (the app, SQLAlchemy's and Pydantic's machinery: ~200,000 objects) lives
    # as long as the server: frozen out of the collector's sight, a full collection walks only
    # what requests left (~120 ms each under batched ingest before, ~5 ms after). And a young
    # collection waits for 50,000 new objects instead of 700: a 1,000-event request holds some
    # 5,000 while it is served, which every 700 allocations were walked again and promoted, to
    # be freed by their reference counts anyway once answered. (Garbage is collected first:
    # frozen, it would never be; `siyu demo` comes here after building a brand.)
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000)
    uvicorn.run(app_, host=host, port=port, log_level="info", access_log=False)


def run() -> None:
    """The `siyu` command: the Typer app, with a PII key problem raised anywhere (a report
    that opens the store through the warehouse, say) printed as the error it is."""
    try:
        app()
    except (pii.PiiError, duck.WarehouseBusy) as e:
        err.print(f"[red]error:[/red] {e}", highlight=False)
        raise SystemExit(2) from None
