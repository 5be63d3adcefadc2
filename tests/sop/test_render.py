"""Message rendering: plain templates are filled in without Jinja's per-render overhead, and
must give exactly the text Jinja gives — including None, numbers, dates and missing fields."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jinja2.exceptions import UndefinedError

from siyu.sop.render import _compiled, _plain, render

VALUES = st.one_of(
    st.none(),
    st.integers(-(10**6), 10**6),
    st.text(max_size=8),
    st.dates(min_value=date(1950, 1, 1), max_value=date(2030, 1, 1)),
)
FIELDS = st.sampled_from(["customer.name", "customer.city", "customer.birthday", "store.name",
                          "staff.name", "occurrence"])  # fmt: skip
LITERALS = st.text(alphabet=st.characters(blacklist_characters="{}%#"), max_size=12)


@st.composite
def templates(draw: Any) -> str:
    pieces = draw(st.lists(st.one_of(LITERALS, FIELDS.map(lambda f: "{{ " + f + " }}")), max_size=6))  # fmt: skip
    return "".join(pieces)


@st.composite
def contexts(draw: Any) -> dict[str, Any]:
    def ns(fields: list[str]) -> dict[str, Any]:
        return {f: draw(VALUES) for f in fields if draw(st.booleans()) or f == "name"}

    return {
        "customer": ns(["name", "city", "birthday"]),
        "store": ns(["name"]),
        "staff": ns(["name"]),
        "occurrence": draw(VALUES),
    }


@given(templates(), contexts())
def test_plain_templates_render_exactly_as_jinja(source: str, ctx: dict[str, Any]) -> None:
    assert _plain(source) is not None
    try:
        expected = _compiled(source).render(ctx)
    except UndefinedError:
        with pytest.raises(UndefinedError):
            render(source, ctx)
        return
    assert render(source, ctx) == expected


def test_a_field_missing_at_run_time_raises_jinjas_error() -> None:
    with pytest.raises(UndefinedError, match="city"):
        render("{{ customer.name }}，{{ customer.city }}见", {"customer": {"name": "王"}})


@pytest.mark.parametrize(
    "source",
    ["{{ customer.name | default('朋友') }}", "{% if customer.name %}hi{% endif %}",
     "{{ 'x' }}", "{{ customer.name ~ '!' }}"],
)  # fmt: skip
def test_anything_beyond_fields_goes_through_jinja(source: str) -> None:
    assert _plain(source) is None
    ctx = {"customer": {"name": "王芳"}}
    assert render(source, ctx) == _compiled(source).render(ctx)


def test_trailing_newline_and_whitespace_match_jinja() -> None:
    for source in ["您好 {{ customer.name }}\n", "\n\n{{ customer.name }}  \n\n"]:
        ctx = {"customer": {"name": "李雷"}}
        assert render(source, ctx) == _compiled(source).render(ctx)
