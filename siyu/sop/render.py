"""Message templates: Jinja2 in a sandbox with StrictUndefined over customer, store and staff.

`check_template` runs at import time: it parses the template and refuses any variable that is
not one of FIELDS (``customer.nmae`` → "undefined variable 'customer.nmae'"), so a typo is
caught when the SOP is saved, not when ten thousand messages are rendered.
"""

from __future__ import annotations

import difflib
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.sandbox import SandboxedEnvironment

# What a template may read: {namespace: fields}.
FIELDS: dict[str, tuple[str, ...]] = {
    "customer": ("id", "name", "gender", "city", "birthday"),
    "store": ("code", "name", "city", "region"),
    "staff": ("code", "name"),
    "group": ("code", "name"),
    "sop": ("key", "name"),
    "occurrence": (),
}
ALL = [f"{ns}.{f}" for ns, fs in FIELDS.items() for f in fs] + [
    ns for ns, fs in FIELDS.items() if not fs
]

_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


def check_template(source: str) -> str:
    """The template unchanged, or ValueError naming the syntax error or undefined variable."""
    try:
        tree = _env.parse(source)
    except TemplateSyntaxError as e:
        raise ValueError(f"template syntax error on line {e.lineno}: {e.message}") from None
    assigned = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    for node in tree.find_all((nodes.Getattr, nodes.Name)):
        if isinstance(node, nodes.Getattr) and isinstance(node.node, nodes.Name):
            ns, attr = node.node.name, node.attr
            if ns in assigned:
                continue
            if ns in FIELDS and attr not in FIELDS[ns]:
                _undefined(f"{ns}.{attr}")
        elif isinstance(node, nodes.Name) and node.ctx == "load":
            if node.name not in FIELDS and node.name not in assigned:
                _undefined(node.name)
    return source


def _undefined(name: str) -> None:
    close = difflib.get_close_matches(name, ALL, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else f" (fields: {', '.join(ALL)})"
    raise ValueError(f"undefined variable '{name}'{hint}")


@lru_cache(maxsize=256)
def _compiled(source: str):  # type: ignore[no-untyped-def]
    return _env.from_string(source)


# A part of a plain template: literal text, or (namespace, field) — or (name, None) for a
# bare variable such as {{ occurrence }}.
_Part = str | tuple[str, str | None]


@lru_cache(maxsize=256)
def _plain(source: str) -> tuple[_Part, ...] | None:
    """The parts of a template that is only text and {{ ns.field }} / {{ name }} outputs, or
    None when it uses anything else (filters, tests, control flow, literals): those render
    through Jinja. Most SOP messages are plain, and a fan-out renders one per customer."""
    try:
        tree = _env.parse(source)
    except TemplateSyntaxError:
        return None
    parts: list[_Part] = []
    for out in tree.body:
        if not isinstance(out, nodes.Output):
            return None
        for n in out.nodes:
            if isinstance(n, nodes.TemplateData):
                parts.append(n.data)
            elif isinstance(n, nodes.Getattr) and isinstance(n.node, nodes.Name):
                parts.append((n.node.name, n.attr))
            elif isinstance(n, nodes.Name):
                parts.append((n.name, None))
            else:
                return None
    return tuple(parts)


def plain_parts(source: str) -> tuple[_Part, ...] | None:
    """The literal text and {{ ns.field }} parts of a plain template (None if it is not plain):
    what the set-based fan-out (siyu.sop.fanout) turns into SQL."""
    return _plain(source)


def render(source: str, context: dict[str, Any]) -> str:
    """Render a checked template; a value missing at run time raises (StrictUndefined).

    A plain template is filled in directly — the same text Jinja gives (values through
    `str`, as Jinja does without autoescape); anything missing falls back to Jinja so the
    error is Jinja's own."""
    parts = _plain(source)
    if parts is not None:
        out: list[str] = []
        try:
            for part in parts:
                if isinstance(part, str):
                    out.append(part)
                    continue
                ns, attr = part
                value = context[ns]
                if attr is not None:
                    if not isinstance(value, dict):
                        raise KeyError(attr)
                    value = value[attr]
                out.append(str(value))
        except KeyError:
            pass
        else:
            return "".join(out)
    return _compiled(source).render(context)
