"""Opening a brand's stores: an engine on an up-to-date schema and the configured brand."""

from __future__ import annotations

from sqlalchemy import Engine

from siyu import migrate
from siyu.config import Settings
from siyu.db import make_engine
from siyu.orgs import service as org_service


def open_brand(settings: Settings) -> tuple[Engine, int]:
    """Migrate the operational store if needed and return (engine, brand id)."""
    engine = make_engine(settings)
    migrate.upgrade(engine)
    with engine.begin() as conn:
        brand_id = org_service.get_or_create_brand(
            conn, code=settings.brand_code, name=settings.brand_name, timezone=settings.timezone
        )
    return engine, brand_id
