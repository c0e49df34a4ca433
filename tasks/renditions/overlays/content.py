"""A text layer's text from the row's manifest columns: a column, or a Jinja2 template."""

from __future__ import annotations

import functools
import re
from typing import Any

import jinja2

from assetgen.tasks.renditions.overlays.layers import TextLayer

_TEMPLATES = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def blank(v: Any) -> bool:
    """Empty for a conditional layer: None, NaN (pandas' empty cell) or only spaces."""
    return v is None or (isinstance(v, float) and v != v) or str(v).strip() == ""


def resolve_text(layer: TextLayer, values: dict[str, Any]) -> str:
    """The layer's text: a column's value, or its Jinja2 template rendered over the columns.

    KeyError for an unknown column, jinja2.TemplateError for a broken template.
    """
    content = layer.content
    if _COLUMN.match(content):
        if content not in values:
            raise KeyError(f"no column {content!r}")
        v = values[content]
        return "" if blank(v) else str(v)
    try:
        return _template(content).render(**values)
    except jinja2.UndefinedError as e:
        raise KeyError(str(e)) from None


@functools.lru_cache(maxsize=256)
def _template(source: str) -> jinja2.Template:
    return _TEMPLATES.from_string(source)
