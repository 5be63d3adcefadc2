"""Tokens on the console brand (tests/web/console_brand.py), issued like `siyu api-token create`."""

from __future__ import annotations

from collections.abc import Iterable

from siyu.auth import service as tokens
from siyu.config import Settings
from siyu.runtime import open_brand

# name: (role, org, staff, scopes)
Spec = tuple[str, str | None, str | None, Iterable[str]]


def issue(settings: Settings, specs: dict[str, Spec]) -> dict[str, dict[str, str]]:
    """An Authorization header per token name."""
    engine, brand_id = open_brand(settings)
    issued = {}
    with engine.begin() as conn:
        for name, (role, org, staff, scopes) in specs.items():
            token = tokens.create(conn, brand_id, name, role=role, org=org, staff_code=staff,
                                  scopes=tuple(scopes))  # fmt: skip
            issued[name] = {"Authorization": f"Bearer {token}"}
    engine.dispose()
    return issued
