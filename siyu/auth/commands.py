"""`siyu api-token …`: tokens for integrations calling the REST API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from siyu.auth import service
from siyu.auth.principal import SCOPES
from siyu.clikit import console, fail, open_brand, settings

app = typer.Typer(
    help="API tokens per integration (Bearer auth for /api/v1).", no_args_is_help=True
)


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Integration name, e.g. pos-sync.")],
    role: Annotated[
        str,
        typer.Option(help="What it may read, as for users: hq_admin, hq_operator, analyst, "
                     "region_manager, store_manager or guide."),
    ] = service.DEFAULT_ROLE,
    org: Annotated[
        str | None,
        typer.Option(help="HQ, a region name (region_manager) or a store code (store roles)."),
    ] = None,
    staff: Annotated[str | None, typer.Option(help="A guide token's staff code.")] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option(help=f"Repeatable or comma-separated: {', '.join(SCOPES)}. "
                     "Default: ingest (post events and rows, read nothing)."),
    ] = None,
) -> None:  # fmt: skip
    """Issue a token; it is printed once and only its hash is kept."""
    engine, brand_id = open_brand(settings())
    try:
        with engine.begin() as conn:
            token = service.create(
                conn, brand_id, name, role=role, org=org, staff_code=staff,
                scopes=scope or service.DEFAULT_SCOPES,
            )  # fmt: skip
    except service.TokenError as e:
        raise fail(str(e)) from None
    finally:
        engine.dispose()
    chosen = " ".join(service.parse_scopes(scope or service.DEFAULT_SCOPES))
    console.print(
        f"Token for {name!r} — role {role}, {org or 'HQ'}, scopes: {chosen} "
        "(shown once; send as 'Authorization: Bearer …'):", highlight=False,
    )  # fmt: skip
    print(token)


@app.command("list")
def list_tokens() -> None:
    """Every token: role, org unit, scopes, last use, and whether it is revoked."""
    engine, brand_id = open_brand(settings())
    try:
        with engine.begin() as conn:
            found = service.list_all(conn, brand_id=brand_id)
    finally:
        engine.dispose()
    table = Table(title="API tokens")
    for col in ("name", "role", "org", "scopes", "created", "last used", "state"):
        table.add_column(col)
    for t in found:
        table.add_row(
            t["name"], t["role"], t["org"] + (f" ({t['staff']})" if t["staff"] else ""),
            " ".join(t["scopes"]), _day(t["created_at"]), _day(t["last_used_at"]),
            f"revoked {_day(t['revoked_at'])}" if t["revoked_at"] else "live",
        )  # fmt: skip
    console.print(table if found else "No API tokens yet: `siyu api-token create NAME`.")


def _day(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M") + " UTC" if at else "—"


@app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="Integration name.")]) -> None:
    """Revoke an integration's token: its next request is refused (401)."""
    engine, brand_id = open_brand(settings())
    try:
        with engine.begin() as conn:
            done = service.revoke(conn, brand_id, name)
    finally:
        engine.dispose()
    if not done:
        raise fail(f"name: no live token named {name!r}")
    console.print(f"Revoked {name!r}.")


user_app = typer.Typer(help="Console users: roles scoped by the org tree.", no_args_is_help=True)


@user_app.command("create")
def user_create(
    name: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[
        str,
        typer.Option(
            help="hq_admin, hq_operator, analyst, region_manager, store_manager or guide."
        ),
    ],
    org: Annotated[
        str | None,
        typer.Option(help="HQ, a region name (region_manager) or a store code (store roles)."),
    ] = None,
    staff: Annotated[str | None, typer.Option(help="A guide's staff code.")] = None,
    password: Annotated[
        str | None,
        typer.Option(help="At least 8 characters; default: a generated one, printed once."),
    ] = None,
) -> None:
    """Create a console user; the password is printed once when generated."""
    from siyu.auth import passwords, users

    chosen = password or passwords.generate()
    engine, brand_id = open_brand(settings())
    try:
        with engine.begin() as conn:
            users.create(
                conn, brand_id=brand_id, username=name, role=role, password=chosen, org=org,
                staff_code=staff,
            )  # fmt: skip
    except users.UserError as e:
        raise fail(str(e)) from None
    finally:
        engine.dispose()
    console.print(f"User {name!r} ({role}) created.")
    if password is None:
        console.print("Password (shown once):")
        print(chosen)


@user_app.command("list")
def user_list() -> None:
    """The console users, their roles and org units."""
    from siyu.auth import users

    engine, brand_id = open_brand(settings())
    try:
        with engine.begin() as conn:
            found = users.list_all(conn, brand_id=brand_id)
    finally:
        engine.dispose()
    for u in found:
        state = " (disabled)" if u["disabled"] else ""
        console.print(f"{u['name']}\t{u['role']}\t{u['org']}{state}", highlight=False)
