"""Prompt templates: Jinja2, sandboxed, strict about undefined variables."""

from __future__ import annotations

from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from assetgen.tasks.config.base import ConfigError

# Rendering a user template must not reach Python internals, and a missing
# column must reject the row instead of silently rendering as "".
_ENV = SandboxedEnvironment(
    undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False
)


class TemplateError(ValueError):
    """A row cannot fill the template."""

    def __init__(self, variable: str | None, message: str) -> None:
        super().__init__(message)
        self.variable = variable


class PromptTemplate:
    """A compiled `prompt_template`."""

    def __init__(self, source: str) -> None:
        try:
            self._template = _ENV.from_string(source)
        except TemplateSyntaxError as e:
            raise ConfigError(f"prompt_template: line {e.lineno}: {e.message}") from e

    def render(self, fields: dict[str, Any]) -> str:
        """The prompt for one row; raises TemplateError naming what is missing."""
        try:
            return self._template.render(fields).strip()
        except UndefinedError as e:
            variable = _undefined_name(str(e))
            raise TemplateError(variable, f"prompt_template: {e}") from e
        except Exception as e:  # sandbox violations, bad filters, type errors
            raise TemplateError(None, f"prompt_template: {type(e).__name__}: {e}") from e


def _undefined_name(message: str) -> str | None:
    # Jinja2 says "'color' is undefined" (or "... has no attribute 'x'").
    if message.startswith("'") and "' is undefined" in message:
        return message[1 : message.index("' is undefined")]
    return None
