"""Personal data at rest (SPEC §12): sealed for display, a keyed hash for matching.

Phone numbers and emails are identifiers: `identifier.value` (and every fact's `id_value`)
holds `lookup_hash(id_type, normalised value)`, so identity resolution and every join on
(id_type, value) work unchanged, and `identifier.value_sealed` holds the value sealed with
AES-256-GCM for the screens allowed to show it. Names are sealed (`name_sealed`) with a
hash beside them (`name_hash`) for change detection and exact-name search. Keys: keys.py;
why birthday, city and gender stay clear: docs/pii.md.
"""

from __future__ import annotations

import re

from siyu.pii.keys import (
    Keyring,
    KeySource,
    PiiError,
    PiiKeyMismatch,
    PiiKeyMissing,
    PiiTampered,
    attach,
    keyring,
    open_or_create,
    verify,
)

# Identifier types whose values are personal data. Platform ids (external_userid, unionid,
# openids, member numbers, buyer nicks) are pseudonymous keys issued by a platform and stay
# as they are: they are useless without that platform, and SOPs and WeCom calls need them.
PII_ID_TYPES = ("phone", "email")
# The blind index of a phone's last four digits (尾号), for search by 4+ trailing digits.
TAIL_TYPE = "phone_tail4"
NAME_TYPE = "name"


def is_pii(id_type: str) -> bool:
    return id_type in PII_ID_TYPES


def stored_value(ring: Keyring, id_type: str, value: str) -> str:
    """What `identifier.value` / a fact's `id_value` holds for a normalised value."""
    return ring.lookup_hash(id_type, value) if id_type in PII_ID_TYPES else value


def tail_hash(ring: Keyring, digits: str) -> str:
    """The blind index of the last four digits of a phone (or of typed digits)."""
    return ring.lookup_hash(TAIL_TYPE, digits[-4:])


def name_hash(ring: Keyring, name: str | None) -> str | None:
    return None if name is None else ring.lookup_hash(NAME_TYPE, name)


def shown(ring: Keyring, value: str | None, sealed: str | None) -> str | None:
    """The clear value of a stored identifier: opened when sealed, else stored as it is."""
    return ring.open_(sealed) if sealed is not None else value


def mask_phone(phone: str | None) -> str | None:
    """+8613800138000 → 138****8000 (PIPL: roles without the right never see a whole number)."""
    if not phone:
        return phone
    digits = phone[3:] if phone.startswith("+86") else phone.lstrip("+")
    if len(digits) < 8:
        return "*" * len(digits)
    return f"{digits[:3]}****{digits[-4:]}"


def mask_name(name: str | None) -> str | None:
    """王小明 → 王**; a one-character name is shown as *."""
    if not name:
        return name
    return name[0] + "*" * (len(name) - 1) if len(name) > 1 else "*"


def mask_email(email: str | None) -> str | None:
    """wang.xm@example.com → w***@example.com."""
    if not email or "@" not in email:
        return email
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


def mask(id_type: str, value: str | None) -> str | None:
    """An identifier value as a role without the right to personal data sees it."""
    if id_type == "phone":
        return mask_phone(value)
    if id_type == "email":
        return mask_email(value)
    return value


SEALED_SUFFIX = "_sealed"


def has_sealed(payload: dict[str, object]) -> bool:
    return any(k.endswith(SEALED_SUFFIX) for k in payload)


def unsealed(ring: Keyring, payload: dict[str, object]) -> dict[str, object]:
    """An outbox payload as an adapter sends it: every `<name>_sealed` opened into `<name>`
    (an SMS payload keeps the phone's hash in `phone` and the number in `phone_sealed`)."""
    out = {k: v for k, v in payload.items() if not k.endswith(SEALED_SUFFIX)}
    for k, v in payload.items():
        if k.endswith(SEALED_SUFFIX) and isinstance(v, str):
            out[k[: -len(SEALED_SUFFIX)]] = ring.open_(v)
    return out


_PHONE_IN_TEXT = re.compile(r"(?<!\d)(?:\+?86[\s-]?)?(1[3-9]\d)[\s-]?\d{4}[\s-]?(\d{4})(?!\d)")
_EMAIL_IN_TEXT = re.compile(r"([^@\s\"']{1})[^@\s\"']*@([^@\s\"']+\.[^@\s\"',}]+)")


def redact(message: str) -> str:
    """Free text (a provider's error, a logged search) with mainland mobiles and emails
    masked: cannot deliver to 139****0005, w***@example.com."""
    masked = _PHONE_IN_TEXT.sub(lambda m: f"{m.group(1)}****{m.group(2)}", message)
    return _EMAIL_IN_TEXT.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", masked)


__all__ = [
    "NAME_TYPE",
    "PII_ID_TYPES",
    "TAIL_TYPE",
    "KeySource",
    "Keyring",
    "PiiError",
    "PiiKeyMismatch",
    "PiiKeyMissing",
    "PiiTampered",
    "attach",
    "has_sealed",
    "is_pii",
    "keyring",
    "mask",
    "mask_email",
    "mask_name",
    "mask_phone",
    "name_hash",
    "open_or_create",
    "redact",
    "shown",
    "stored_value",
    "tail_hash",
    "unsealed",
    "verify",
]
