"""An SOP definition 标准作业程序: its trigger, audience, guards, conversion window and steps.

Validated with pydantic on import; every error names its path from the root, e.g.
``steps[2].send.variants[1].text: undefined variable 'customer.nmae'``. Templates, cron
expressions, segment rules and branch targets are checked here, before anything is stored.
"""

from __future__ import annotations

import re
from datetime import time
from typing import Annotated, Any, Literal

from croniter import croniter
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from siyu.segments.rules import RuleError, parse
from siyu.sop.render import check_template

EVENTS = {
    # trigger name: (event type in the `event` table, payload filters it accepts)
    "friend_added": ("wecom.friend_added", ("channel", "staff")),
    "joined_group": ("wecom.group_joined", ("group",)),
    "order_paid": ("order.paid", ("store", "platform")),
    "became_member": ("member.joined", ("level",)),
    "tag_added": ("tag.added", ("tag",)),
    "tag_removed": ("tag.removed", ("tag",)),
    "segment_entered": ("segment.entered", ("segment",)),
    "segment_exited": ("segment.exited", ("segment",)),
    "lifecycle_changed": ("lifecycle.changed", ("from", "to")),
    "referral_completed": ("referral.completed", ()),
    "coupon_expiring": ("coupon.expiring", ("template",)),
}
CHANNELS = ("wecom", "group", "sms")
HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class DefinitionError(ValueError):
    """A definition that cannot be stored; `errors` are "path: message" lines."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _hhmm(value: str) -> str:
    if not HHMM.match(value):
        raise ValueError(f"expected a time of day HH:MM, got {value!r}")
    return value


def _rule(value: Any) -> Any:
    try:
        parse(value, "rule")
    except RuleError as e:
        raise ValueError(str(e)) from None
    return value


HHMMStr = Annotated[str, AfterValidator(_hhmm)]
Template = Annotated[str, AfterValidator(lambda v: check_template(v))]
Rule = Annotated[dict[str, Any], AfterValidator(_rule)]


# ----- trigger ------------------------------------------------------------------------------


class EventTrigger(_Model):
    type: str
    filter: dict[str, str] = Field(default_factory=dict)

    @field_validator("type")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in EVENTS:
            raise ValueError(f"unknown event {v!r} (one of: {', '.join(EVENTS)})")
        return v

    @model_validator(mode="after")
    def _filters(self) -> EventTrigger:
        allowed = EVENTS[self.type][1]
        for k in self.filter:
            if k not in allowed:
                raise ValueError(
                    f"filter {k!r} does not apply to {self.type} "
                    f"(filters: {', '.join(allowed) or 'none'})"
                )
        return self


class AfterPurchase(_Model):
    days: int = Field(ge=1, le=3660)
    category: list[str] = Field(default_factory=list)
    at: HHMMStr = "10:00"


class DateTrigger(_Model):
    at: HHMMStr = "10:00"


class Trigger(_Model):
    event: EventTrigger | None = None
    schedule: str | None = None
    after_purchase: AfterPurchase | None = None
    birthday: DateTrigger | None = None
    anniversary: DateTrigger | None = None

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is not None and not croniter.is_valid(v):
            raise ValueError(f"invalid cron expression {v!r} (five fields: m h dom mon dow)")
        return v

    @model_validator(mode="after")
    def _one(self) -> Trigger:
        set_ = [k for k in type(self).model_fields if getattr(self, k) is not None]
        if len(set_) != 1:
            raise ValueError(
                "a trigger has exactly one of event, schedule, after_purchase, birthday, "
                f"anniversary (found: {', '.join(set_) or 'none'})"
            )
        return self

    @property
    def kind(self) -> str:
        return next(k for k in type(self).model_fields if getattr(self, k) is not None)


# ----- audience, guards ---------------------------------------------------------------------


class Groups(_Model):
    stores: list[str] | None = None  # store codes; None = every group of the brand


class Audience(_Model):
    segment: str | None = None
    rule: Rule | None = None
    groups: Groups | None = None

    @model_validator(mode="after")
    def _at_most_one(self) -> Audience:
        set_ = [k for k in ("segment", "rule", "groups") if getattr(self, k) is not None]
        if len(set_) > 1:
            raise ValueError(f"an audience is one of segment, rule or groups (found {set_})")
        return self


class Guards(_Model):
    """Per-SOP overrides of the brand's guard defaults (siyu.sop.guards.GuardSettings)."""

    kind: Literal["marketing", "service"] = "marketing"
    holdout: float | None = Field(default=None, ge=0, le=0.5)
    daily_cap: int | None = Field(default=None, ge=0)
    weekly_cap: int | None = Field(default=None, ge=0)
    quiet_start: str | None = None
    quiet_end: str | None = None

    @field_validator("quiet_start", "quiet_end")
    @classmethod
    def _times(cls, v: str | None) -> str | None:
        return v if v is None else _hhmm(v)


# ----- steps --------------------------------------------------------------------------------


class Image(_Model):
    pic_url: str


class Link(_Model):
    title: Template
    url: str
    picurl: str | None = None
    desc: Template | None = None


class MiniProgram(_Model):
    title: Template
    appid: str
    page: str
    pic_media_id: str


class Variant(_Model):
    """Content for the customers `when` selects (first match wins; no `when` = default).

    `when` is a segment rule, or the shorthands {lifecycle: …}, {value_layer: …}, {store: …}.
    """

    when: dict[str, Any] | None = None
    text: Template | None = None
    image: Image | None = None
    link: Link | None = None
    miniprogram: MiniProgram | None = None

    @field_validator("when")
    @classmethod
    def _when(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if v is None else _rule(when_rule(v))

    @model_validator(mode="after")
    def _content(self) -> Variant:
        if not (self.text or self.image or self.link or self.miniprogram):
            raise ValueError("a message needs text, image, link or miniprogram")
        return self


def when_rule(when: dict[str, Any]) -> dict[str, Any]:
    """A variant's condition as a segment rule (shorthands expanded)."""
    if len(when) == 1:
        ((k, v),) = when.items()
        if k in ("lifecycle", "value_layer"):
            return {"field": k, "op": "eq" if isinstance(v, str) else "in", "value": v}
        if k == "store":
            return {"field": "store", "op": "any_of", "value": [v] if isinstance(v, str) else v}
    return when


class Send(_Model):
    channel: Literal["wecom", "group", "sms"]
    variants: list[Variant] = Field(min_length=1)

    @model_validator(mode="after")
    def _default_last(self) -> Send:
        for i, v in enumerate(self.variants[:-1]):
            if v.when is None:
                raise ValueError(
                    f"variants[{i}] has no `when` but is not last (it would hide the rest)"
                )
        if self.channel == "sms":
            for i, v in enumerate(self.variants):
                if not v.text or v.image or v.link or v.miniprogram:
                    raise ValueError(f"variants[{i}]: an SMS is text only")
        return self


class Wait(_Model):
    days: int = Field(default=0, ge=0)
    hours: int = Field(default=0, ge=0)
    minutes: int = Field(default=0, ge=0)
    until: HHMMStr | None = None

    @model_validator(mode="after")
    def _some(self) -> Wait:
        if not (self.days or self.hours or self.minutes or self.until):
            raise ValueError("a wait needs days, hours, minutes or until HH:MM")
        return self


class Branch(_Model):
    """Customers the rule selects go to step `then`, the others to `else` (a step id, or
    "next" / "end")."""

    when: Rule
    then: str = "next"
    else_: str = Field(default="next", alias="else")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class TagStep(_Model):
    group: str = "SOP"
    name: str


class Task(_Model):
    title: Template
    body: Template | None = None
    due_days: int = Field(default=1, ge=0)


class Webhook(_Model):
    url: str
    body: dict[str, Any] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"expected an http(s) URL, got {v!r}")
        return v

    @field_validator("body")
    @classmethod
    def _tpl(cls, v: dict[str, Any]) -> dict[str, Any]:
        for k, x in v.items():
            if isinstance(x, str):
                try:
                    check_template(x)
                except ValueError as e:
                    raise ValueError(f"body.{k}: {e}") from None
        return v


STEP_KINDS = ("send", "wait", "branch", "tag", "untag", "task", "webhook")


class Step(_Model):
    id: str | None = None
    send: Send | None = None
    wait: Wait | None = None
    branch: Branch | None = None
    tag: TagStep | None = None
    untag: TagStep | None = None
    task: Task | None = None
    webhook: Webhook | None = None

    @model_validator(mode="after")
    def _one(self) -> Step:
        set_ = [k for k in STEP_KINDS if getattr(self, k) is not None]
        if len(set_) != 1:
            raise ValueError(
                f"a step has exactly one of {', '.join(STEP_KINDS)} (found: {', '.join(set_) or 'none'})"
            )
        return self

    @property
    def kind(self) -> str:
        return next(k for k in STEP_KINDS if getattr(self, k) is not None)


# ----- the definition -----------------------------------------------------------------------


class Definition(_Model):
    key: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    trigger: Trigger
    audience: Audience = Field(default_factory=Audience)
    guards: Guards = Field(default_factory=Guards)
    conversion_days: int = Field(default=7, ge=1, le=365)
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _coherent(self) -> Definition:
        ids = [s.id for s in self.steps if s.id]
        if len(ids) != len(set(ids)):
            raise ValueError("step ids must be unique")
        group = self.audience.groups is not None
        for i, s in enumerate(self.steps):
            if s.branch is not None:
                for label in (s.branch.then, s.branch.else_):
                    if label not in ("next", "end") and label not in ids:
                        raise ValueError(f"steps[{i}].branch: no step with id {label!r}")
            if group and s.kind not in ("send", "wait"):
                raise ValueError(f"steps[{i}]: a group SOP only sends and waits")
            if s.send is not None and (s.send.channel == "group") != group:
                raise ValueError(
                    f"steps[{i}].send.channel: 'group' sends need audience.groups, "
                    "and an audience of groups only takes 'group' sends"
                )
        if group and self.trigger.kind != "schedule":
            raise ValueError("trigger: an audience of groups needs a schedule trigger")
        return self

    @property
    def for_groups(self) -> bool:
        return self.audience.groups is not None

    def target(self, index: int, label: str) -> int:
        """The step index a branch label leads to (len(steps) = the end)."""
        if label == "next":
            return index + 1
        if label == "end":
            return len(self.steps)
        return next(i for i, s in enumerate(self.steps) if s.id == label)


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-plain") or str(part).startswith("function"):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def validate(raw: Any) -> Definition:
    """The definition, or a DefinitionError listing every problem with its path."""
    if not isinstance(raw, dict):
        raise DefinitionError(
            [f"(top): expected a mapping of key, name, trigger, steps…, got {type(raw).__name__}"]
        )
    try:
        return Definition.model_validate(raw)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            msg = str(err["msg"]).removeprefix("Value error, ")
            path = _path(tuple(err["loc"])) or "(top)"
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            if not _path(tuple(err["loc"])) and re.match(r"^(steps|trigger|audience)\b", msg):
                lines.append(msg)  # a whole-definition check that names its own path
            else:
                lines.append(f"{path}: {msg}")
        raise DefinitionError(lines) from None


def dump(defn: Definition) -> dict[str, Any]:
    """The definition as plain data (what is stored and exported)."""
    return defn.model_dump(mode="json", exclude_none=True, exclude_defaults=False, by_alias=True)


def quiet_times(value: str) -> time:
    h, m = value.split(":")
    return time(int(h), int(m))
