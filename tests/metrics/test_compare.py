"""GMV gap attribution (SPEC §5.6): the parts add up and the seeds' example holds."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from siyu.metrics.compare import FACTORS, CompareError, Factors, attribute

BASE = Factors(users=10_000, conversion=0.2, purchases_per_buyer=2.5, aov=4000)


def test_each_factor_ten_percent_behind_gives_0_9_to_the_fourth() -> None:
    behind = Factors(9_000, 0.18, 2.25, 3600)
    result = attribute(behind, BASE)
    assert result["gmv"]["ratio"] == pytest.approx(0.9**4)  # ≈ 0.656
    assert round(result["gmv"]["ratio"], 3) == 0.656
    parts = [result["factors"][f]["contribution"] for f in FACTORS]
    # Equal log-ratios get equal shares of the gap, which they add up to exactly.
    assert parts == pytest.approx([result["gmv"]["gap"] / 4] * 4)
    assert sum(parts) == pytest.approx(result["gmv"]["gap"])


positive = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False, allow_infinity=False)


@given(st.tuples(positive, positive, positive, positive))
def test_parts_always_add_up_to_the_gap(values: tuple[float, float, float, float]) -> None:
    result = attribute(Factors(*values), BASE)
    total = sum(p["contribution"] for p in result["factors"].values())
    assert math.isclose(total, result["gmv"]["gap"], rel_tol=1e-9, abs_tol=1e-6)


def test_no_change_attributes_nothing() -> None:
    result = attribute(BASE, BASE)
    assert result["gmv"]["gap"] == 0
    assert all(p["contribution"] == 0 for p in result["factors"].values())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("users=1,conversion=0.1,purchases_per_buyer=2", "missing aov"),
        ("users=1,conversion=x,purchases_per_buyer=2,aov=3", "conversion='x' is not a number"),
        ("users=1,gmv=3", "'gmv=3' is not factor=value"),
        ("users=0,conversion=0.1,purchases_per_buyer=2,aov=3", "users is 0.0"),
    ],
)
def test_benchmark_text_errors_name_the_factor(text: str, message: str) -> None:
    with pytest.raises(CompareError, match=message):
        Factors.parse(text)
