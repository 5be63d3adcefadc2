"""`siyu wecom …` and `siyu wecom-sim`: the WeCom integration from the command line."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from siyu.clikit import console, fail, settings

wecom_app = typer.Typer(
    help="WeCom (企业微信): callbacks, event processing, sync and staff transfer.",
    no_args_is_help=True,
)
_settings = settings


def _open():  # type: ignore[no-untyped-def]
    """(settings, engine, brand id, client) for a command that talks to WeCom."""
    from siyu.clikit import open_brand
    from siyu.wecom.client import client_from_settings
    from siyu.wecom.tokens import DbTokenStore

    s = _settings()
    engine, brand_id = open_brand(s)
    try:
        client = client_from_settings(s, token_store=DbTokenStore(engine))
    except ValueError as e:
        raise fail(str(e)) from None
    return s, engine, brand_id, client


@wecom_app.command("serve-callback")
def serve_callback(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the callback URL.")] = 8089,
) -> None:
    """Serve the callback URL (/wecom/callback) alone; events are stored for `wecom process`."""
    import uvicorn

    from siyu.wecom.callback import create_callback_app

    app = create_callback_app(_settings())
    console.print(f"WeCom callback URL: http://{host}:{port}/wecom/callback")
    uvicorn.run(app, host=host, port=port, log_level="warning")


@wecom_app.command("process")
def process(
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            help="Keep running: handle each event as it is stored (welcome messages have 20 s). "
            "Several processes may follow at once.",
        ),
    ] = False,
    poll: Annotated[float, typer.Option(help="Seconds between polls when idle (--follow).")] = 0.5,
) -> None:
    """Process the stored callbacks into connections, identities, groups and tags."""
    from siyu.wecom.events import ProcessResult, process_until_idle
    from siyu.wecom.events import follow as follow_events

    s, engine, brand_id, client = _open()
    if follow:
        if poll <= 0:
            raise fail("--poll must be more than 0 seconds")

        def report(r: ProcessResult) -> None:
            console.print(
                f"{r.processed} processed, {r.ignored} ignored, {r.failed} failed", highlight=False
            )
            for line in r.errors[:5]:
                console.print(f"  [yellow]{line}[/yellow]")

        # Ctrl-C / SIGTERM finish the event in hand, then stop: an interrupt landing inside a
        # database call would leave the connection mid-command.
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        console.print(f"Following WeCom events (polling every {poll:g} s; Ctrl-C stops).")
        with client:
            follow_events(
                engine,
                brand_id=brand_id,
                client=client,
                k_guard=s.k_guard,
                poll_seconds=poll,
                stop=stop,
                on_batch=report,
            )
        console.print("Stopped.")
        return
    with client:
        result = process_until_idle(engine, brand_id=brand_id, client=client, k_guard=s.k_guard)
    console.print(
        f"WeCom events: {result.processed} processed, {result.ignored} ignored, "
        f"{result.failed} failed (retried next time)."
    )
    for line in result.errors[:10]:
        console.print(f"  [yellow]{line}[/yellow]")


@wecom_app.command("sync")
def sync_command() -> None:
    """Pull staff, corp tags, customers and groups from WeCom and reconcile (resumable)."""
    from siyu.wecom.sync import COUNT_LABELS, SyncInterrupted, sync

    s, engine, brand_id, client = _open()
    with client:
        try:
            result = sync(
                engine,
                client,
                brand_id=brand_id,
                k_guard=s.k_guard,
                progress=lambda phase: console.print(f"  {phase}…", highlight=False),
            )
        except SyncInterrupted as e:
            raise fail(str(e)) from None
    head = f"WeCom sync #{result.run_id}"
    if result.resumed_from:
        head += f" (resumed at {result.resumed_from})"
    if not result.changed:
        console.print(f"{head}: Siyu already matched WeCom; nothing changed.")
        return
    console.print(f"{head}:")
    for key, label in COUNT_LABELS.items():
        if result.counts.get(key):
            console.print(f"  {result.counts[key]:>7} {label}", highlight=False)


@wecom_app.command("transfer")
def transfer_command(
    handover: Annotated[str, typer.Option("--from", help="WeCom userid handing over.")],
    takeover: Annotated[str, typer.Option("--to", help="WeCom userid taking over.")],
    resigned: Annotated[
        bool | None,
        typer.Option(
            "--resigned/--in-service",
            help="离职继承 (the handover has left) or 在职继承; default: from the directory.",
        ),
    ] = None,
    customer: Annotated[
        list[str] | None,
        typer.Option("--customer", help="Only this external_userid (repeatable); default all."),
    ] = None,
    groups: Annotated[
        bool, typer.Option(help="Also hand over the groups the handover owns.")
    ] = True,
    message: Annotated[
        str | None, typer.Option(help="In-service only: what the customer is told (≤ 200).")
    ] = None,
) -> None:
    """Hand a guide's customers and groups to another guide (在职继承 / 离职继承)."""
    from siyu.wecom.client import WeComError
    from siyu.wecom.transfer import TransferRefused, transfer

    s, engine, brand_id, client = _open()
    if message is not None and resigned:
        raise fail("--message is for in-service transfers only (WeCom sends none on 离职继承)")
    with client:
        try:
            r = transfer(
                engine,
                client,
                brand_id=brand_id,
                handover=handover,
                takeover=takeover,
                resigned=resigned,
                customers=customer or None,
                groups=groups,
                message=message,
            )
        except TransferRefused as e:
            raise fail(str(e)) from None
        except WeComError as e:
            raise fail(str(e)) from None
    label = "离职继承 resigned" if r.kind == "resigned" else "在职继承 in-service"
    console.print(
        f"Transfer {handover} → {takeover} ({label}): {r.requested} customers asked, "
        f"{r.waiting} accepted by WeCom (taken over in 24 h unless refused), "
        f"{len(r.failed)} refused by WeCom, {len(r.skipped)} skipped; "
        f"{r.groups_moved} groups moved, {len(r.groups_failed)} failed.",
        highlight=False,
    )
    if r.unanswered:
        console.print(
            f"  [yellow]WeCom did not answer for {r.unanswered} customers; "
            "`siyu wecom transfer-status` settles them.[/yellow]"
        )
    for ext, reason in (r.failed + r.skipped + r.groups_failed)[:20]:
        console.print(f"  {ext}: {reason}", highlight=False)


@wecom_app.command("transfer-status")
def transfer_status(
    handover: Annotated[
        str | None, typer.Option("--from", help="Only this handover userid.")
    ] = None,
    refresh: Annotated[
        bool, typer.Option(help="Ask WeCom (transfer_result) first; --no-refresh shows the stored.")
    ] = True,
) -> None:
    """Each transfer's status; open ones are refreshed from WeCom and succeeded ones move."""
    from rich.table import Table

    from siyu.wecom.client import WeComError
    from siyu.wecom.transfer import refresh as refresh_transfers
    from siyu.wecom.transfer import status_counts

    s, engine, brand_id, client = _open()
    with client:
        if refresh:
            try:
                r = refresh_transfers(engine, client, brand_id=brand_id)
            except WeComError as e:
                raise fail(f"{e} (the stored statuses are shown by --no-refresh)") from None
            changes = ", ".join(f"{n} {k}" for k, n in sorted(r.changed.items())) or "no changes"
            console.print(f"Asked WeCom about {r.checked} open transfers: {changes}.")
    rows = status_counts(engine, brand_id=brand_id, handover=handover)
    if not rows:
        console.print("No transfers yet.")
        return
    table = Table("kind", "what", "from", "to", "status", "count")
    for kind, subject, frm, to, status, n in rows:
        table.add_row(kind, subject, frm, to, status, str(n))
    console.print(table)


@wecom_app.command("rotate")
def rotate_command() -> None:
    """Balance capped channel codes: staff at today's add cap come off, the rest stay on."""
    from siyu.wecom.client import WeComError
    from siyu.wecom.rotation import rotate

    s, engine, brand_id, client = _open()
    with client:
        try:
            rotations = rotate(engine, client, brand_id=brand_id)
        except WeComError as e:
            raise fail(str(e)) from None
    if not rotations:
        console.print("No channel code has a daily cap.")
    for r in rotations:
        adds = ", ".join(f"{u} {n}" for u, n in r.adds_today.items())
        verb = "now answers with" if r.changed else "unchanged:"
        console.print(
            f"{r.state}: {verb} {', '.join(r.live)} (adds today: {adds})", highlight=False
        )


@wecom_app.command("results")
def results(
    unconfirmed_after: Annotated[
        float | None,
        typer.Option(
            help="Hours after which an unconfirmed task counts as unconfirmed "
            "(default: wecom_unconfirmed_after_hours)."
        ),
    ] = None,
) -> None:
    """Read the results of open mass-message tasks: per customer delivered, not a friend,
    quota used up, or not confirmed by the staff member in time; writes deliveries and events."""
    from datetime import timedelta

    from siyu.wecom.delivery import poll_results

    s, engine, _, client = _open()
    hours = s.wecom_unconfirmed_after_hours if unconfirmed_after is None else unconfirmed_after
    with client:
        r = poll_results(engine, client, unconfirmed_after=timedelta(hours=hours))
    engine.dispose()
    console.print(
        f"WeCom tasks: {r.tasks} read, {r.finished_tasks} finished; delivered {r.delivered}, "
        f"not a friend {r.not_friend}, failed {r.failed}, unconfirmed {r.unconfirmed}, "
        f"waiting {r.waiting}"
    )


def wecom_sim(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the simulated qyapi.")] = 8088,
    callback_url: Annotated[
        str | None, typer.Option(help="Where to POST encrypted callbacks (Siyu's callback URL).")
    ] = None,
    guides: Annotated[int, typer.Option(help="Staff members to create (guide01…).")] = 3,
    faults: Annotated[
        bool, typer.Option(help="Inject WeCom's failures: 42001, 45009, -1, 5xx, slow answers.")
    ] = False,
    auto_confirm: Annotated[
        float | None,
        typer.Option(
            help="Staff confirm each mass-message task this many seconds after it "
            "is created (default: never)."
        ),
    ] = None,
) -> None:
    """Run a local WeCom: the server API under /cgi-bin, callbacks to --callback-url.

    Corp id, secret, callback token and EncodingAESKey come from the same settings Siyu uses
    (SIYU_WECOM_*), so Siyu pointed at http://HOST:PORT talks to it unchanged. Scenario:
    POST /sim/scan {"config_id": …, "count": N} makes N customers scan a contact-way code.
    """
    import uvicorn

    from siyu.wecom.simulator import (
        ApiFaults,
        CallbackSender,
        FaultInjector,
        Simulator,
        create_app,
    )

    s = _settings()
    if not (s.wecom_corp_id and s.wecom_secret):
        console.print("[red]error:[/red] set SIYU_WECOM_CORP_ID and SIYU_WECOM_SECRET first.")
        raise typer.Exit(code=2)
    sender = None
    if callback_url:
        if not (s.wecom_callback_token and s.wecom_encoding_aes_key):
            console.print(
                "[red]error:[/red] callbacks need SIYU_WECOM_CALLBACK_TOKEN and "
                "SIYU_WECOM_ENCODING_AES_KEY."
            )
            raise typer.Exit(code=2)
        sender = CallbackSender(
            url=callback_url,
            token=s.wecom_callback_token,
            encoding_aes_key=s.wecom_encoding_aes_key,
            corp_id=s.wecom_corp_id,
        )
    sim = Simulator(
        corp_id=s.wecom_corp_id,
        secret=s.wecom_secret,
        sender=sender,
        auto_confirm_after=auto_confirm,
    )
    for i in range(1, guides + 1):
        sim.add_user(userid=f"guide{i:02d}", name=f"导购{i:02d}")
    injector = FaultInjector(
        ApiFaults(
            expire_tokens_every=23,
            rate_limit_every=11,
            busy_every=17,
            server_error_every=19,
            timeout_every=29,
        )
        if faults
        else None
    )
    console.print(
        f"WeCom simulator for corp {s.wecom_corp_id} on http://{host}:{port} "
        f"({guides} guides; callbacks → {callback_url or 'nowhere'}; faults {'on' if faults else 'off'})"
    )
    uvicorn.run(create_app(sim, injector), host=host, port=port, log_level="warning")
