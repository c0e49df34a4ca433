"""A run's records in the store, under `_runs/<run_id>/`: summary.json, rejects.csv, shard jobs."""

from __future__ import annotations

import secrets
from datetime import datetime

RUNS = "_runs"


def new_run_id(now: datetime) -> str:
    """Sortable and unique: `20261125T101500Z-3fa9c2`."""
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def run_file(run_id: str, name: str) -> str:
    """A file of the run's records, relative to the store root."""
    return f"{RUNS}/{run_id}/{name}"
