"""WeCom integration state: shared access tokens, stored callbacks, contact ways, welcome outbox.

Nothing here is a customer fact: connections, identities and tags live in their own domains;
these tables are what the integration needs to speak WeCom's protocol exactly once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, BigId, UTCDateTime, utcnow


class WeComAccessToken(Base):
    """One access_token per (corp, secret), shared by every process (WeCom allows few gettokens).

    The secret itself is never stored: `secret_hash` is its SHA-256.
    """

    __tablename__ = "wecom_access_token"

    corp_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    access_token: Mapped[str] = mapped_column(String(512))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WeComCallbackEvent(Base):
    """A decrypted callback as received; processed from here, so a failure can be retried.

    `event_key` is the SHA-256 of the event's content (not of the delivery): WeCom's retries and
    duplicate deliveries carry a new nonce and ciphertext but the same content, and collapse here.
    status: pending → processing (claimed) → processed | failed (retried while attempts remain) |
    ignored (unknown type).
    """

    __tablename__ = "wecom_callback_event"
    __table_args__ = (
        UniqueConstraint("brand_id", "event_key"),
        Index("ix_wecom_callback_event_todo", "brand_id", "status", "create_time"),
        Index("ix_wecom_callback_event_pair", "brand_id", "user_id", "external_userid"),
        Index("ix_wecom_callback_event_chat", "brand_id", "chat_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"))
    event_key: Mapped[str] = mapped_column(String(64))
    corp_id: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(64))
    change_type: Mapped[str | None] = mapped_column(String(64))
    user_id: Mapped[str | None] = mapped_column(String(64))
    external_userid: Mapped[str | None] = mapped_column(String(64))
    chat_id: Mapped[str | None] = mapped_column(String(64))
    create_time: Mapped[datetime] = mapped_column(UTCDateTime)
    xml: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A processor claims an event (status 'processing') before handling it, so two processors
    # never handle one event; a claim older than the lease is taken to be a crashed one.
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WeComCallbackNonce(Base):
    """(timestamp, nonce) of every accepted delivery inside the skew window: a replay is refused."""

    __tablename__ = "wecom_callback_nonce"

    timestamp: Mapped[str] = mapped_column(String(20), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class WeComContactWay(Base):
    """A channel live code (渠道活码, WeCom 「联系我」): its `state` attributes adds to a channel.

    welcome: {"text": "...{name}...", "attachments": [WeCom attachment objects]} or null;
    tag_ids: Siyu tag ids applied (in WeCom and in Siyu) to every customer added through it.
    """

    __tablename__ = "wecom_contact_way"
    __table_args__ = (
        UniqueConstraint("brand_id", "config_id"),
        UniqueConstraint("brand_id", "state"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"))
    config_id: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(30))
    channel_id: Mapped[int] = mapped_column(ForeignKey("channel.id"), index=True)
    store_id: Mapped[int | None] = mapped_column(ForeignKey("store.id"), index=True)
    user_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    qr_code: Mapped[str | None] = mapped_column(String(500))
    remark: Mapped[str | None] = mapped_column(String(100))
    welcome: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    tag_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Load balancing over `user_ids`: a staff member who has added this many customers through
    # the code today (brand-local day) is taken off it until tomorrow (`siyu wecom rotate`).
    daily_cap: Mapped[int | None] = mapped_column(Integer)


class WeComWelcome(Base):
    """Outbox of welcome messages: a WelcomeCode is claimed here before it is ever sent.

    status: sending (claimed; a crash here is resolved by asking WeCom: 41051 means delivered)
    → sent | failed (errcode says why). A code is never sent twice.
    """

    __tablename__ = "wecom_welcome"
    __table_args__ = (UniqueConstraint("brand_id", "welcome_code"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"))
    welcome_code: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[str] = mapped_column(String(64))
    external_userid: Mapped[str] = mapped_column(String(64))
    contact_way_id: Mapped[int | None] = mapped_column(ForeignKey("wecom_contact_way.id"))
    status: Mapped[str] = mapped_column(String(16), default="sending")
    errcode: Mapped[int | None] = mapped_column(Integer)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WeComContactTag(Base):
    """WeCom's corp tags as they sit on one (staff, external contact) pair — a mirror of WeCom.

    Customer tags in Siyu are derived from it after identity resolution, so a tag reaches the
    customer whoever of the staff carries it.
    """

    __tablename__ = "wecom_contact_tag"

    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    external_userid: Mapped[str] = mapped_column(String(64), primary_key=True)
    wecom_tag_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WeComDepartment(Base):
    """WeCom's departments (通讯录部门) as the last sync or directory callback saw them."""

    __tablename__ = "wecom_department"

    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"), primary_key=True)
    department_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(200))
    parent_id: Mapped[int | None] = mapped_column(Integer)
    order: Mapped[int | None] = mapped_column(Integer)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WeComMember(Base):
    """A member of WeCom's directory (成员) and the Siyu staff row it is.

    status is WeCom's: 1 active, 2 disabled, 4 not yet activated, 5 left the company (退出企业);
    `left_at` is set when the member is deleted from the directory (离职), which is what makes
    their customers eligible for a resigned transfer (离职继承).
    """

    __tablename__ = "wecom_member"

    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"), primary_key=True)
    userid: Mapped[str] = mapped_column(String(64), primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    departments: Mapped[list[int]] = mapped_column(JSON, default=list)
    main_department: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[int] = mapped_column(Integer, default=1)
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WeComExternalContact(Base):
    """A customer's profile as WeCom last gave it: lets a re-sync skip unchanged customers."""

    __tablename__ = "wecom_external_contact"

    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"), primary_key=True)
    external_userid: Mapped[str] = mapped_column(String(64), primary_key=True)
    name_hash: Mapped[str | None] = mapped_column(String(64))  # siyu.pii: compared, not shown
    unionid: Mapped[str | None] = mapped_column(String(64))
    gender: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WeComSyncRun(Base):
    """The brand's current or last `siyu wecom sync`: the phase it is in and that phase's cursor.

    Each page of a phase is written in the same transaction as the cursor that follows it, so
    an interrupted sync resumes at the page it had not finished. `counts` are the changes made.
    """

    __tablename__ = "wecom_sync_run"

    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"), primary_key=True)
    run_id: Mapped[int] = mapped_column(Integer)
    phase: Mapped[str] = mapped_column(String(16))
    cursor: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    counts: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)


class WeComSyncSeen(Base):
    """What a sync run saw in WeCom: friendships, groups and group members. After the last page,
    what Siyu holds open and the run did not see has ended in WeCom, and is ended here."""

    __tablename__ = "wecom_sync_seen"

    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"), primary_key=True)
    run_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)  # friend / group / member
    owner: Mapped[str] = mapped_column(String(64), primary_key=True)  # userid / chat_id
    subject: Mapped[str] = mapped_column(String(64), primary_key=True)  # external_userid / ''


class WeComTransfer(Base):
    """One customer (or group) handed from one staff member to another (在职继承 / 离职继承).

    kind: in_service | resigned; subject: customer | group.
    status: requesting (claimed, WeCom not yet answered) → waiting (WeCom accepted; it takes
    over after 24 h unless the customer refuses) → succeeded | refused | takeover_full |
    no_record; or failed (WeCom refused the request: `errcode` says why).
    """

    __tablename__ = "wecom_transfer"
    __table_args__ = (
        Index("ix_wecom_transfer_pair", "brand_id", "handover_userid", "takeover_userid"),
        Index("ix_wecom_transfer_subject", "brand_id", "subject_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"))
    kind: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(8))
    subject_id: Mapped[str] = mapped_column(String(64))
    handover_userid: Mapped[str] = mapped_column(String(64))
    takeover_userid: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="requesting")
    errcode: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(String(200))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    takeover_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WeComMassTask(Base):
    """A mass-message task (企业群发, add_msg_template) for outbox rows, recorded as an intent
    before WeCom is called — add_msg_template takes no idempotency key.

    state: intent (the call may or may not have happened) → open (msgid known; results are
    polled until every recipient has a final status) → done; or void (recovery found no task
    in WeCom: the rows went back to the outbox). `targets` (external_userid or chat_id) and
    `outbox_ids` are aligned lists; `content_hash` is the SHA-256 of the text and attachments,
    which recovery matches against get_groupmsg_list_v2.
    """

    __tablename__ = "wecom_mass_task"
    __table_args__ = (Index("ix_wecom_mass_task_state", "state", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    chat_type: Mapped[str] = mapped_column(String(8))  # single / group
    sender: Mapped[str] = mapped_column(String(64))
    content_hash: Mapped[str] = mapped_column(String(64))
    targets: Mapped[list[str]] = mapped_column(JSON)
    outbox_ids: Mapped[list[int]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    msgid: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(8), default="intent")
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
