"""No input makes an endpoint answer 5xx (issue #7 "Bad input"): Schemathesis generates
requests from the OpenAPI document — valid, and invalid on purpose — for every /api/v1
operation, with a live token, on both engines, against a populated brand."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from siyu.app import create_app
from siyu.auth import service as tokens
from siyu.auth.principal import SCOPES
from siyu.config import Settings
from siyu.runtime import open_brand
from tests.factories import run_import, write_dir
from tests.metrics import brand


@pytest.fixture
def api(settings: Settings, tmp_path: Path) -> Iterator[tuple[object, str]]:
    run_import(settings, write_dir(tmp_path / "in", brand.FILES))
    engine, brand_id = open_brand(settings)
    with engine.begin() as conn:
        token = tokens.create(conn, brand_id, "fuzz", role="hq_admin", scopes=SCOPES)
    engine.dispose()
    app = create_app(settings)
    yield app, token
    app.state.siyu.engine.dispose()


def test_no_input_gets_a_server_error(api) -> None:  # type: ignore[no-untyped-def]
    app, token = api
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [op.ok() for op in schema.get_all_operations()]
    assert len(operations) >= 10  # every /api/v1 operation is fuzzed, not a silent subset
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])  # fmt: skip
        def fuzz(case) -> None:  # type: ignore[no-untyped-def]
            response = case.call(headers={"Authorization": f"Bearer {token}"})
            case.validate_response(response, checks=[not_a_server_error])
            if response.status_code >= 400:  # one error shape everywhere
                assert set(response.json()) == {"error"}, response.text

        fuzz()
