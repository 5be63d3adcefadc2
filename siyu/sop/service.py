"""Storing SOP definitions: import (a new version only when it changed), read, (de)activate."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import yaml
from sqlalchemy import Connection, Select, select, update
from sqlalchemy.orm import Session

from siyu.db import utcnow
from siyu.sop.definition import Definition, DefinitionError, dump, validate
from siyu.sop.models import Sop, SopVersion


class SopError(ValueError):
    """A request about SOPs that cannot be done; the message says why."""


@dataclass(frozen=True)
class Imported:
    key: str
    version: int
    changed: bool  # False: identical to the current version, nothing stored


@dataclass(frozen=True)
class Current:
    sop: Sop
    definition: Definition


def load(conn: Connection, stmt: Select[Any]) -> list[Any]:
    """ORM objects of a select, detached (usable after the connection is gone)."""
    with Session(bind=conn) as session:
        found = list(session.scalars(stmt))
        session.expunge_all()
        return found


def load_yaml(text: str, source: str = "YAML") -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f", line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise DefinitionError([f"{source}{where}: {problem}"]) from None


def to_yaml(defn: Definition) -> str:
    return yaml.safe_dump(dump(defn), allow_unicode=True, sort_keys=False, width=100)


def digest(data: dict[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps(data, sort_keys=True, ensure_ascii=False).encode("utf-8")
    ).hexdigest()


def import_definition(
    conn: Connection, *, brand_id: int, raw: Any, by: str | None = None
) -> Imported:
    """Validate and store; a changed definition becomes the SOP's next version."""
    defn = validate(raw)
    if defn.audience.segment is not None:
        from siyu.segments import service as segment_service

        names = segment_service.list_names(conn, brand_id=brand_id)
        if defn.audience.segment not in names:
            hint = f" (saved: {', '.join(names)})" if names else " (none saved yet)"
            raise DefinitionError(
                [f"audience.segment: no segment named {defn.audience.segment!r}{hint}"]
            )
    data = dump(defn)
    d = digest(data)
    now = utcnow()
    found = load(conn, select(Sop).where(Sop.brand_id == brand_id, Sop.key == defn.key))
    sop = found[0] if found else None
    if sop is None:
        sop_id = conn.execute(
            Sop.__table__.insert()
            .values(
                brand_id=brand_id,
                key=defn.key,
                name=defn.name,
                status="draft",
                version=1,
                created_at=now,
                updated_at=now,
                event_cursor=0,
            )  # fmt: skip
            .returning(Sop.id)
        ).scalar_one()
        _add_version(conn, sop_id, 1, data, d, by, now)
        return Imported(defn.key, 1, True)
    current = conn.execute(
        select(SopVersion.digest).where(
            SopVersion.sop_id == sop.id, SopVersion.version == sop.version
        )
    ).scalar_one()
    if current == d:
        return Imported(defn.key, sop.version, False)
    version = sop.version + 1
    _add_version(conn, sop.id, version, data, d, by, now)
    conn.execute(
        update(Sop).where(Sop.id == sop.id).values(version=version, name=defn.name, updated_at=now)
    )
    return Imported(defn.key, version, True)


def _add_version(
    conn: Connection, sop_id: int, version: int, data: dict[str, Any], d: str,
    by: str | None, now: datetime,
) -> None:  # fmt: skip
    conn.execute(
        SopVersion.__table__.insert().values(
            sop_id=sop_id,
            version=version,
            definition=data,
            digest=d,
            created_at=now,
            created_by=by,
        )  # fmt: skip
    )


def get(conn: Connection, *, brand_id: int, key: str) -> Current:
    found = load(conn, select(Sop).where(Sop.brand_id == brand_id, Sop.key == key))
    if not found:
        known = conn.execute(
            select(Sop.key).where(Sop.brand_id == brand_id).order_by(Sop.key)
        ).scalars().all()  # fmt: skip
        hint = f" (known: {', '.join(known)})" if known else " (none imported yet)"
        raise SopError(f"no SOP with key {key!r}{hint}")
    return Current(found[0], definition_of(conn, found[0].id, found[0].version))


def definition_of(conn: Connection, sop_id: int, version: int) -> Definition:
    data = conn.execute(
        select(SopVersion.definition).where(
            SopVersion.sop_id == sop_id, SopVersion.version == version
        )
    ).scalar_one()
    return Definition.model_validate(data)


def trigger_label(defn: Definition) -> str:
    """What starts the SOP, in a few words: `event friend_added`, `cron 0 9 * * 1`…"""
    t = defn.trigger
    if t.event is not None:
        return f"event {t.event.type}"
    if t.schedule is not None:
        return f"cron {t.schedule}"
    if t.after_purchase is not None:
        return f"+{t.after_purchase.days}d after purchase"
    return "birthday" if t.birthday is not None else "anniversary"


def list_all(conn: Connection, *, brand_id: int) -> list[Sop]:
    return load(conn, select(Sop).where(Sop.brand_id == brand_id).order_by(Sop.key))


def set_status(conn: Connection, *, brand_id: int, key: str, status: str, now: datetime) -> None:
    """Activate or pause.

    The first activation starts the trigger clocks at `now`: events recorded from now on,
    relative dates from today, a schedule from its next instant. A resume after a pause reads
    the events and relative-date days of the pause (nothing is lost), but a schedule restarts
    from its next instant: a missed 08:30 poster is not worth sending at 17:00.
    """
    cur = get(conn, brand_id=brand_id, key=key)
    values: dict[str, Any] = {"status": status, "updated_at": now}
    if status == "active" and cur.sop.status != "active":
        values["last_fire_at"] = now
        if cur.sop.activated_at is None:
            from siyu.events.models import Event

            values["activated_at"] = now
            latest = conn.execute(
                select(Event.id)
                .where(Event.brand_id == brand_id)
                .order_by(Event.id.desc())
                .limit(1)
            ).scalar()
            values["event_cursor"] = int(latest or 0)
    conn.execute(update(Sop).where(Sop.id == cur.sop.id).values(**values))
