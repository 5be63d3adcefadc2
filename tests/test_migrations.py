"""The migrations build exactly the schema the models describe, on both engines."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from siyu.db import make_engine
from siyu.migrate import current_revision, head_revision, upgrade
from siyu.models import Base


def test_migrations_match_models(settings):
    engine = make_engine(settings)
    upgrade(engine)
    assert current_revision(engine) == head_revision(engine)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_server_default": False})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []
