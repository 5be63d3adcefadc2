"""`siyu api-token …`: tokens for integrations calling the REST API."""

from __future__ import annotations

from typing import Annotated

import typer

from siyu.auth import service
from siyu.clikit import console, fail, settings
from siyu.runtime import open_brand

app = typer.Typer(
    help="API tokens per integration (Bearer auth for /api/v1).", no_args_is_help=True
)


@app.command("create")
def create(name: Annotated[str, typer.Argument(help="Integration name, e.g. pos-sync.")]) -> None:
    """Issue a token; it is printed once and only its hash is kept."""
    engine, brand_id = open_brand(settings())
    try:
        with engine.begin() as conn:
            token = service.create(conn, brand_id, name)
    except service.TokenError as e:
        raise fail(str(e)) from None
    finally:
        engine.dispose()
    console.print(f"Token for {name!r} (shown once; send as 'Authorization: Bearer …'):")
    print(token)


@app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="Integration name.")]) -> None:
    """Revoke an integration's token."""
    engine, brand_id = open_brand(settings())
    try:
        with engine.begin() as conn:
            done = service.revoke(conn, brand_id, name)
    finally:
        engine.dispose()
    if not done:
        raise fail(f"name: no live token named {name!r}")
    console.print(f"Revoked {name!r}.")
