"""WeCom as Siyu uses it: channel live codes, corp tags kept in step, welcome messages.

Plain functions taking an engine (or a connection) and a `WeComClient`; no HTTP routes here.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, select, update

from siyu.channels import service as channel_service
from siyu.db import insert_ignore
from siyu.orgs.models import Store
from siyu.tags import service as tag_service
from siyu.tags.models import Tag, TagGroup
from siyu.wecom.client import WELCOME_ALREADY_SENT, WeComClient, WeComError, WeComUnavailable
from siyu.wecom.models import WeComContactTag, WeComContactWay, WeComWelcome

log = logging.getLogger(__name__)

STATE_MAX = 30  # WeCom: a contact way's state is at most 30 characters


@dataclass(frozen=True)
class ContactWay:
    id: int
    config_id: str
    state: str
    qr_code: str | None
    channel_id: int


# ----- corp tags ----------------------------------------------------------------------


def ensure_wecom_tags(
    engine: Engine, client: WeComClient, *, brand_id: int, tag_ids: list[int]
) -> dict[int, str]:
    """{Siyu tag id: WeCom tag id}, creating in WeCom the tags (and groups) it lacks."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(Tag.id, Tag.name, Tag.wecom_tag_id, TagGroup.id, TagGroup.name)
            .join(TagGroup, TagGroup.id == Tag.group_id)
            .where(TagGroup.brand_id == brand_id, Tag.id.in_(tag_ids))
        ).all()
    missing = set(tag_ids) - {r[0] for r in rows}
    if missing:
        raise LookupError(f"no tags {sorted(missing)} in this brand")
    result = {r[0]: r[2] for r in rows if r[2]}
    by_group: dict[tuple[int, str], list[tuple[int, str]]] = {}
    for tag_id, name, wecom_id, group_id, group_name in rows:
        if not wecom_id:
            by_group.setdefault((group_id, group_name), []).append((tag_id, name))
    for (group_id, group_name), tags in by_group.items():
        # add_corp_tag with the group *name*: WeCom adds to the group of that name, or makes it.
        created = client.add_corp_tag(group_name=group_name, tag=[{"name": n} for _, n in tags])
        ids = {t["name"]: str(t["id"]) for t in created.get("tag", [])}
        with engine.begin() as conn:
            conn.execute(
                update(TagGroup)
                .where(TagGroup.id == group_id)
                .values(wecom_group_id=str(created["group_id"]))
            )
            for tag_id, name in tags:
                if name in ids:
                    conn.execute(update(Tag).where(Tag.id == tag_id).values(wecom_tag_id=ids[name]))
                    result[tag_id] = ids[name]
    return result


def sync_corp_tags(engine: Engine, client: WeComClient, *, brand_id: int) -> int:
    """Make Siyu's tag groups and tags mirror WeCom's corp tags; returns the tags seen.

    Matched by WeCom id, else adopted by name; a tag gone from WeCom is unlinked (its WeCom id
    cleared, its mirror rows dropped) and customers lose it at the next tag refresh.
    """
    groups = client.get_corp_tag_list()
    seen: set[str] = set()
    with engine.begin() as conn:
        for g in groups:
            if g.get("deleted"):
                continue
            gid = _adopt_group(conn, brand_id, str(g["group_id"]), str(g["group_name"]))
            for t in g.get("tag", []):
                if t.get("deleted"):
                    continue
                seen.add(str(t["id"]))
                _adopt_tag(conn, gid, str(t["id"]), str(t["name"]))
        stale = conn.execute(
            select(Tag.id, Tag.wecom_tag_id)
            .join(TagGroup, TagGroup.id == Tag.group_id)
            .where(TagGroup.brand_id == brand_id, Tag.wecom_tag_id.is_not(None))
        ).all()
        gone = [(tid, wid) for tid, wid in stale if wid not in seen]
        for tag_id, wecom_id in gone:
            conn.execute(update(Tag).where(Tag.id == tag_id).values(wecom_tag_id=None))
            conn.execute(
                delete(WeComContactTag).where(
                    WeComContactTag.brand_id == brand_id, WeComContactTag.wecom_tag_id == wecom_id
                )
            )
    return len(seen)


def _adopt_group(conn: Connection, brand_id: int, wecom_id: str, name: str) -> int:
    found = conn.execute(
        select(TagGroup.id).where(
            TagGroup.brand_id == brand_id, TagGroup.wecom_group_id == wecom_id
        )
    ).scalar_one_or_none()
    if found is None:
        found = tag_service.get_or_create_group(conn, brand_id=brand_id, name=name)
        conn.execute(update(TagGroup).where(TagGroup.id == found).values(wecom_group_id=wecom_id))
    else:
        conn.execute(update(TagGroup).where(TagGroup.id == found).values(name=name))
    return int(found)


def _adopt_tag(conn: Connection, group_id: int, wecom_id: str, name: str) -> int:
    found = conn.execute(
        select(Tag.id).where(Tag.group_id == group_id, Tag.wecom_tag_id == wecom_id)
    ).scalar_one_or_none()
    if found is None:
        found = conn.execute(
            select(Tag.id).where(Tag.group_id == group_id, Tag.name == name)
        ).scalar_one_or_none()
        if found is None:
            found = conn.execute(
                Tag.__table__.insert()
                .values(group_id=group_id, name=name, wecom_tag_id=wecom_id)
                .returning(Tag.id)
            ).scalar_one()
    conn.execute(update(Tag).where(Tag.id == found).values(name=name, wecom_tag_id=wecom_id))
    return int(found)


def mirror_pair_tags(
    conn: Connection,
    *,
    brand_id: int,
    userid: str,
    external_userid: str,
    tags: list[dict[str, Any]],
) -> None:
    """Set the mirror of one (staff, customer) pair to WeCom's corp tags on it (type 1), making
    Siyu tags for ones it has not seen (they are created, not dropped)."""
    wanted: set[str] = set()
    for t in tags:
        if int(t.get("type", 1)) != 1 or not t.get("tag_id"):
            continue
        wecom_id = str(t["tag_id"])
        wanted.add(wecom_id)
        known = conn.execute(
            select(Tag.id)
            .join(TagGroup, TagGroup.id == Tag.group_id)
            .where(TagGroup.brand_id == brand_id, Tag.wecom_tag_id == wecom_id)
        ).scalar_one_or_none()
        if known is None and t.get("group_name") and t.get("tag_name"):
            tag_id = tag_service.get_or_create_tag(
                conn, brand_id=brand_id, group=str(t["group_name"]), name=str(t["tag_name"])
            )
            conn.execute(update(Tag).where(Tag.id == tag_id).values(wecom_tag_id=wecom_id))
    m = WeComContactTag
    pair = (m.brand_id == brand_id, m.user_id == userid, m.external_userid == external_userid)
    conn.execute(delete(m).where(*pair, m.wecom_tag_id.not_in(wanted or {""})))
    add_pair_tags(
        conn, brand_id=brand_id, userid=userid, external_userid=external_userid, wecom_ids=wanted
    )


def add_pair_tags(
    conn: Connection, *, brand_id: int, userid: str, external_userid: str, wecom_ids: set[str]
) -> None:
    for wecom_id in wecom_ids:
        insert_ignore(
            conn,
            WeComContactTag.__table__,
            {
                "brand_id": brand_id,
                "user_id": userid,
                "external_userid": external_userid,
                "wecom_tag_id": wecom_id,
                "added_at": datetime.now(UTC),
            },
            WeComContactTag.wecom_tag_id,
        )


def refresh_customer_tags(engine: Engine, *, brand_id: int) -> tuple[int, int]:
    """Customer tags from WeCom, after identity resolution: (added, removed).

    A customer carries a WeCom tag when any of their external_userids carries it with any
    staff member; tags Siyu set itself (added_by other than 'wecom') are never touched.
    """
    p = {"b": brand_id}
    backed = (
        "SELECT i.customer_id, t.id AS tag_id FROM wecom_contact_tag m "
        "JOIN identifier i ON i.brand_id = m.brand_id AND i.id_type = 'external_userid' "
        " AND i.value = m.external_userid "
        "JOIN tag t ON t.wecom_tag_id = m.wecom_tag_id "
        "JOIN tag_group g ON g.id = t.group_id AND g.brand_id = m.brand_id "
        "WHERE m.brand_id = :b AND i.customer_id IS NOT NULL"
    )
    with engine.begin() as conn:
        # Through the tags service, so each change has history and a tag.added / tag.removed
        # event (and the warehouse sees removals on its next incremental sync).
        tag_service.fill_pairs(
            conn, f"SELECT DISTINCT w.customer_id, w.tag_id FROM ({backed}) w", p
        )
        added = tag_service.apply_pairs(
            conn, brand_id=brand_id, action="added", by="wecom", source="wecom"
        )
        tag_service.fill_pairs(
            conn,
            "SELECT ct.customer_id, ct.tag_id FROM customer_tag ct "
            "JOIN customer c ON c.id = ct.customer_id AND c.brand_id = :b "
            f"WHERE ct.added_by = 'wecom' AND NOT EXISTS (SELECT 1 FROM ({backed}) w "
            " WHERE w.customer_id = ct.customer_id AND w.tag_id = ct.tag_id)",
            p,
        )
        removed = tag_service.apply_pairs(
            conn, brand_id=brand_id, action="removed", by="wecom", source="wecom"
        )
    return max(added, 0), max(removed, 0)


# ----- channel live codes (渠道活码) ------------------------------------------------------


def create_contact_way(
    engine: Engine,
    client: WeComClient,
    *,
    brand_id: int,
    channel_code: str,
    user_ids: list[str],
    channel_name: str | None = None,
    store_code: str | None = None,
    welcome: dict[str, Any] | None = None,
    tag_ids: list[int] | None = None,
    remark: str | None = None,
    daily_cap: int | None = None,
) -> ContactWay:
    """A channel live code for channel × store, answered by `user_ids`.

    welcome: {"text": "…{name}…", "attachments": [...]} sent to each customer it adds;
    tag_ids: Siyu tags applied to each of them (created in WeCom first when needed);
    daily_cap: adds per staff member a day before `siyu wecom rotate` takes them off the code.
    """
    if daily_cap is not None and daily_cap < 1:
        raise ValueError("daily_cap must be at least 1")
    if not user_ids:
        raise ValueError("a contact way needs at least one staff member (WeCom userid)")
    tag_ids = list(tag_ids or [])
    if tag_ids:
        ensure_wecom_tags(engine, client, brand_id=brand_id, tag_ids=tag_ids)
    with engine.begin() as conn:
        channel_id = channel_service.get_or_create(
            conn, brand_id=brand_id, code=channel_code, name=channel_name
        )
        store_id = None
        if store_code is not None:
            store_id = conn.execute(
                select(Store.id).where(Store.brand_id == brand_id, Store.code == store_code)
            ).scalar_one_or_none()
            if store_id is None:
                raise LookupError(f"no store {store_code!r}; import stores.csv first")
    prefix = "-".join(x for x in (store_code, channel_code) if x)[: STATE_MAX - 7]
    state = f"{prefix}-{secrets.token_hex(3)}"
    created = client.add_contact_way(
        type=1 if len(user_ids) == 1 else 2,
        scene=2,
        user=user_ids,
        state=state,
        remark=remark,
        skip_verify=True,
    )
    with engine.begin() as conn:
        way_id = conn.execute(
            WeComContactWay.__table__.insert()
            .values(
                brand_id=brand_id,
                config_id=str(created["config_id"]),
                state=state,
                channel_id=channel_id,
                store_id=store_id,
                user_ids=list(user_ids),
                qr_code=created.get("qr_code"),
                remark=remark,
                welcome=welcome,
                tag_ids=tag_ids,
                created_at=datetime.now(UTC),
                daily_cap=daily_cap,
            )
            .returning(WeComContactWay.id)
        ).scalar_one()
    return ContactWay(
        int(way_id), str(created["config_id"]), state, created.get("qr_code"), channel_id
    )


@dataclass(frozen=True)
class StoredWay:
    id: int
    channel_id: int
    store_id: int | None
    welcome: dict[str, Any] | None
    tag_ids: list[int]


def contact_way_by_state(conn: Connection, *, brand_id: int, state: str) -> StoredWay | None:
    """The contact way whose `state` WeCom echoed in an add event (channel attribution)."""
    w = WeComContactWay
    row = conn.execute(
        select(w.id, w.channel_id, w.store_id, w.welcome, w.tag_ids).where(
            w.brand_id == brand_id, w.state == state
        )
    ).first()
    return None if row is None else StoredWay(row[0], row[1], row[2], row[3], list(row[4] or []))


# ----- welcome messages ---------------------------------------------------------------


def render_welcome(welcome: dict[str, Any], *, name: str | None) -> dict[str, Any]:
    """The send_welcome_msg body of a contact way's welcome, with the customer's name."""
    body: dict[str, Any] = {}
    if welcome.get("text"):
        body["text"] = {"content": str(welcome["text"]).replace("{name}", name or "")}
    if welcome.get("attachments"):
        body["attachments"] = list(welcome["attachments"])
    return body


def send_welcome(
    engine: Engine,
    client: WeComClient,
    *,
    brand_id: int,
    welcome_code: str,
    userid: str,
    external_userid: str,
    contact_way_id: int | None,
    body: dict[str, Any],
) -> str:
    """Send one welcome through the outbox: claimed first, never sent twice. Returns status.

    A claim left 'sending' (a crash, a timeout) is resolved by sending again: WeCom answers
    41051 when the first one was delivered. A transient failure leaves it 'sending' and
    raises, so the event is retried.
    """
    w = WeComWelcome
    with engine.begin() as conn:
        insert_ignore(
            conn,
            w.__table__,
            {
                "brand_id": brand_id,
                "welcome_code": welcome_code,
                "user_id": userid,
                "external_userid": external_userid,
                "contact_way_id": contact_way_id,
                "status": "sending",
                "payload": body,
                "created_at": datetime.now(UTC),
            },
            w.id,
        )
        status = conn.execute(
            select(w.status).where(w.brand_id == brand_id, w.welcome_code == welcome_code)
        ).scalar_one()
    if status != "sending":
        return status
    errcode = 0
    try:
        client.send_welcome_msg(
            welcome_code=welcome_code, text=body.get("text"), attachments=body.get("attachments")
        )
    except WeComUnavailable:
        raise
    except WeComError as e:
        errcode = e.errcode
    status = "sent" if errcode in (0, WELCOME_ALREADY_SENT) else "failed"
    if status == "failed":
        log.warning("welcome %s to %s not sent: errcode %s", welcome_code, external_userid, errcode)
    with engine.begin() as conn:
        conn.execute(
            update(w)
            .where(w.brand_id == brand_id, w.welcome_code == welcome_code)
            .values(
                status=status,
                errcode=errcode or None,
                sent_at=datetime.now(UTC) if status == "sent" else None,
            )
        )
    return status
