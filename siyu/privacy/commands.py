"""`siyu customer export | erase | recollect`: PIPL requests from the terminal (audited as
the terminal's user, like `siyu customer show`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import duckdb
import typer

from siyu.clikit import cli_actor, console, err, fail, settings
from siyu.privacy import service
from siyu.privacy.blocks import NotBlocked
from siyu.privacy.export import dumps
from siyu.runtime import open_brand
from siyu.warehouse import duck

Key = Annotated[str, typer.Argument(help="Customer id or type:value, e.g. phone:13800138000")]


def export(
    key: Key,
    out: Annotated[Path, typer.Option("--out", help="Where to write the JSON document.")],
) -> None:
    """Everything Siyu holds about one person, as one JSON document (PIPL)."""
    s = settings()
    engine, brand_id = open_brand(s)
    con = None
    if s.duckdb_path.exists():
        try:
            con = duck.connect(s.duckdb_path, read_only=True)
        except duckdb.Error as e:  # e.g. a running `siyu serve` holds the file
            err.print(f"[yellow]lifecycle snapshots left out: the warehouse is busy ({e})[/yellow]")
    try:
        doc = service.export(engine, brand_id=brand_id, key=key, actor=cli_actor(), warehouse=con)
    except service.CustomerNotFound as e:
        raise fail(str(e)) from None
    finally:
        if con is not None:
            con.close()
        engine.dispose()
    out.write_text(dumps(doc), encoding="utf-8")
    c = doc["customer"]
    console.print(
        f"Customer {c['id']}: {len(doc['identities']['records'])} records, "
        f"{len(doc['orders'])} orders, {len(doc['connections'])} connections, "
        f"{len(doc['events'])} events → {out}",
        highlight=False,
    )


def erase(
    key: Key,
    reason: Annotated[str, typer.Option("--reason", help="Why, e.g. the person's request of "
                                        "2025-11-01 by phone (kept in the audit log).")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:  # fmt: skip
    """Erase one person's personal data; their orders stay, anonymous, so figures do not move."""
    s = settings()
    engine, brand_id = open_brand(s)
    try:
        if not reason.strip():
            raise fail("--reason: say why (e.g. the person's request of 2025-11-01)")
        if not yes and not typer.confirm(
            f"Erase the personal data of customer {key}? This cannot be undone."
        ):
            raise fail("not erased")
        done = service.erase(engine, brand_id=brand_id, key=key, reason=reason, actor=cli_actor())
    except service.CustomerNotFound as e:
        raise fail(str(e)) from None
    except service.ErasureError as e:
        raise fail(str(e)) from None
    finally:
        engine.dispose()
    n = done.counts
    console.print(
        f"Customer {done.customer_id} erased: {n.get('records', 0)} records and "
        f"{n.get('identifiers', 0)} identifiers deleted, {n.get('order', 0)} orders kept "
        f"anonymous, {n.get('outbox_cancelled', 0)} queued messages cancelled. The warehouse "
        "drops the data on its next sync.",
        highlight=False,
    )


def recollect(
    key: Annotated[str, typer.Argument(help="type:value (phone:138…) or record:RECORD_ID")],
) -> None:
    """Lift the erasure block on one identifier: the person consented again, so the next
    import that carries it creates a new customer."""
    s = settings()
    engine, brand_id = open_brand(s)
    try:
        cid = service.recollect(engine, brand_id=brand_id, key=key, actor=cli_actor())
    except NotBlocked as e:
        raise fail(str(e)) from None
    finally:
        engine.dispose()
    console.print(f"{key} may be imported again (it was customer {cid}'s, erased).")
