"""What every config file shares: the error, strict models, reading YAML, one-line errors.

Kept apart from job.py so that the modules reading a table of their own (prices,
models) do not import everything a job config holds (presets, overlays, publish).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fsspec
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError


class ConfigError(Exception):
    """A config, price table or manifest that cannot be used at all (exit code 2)."""


class StrictModel(BaseModel):
    # A misspelt key in YAML must fail loudly, not be ignored.
    model_config = ConfigDict(extra="forbid")


def load_yaml(url: str | Path) -> dict[str, Any]:
    """Read a YAML mapping from a local path or any fsspec URL."""
    try:
        with fsspec.open(str(url), "r", encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError as e:
        raise ConfigError(f"{url}: file not found") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{url}: not valid YAML: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{url}: expected a mapping at the top level")
    return data


def format_validation_error(source: str, err: ValidationError) -> str:
    """One line per problem, naming the key path."""
    lines = [f"{source}: invalid config"]
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        lines.append(f"  {where}: {e['msg']}")
    return "\n".join(lines)
