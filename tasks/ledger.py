"""What each run into a store spent, so a period cap holds across scheduled runs."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from tasks.store import AssetStore

LEDGER = "_ledger"


class SpendRecord(BaseModel):
    run_id: str
    started_at: datetime
    spent_usd: float
    reserved_usd: float
    final: bool


def period_key(when: datetime, period: Literal["day", "month"]) -> str:
    return when.strftime("%Y-%m-%d" if period == "day" else "%Y-%m")


class SpendLedger:
    """One record per run under `_ledger/<day>/<run_id>.json`, counted by its start date."""

    def __init__(self, store: AssetStore, run_id: str, started_at: datetime) -> None:
        self.store = store
        self.run_id = run_id
        self.started_at = started_at
        self._day = started_at.strftime("%Y-%m-%d")

    def period_spent(self, period: Literal["day", "month"]) -> float:
        """Spent by other runs that started in the same period.

        A run that never wrote its final record (it crashed) may have been
        billed for what it held, so its reservations count too.
        """
        key = period_key(self.started_at, period)
        fs = self.store.fs
        total = 0.0
        for path in fs.glob(f"{self.store.path(LEDGER)}/{key}*/*.json"):
            with fs.open(path, "rb") as f:
                record = SpendRecord.model_validate_json(f.read())
            if record.run_id != self.run_id:
                total += record.spent_usd + (0 if record.final else record.reserved_usd)
        return total

    def record(self, spent: float, reserved: float, final: bool = False) -> None:
        """Replace this run's record."""
        record = SpendRecord(
            run_id=self.run_id,
            started_at=self.started_at,
            spent_usd=spent,
            reserved_usd=reserved,
            final=final,
        )
        self.store.write_bytes(
            f"{LEDGER}/{self._day}/{self.run_id}.json", record.model_dump_json().encode()
        )
