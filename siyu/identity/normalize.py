"""Identifier normalisation — one definition in Python and one in DuckDB SQL, tested to agree.

Phones become E.164: mainland mobiles `+861XXXXXXXXXX` (`13800138000`, `+86 138-0013-8000`,
`008613800138000` are one number); other numbers that already carry a `+` country code are kept
as written without separators. Anything else is not a phone and is rejected, never used to merge.
"""

from __future__ import annotations

import re

from siyu.identity.models import IDENTITY_TYPES

_SEPARATORS = re.compile(r"[\s\-().]")
_CN_MOBILE = re.compile(r"1[3-9]\d{9}")
_E164 = re.compile(r"\+[1-9]\d{6,14}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
MAX_VALUE_LENGTH = 200


class InvalidIdentifier(ValueError):
    """An identifier value that cannot be used; the message says why."""


def normalize_phone(raw: str) -> str | None:
    """The E.164 form of `raw`, or None when it is not a usable phone number."""
    digits = _SEPARATORS.sub("", raw.strip())
    if digits.startswith("+86"):
        rest = digits[3:]
    elif digits.startswith("0086"):
        rest = digits[4:]
    elif digits.startswith("86") and len(digits) == 13:
        rest = digits[2:]
    elif digits.startswith("+"):
        return digits if _E164.fullmatch(digits) else None
    else:
        rest = digits
    return "+86" + rest if _CN_MOBILE.fullmatch(rest) else None


def normalize(id_type: str, raw: str) -> str:
    """The stored form of an identifier; raises InvalidIdentifier naming what is wrong."""
    if id_type not in IDENTITY_TYPES:
        raise InvalidIdentifier(
            f"unknown identifier type {id_type!r}; expected one of {', '.join(IDENTITY_TYPES)}"
        )
    value = raw.strip()
    if not value:
        raise InvalidIdentifier(f"empty {id_type}")
    if id_type == "phone":
        phone = normalize_phone(value)
        if phone is None:
            raise InvalidIdentifier(f"{raw!r} is not a valid phone number")
        return phone
    if id_type == "email":
        if not _EMAIL.fullmatch(value):
            raise InvalidIdentifier(f"{raw!r} is not a valid email address")
        return value.lower()
    if len(value) > MAX_VALUE_LENGTH:
        raise InvalidIdentifier(f"{id_type} longer than {MAX_VALUE_LENGTH} characters")
    return value


def parse_key(key: str) -> tuple[str, str]:
    """Split and normalise a `type:value` key as users type it (`phone:13800138000`)."""
    id_type, sep, raw = key.partition(":")
    if not sep:
        raise InvalidIdentifier(f"{key!r} is not of the form type:value (e.g. phone:13800138000)")
    return id_type.strip(), normalize(id_type.strip(), raw)


# DuckDB macros with the same rules, used by the import's set-based validation.
DUCKDB_MACROS = r"""
CREATE OR REPLACE MACRO siyu_phone_digits(t) AS regexp_replace(trim(t), '[\s\-().]', '', 'g');
CREATE OR REPLACE MACRO siyu_phone_rest(d) AS CASE
    WHEN starts_with(d, '+86') THEN substr(d, 4)
    WHEN starts_with(d, '0086') THEN substr(d, 5)
    WHEN starts_with(d, '86') AND length(d) = 13 THEN substr(d, 3)
    ELSE d END;
CREATE OR REPLACE MACRO siyu_normalize_phone(t) AS CASE
    WHEN starts_with(siyu_phone_digits(t), '+') AND NOT starts_with(siyu_phone_digits(t), '+86')
        THEN CASE WHEN regexp_full_match(siyu_phone_digits(t), '\+[1-9][0-9]{6,14}')
                  THEN siyu_phone_digits(t) END
    WHEN regexp_full_match(siyu_phone_rest(siyu_phone_digits(t)), '1[3-9][0-9]{9}')
        THEN '+86' || siyu_phone_rest(siyu_phone_digits(t))
    END;
CREATE OR REPLACE MACRO siyu_normalize_email(t) AS CASE
    WHEN regexp_full_match(trim(t), '[^@\s]+@[^@\s]+\.[^@\s]+') THEN lower(trim(t)) END;
CREATE OR REPLACE MACRO siyu_normalize_identifier(id_type, t) AS CASE
    WHEN id_type = 'phone' THEN siyu_normalize_phone(t)
    WHEN id_type = 'email' THEN siyu_normalize_email(t)
    WHEN length(trim(t)) BETWEEN 1 AND 200 THEN trim(t)
    END;
"""
