"""`siyu wecom …` and `siyu wecom-sim`: the WeCom integration from the command line."""

from __future__ import annotations

from typing import Annotated

import typer

from siyu.clikit import console, settings

wecom_app = typer.Typer(
    help="WeCom (企业微信): callbacks and event processing.", no_args_is_help=True
)
_settings = settings


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
def process() -> None:
    """Process the stored callbacks into connections, identities, groups and tags."""
    from siyu.runtime import open_brand
    from siyu.wecom.client import client_from_settings
    from siyu.wecom.events import process_until_idle
    from siyu.wecom.tokens import DbTokenStore

    settings = _settings()
    engine, brand_id = open_brand(settings)
    try:
        client = client_from_settings(settings, token_store=DbTokenStore(engine))
    except ValueError as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(code=2) from None
    with client:
        result = process_until_idle(
            engine, brand_id=brand_id, client=client, k_guard=settings.k_guard
        )
    console.print(
        f"WeCom events: {result.processed} processed, {result.ignored} ignored, "
        f"{result.failed} failed (retried next time)."
    )
    for line in result.errors[:10]:
        console.print(f"  [yellow]{line}[/yellow]")


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
    sim = Simulator(corp_id=s.wecom_corp_id, secret=s.wecom_secret, sender=sender)
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
