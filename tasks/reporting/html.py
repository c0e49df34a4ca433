"""The Jinja2 environment every HTML page of assetgen is rendered with."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined


def html_environment(templates: Path) -> Environment:
    """Templates from `templates`, every value escaped, unknown names an error."""
    return Environment(
        loader=FileSystemLoader(templates),
        autoescape=True,  # every value is text unless marked safe; none is
        undefined=StrictUndefined,  # a typo in a template fails the tests, not silently
        trim_blocks=True,
        lstrip_blocks=True,
    )
