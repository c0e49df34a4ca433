"""The shared ledger: one winner per entry, claims within every cap, however many write at once."""

from __future__ import annotations

import json
import multiprocessing
import random
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from assetgen.tasks.budget.claims import (
    Caps,
    Heartbeat,
    LedgerAccount,
    close_account,
    grant,
    heartbeat_path,
)
from assetgen.tasks.budget.ledger import (
    LEDGER,
    SNAPSHOT_EVERY,
    Account,
    Entry,
    Ledger,
    LedgerState,
    day_of,
    month_of,
)
from assetgen.tasks.budget.report import budget_report
from assetgen.tasks.store.assets import AssetStore

STARTED = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
DAY = day_of(STARTED)
PERIOD = Caps(period="day", period_usd=1.0)


def account(store: AssetStore, name: str, caps: Caps = PERIOD, **kw) -> LedgerAccount:
    return LedgerAccount(store, name, "run", STARTED, caps, **kw)


def entries(store: AssetStore, month: str = "2026-12") -> list[Entry]:
    """Every entry of the month's log, checked to be numbered 1..N without a gap."""
    fs = store.fs
    fs.invalidate_cache()
    paths = sorted(fs.glob(f"{store.path(LEDGER)}/{month}/log/*.json"))
    found = [Entry.model_validate_json(fs.cat_file(p)) for p in paths]
    assert [e.seq for e in found] == list(range(1, len(found) + 1))
    return found


def replay(found: list[Entry], cap: float) -> LedgerState:
    """The state the log adds up to, checking the period cap after every entry."""
    state = LedgerState(month="2026-12")
    for entry in found:
        state.apply(entry)
        assert state.period_total(DAY, "day") <= cap + 1e-9, f"over the cap at {entry.seq}"
    return state


def test_grant_takes_at_most_half_of_what_is_left_near_the_cap() -> None:
    assert grant(left=10.0, needed=0.1, wanted=2.0, share=True) == 2.0
    assert grant(left=1.0, needed=0.1, wanted=2.0, share=True) == 0.5
    assert grant(left=1.0, needed=0.8, wanted=2.0, share=True) == 0.8
    assert grant(left=1.0, needed=0.1, wanted=2.0, share=False) == 1.0
    assert grant(left=0.05, needed=0.1, wanted=2.0, share=True) == 0.0


def test_claims_count_every_account_of_the_period(tmp_path: Path) -> None:
    store = AssetStore(str(tmp_path))
    a, b = account(store, "run-a"), account(store, "run-b")
    assert a.claim(0.2, 0.4, 0.0) == pytest.approx(0.4)
    # b sees a's claim at once: 0.6 left, half of it at most.
    assert b.claim(0.1, 0.9, 0.0) == pytest.approx(0.3)
    assert b.claim(0.7, 0.7, 0.0) == pytest.approx(0.3)  # refused: unchanged
    assert b.shortfall == "$0.3000 left of the day's cap"
    a.close(0.25)  # a spent 0.25 of its 0.4: 0.15 goes back
    assert b.claim(0.7, 0.7, 0.0) == pytest.approx(0.7)
    state = Ledger(store, "2026-12").read()
    assert state.period_total(DAY, "day") == pytest.approx(0.95)
    assert state.accounts["run-a"].closed and state.accounts["run-a"].spent_usd == 0.25


def test_a_run_cap_is_shared_by_the_accounts_of_its_group(tmp_path: Path) -> None:
    store = AssetStore(str(tmp_path))
    caps = Caps(run_usd=0.5)
    shards = [account(store, f"run-s{i}", caps, group="run") for i in range(3)]
    totals = [s.claim(0.1, 0.3, 0.0) for s in shards]
    assert sum(totals) <= 0.5 + 1e-9 and totals[-1] >= 0.1
    other = account(store, "another-run", caps)  # a run of its own: a cap of its own
    assert other.claim(0.5, 0.5, 0.0) == pytest.approx(0.5)


def test_closed_accounts_never_change_and_never_spend_less(tmp_path: Path) -> None:
    store = AssetStore(str(tmp_path))
    a = account(store, "run-a")
    a.claim(0.3, 0.3, 0.0)
    a.close(0.2)
    a.close(0.1)  # a second close (or a late one) changes nothing
    assert a.claim(0.5, 0.5, 0.2) == pytest.approx(0.2)
    assert "closed" in (a.shortfall or "")
    mine = Ledger(store, "2026-12").read().accounts["run-a"]
    assert (mine.spent_usd, mine.held_usd, mine.closed) == (0.2, 0.0, True)


def test_a_batch_holds_its_part_until_it_is_collected(tmp_path: Path) -> None:
    store = AssetStore(str(tmp_path))
    submit = account(store, "run-b")
    submit.claim(0.5, 0.5, 0.0, share=False)
    submit.move("batch-run-b-000", 0.3)
    submit.close(0.0)
    state = Ledger(store, "2026-12").read()
    assert state.accounts["run-b"].total == 0 and state.period_total(DAY, "day") == 0.3
    batch = state.accounts["batch-run-b-000"]
    close_account(store, batch, 0.12)
    close_account(store, batch, 0.5)  # collected again: nothing changes
    assert Ledger(store, "2026-12").read().period_total(DAY, "day") == pytest.approx(0.12)


def test_a_fresh_reader_starts_from_the_latest_snapshot(tmp_path: Path) -> None:
    store = AssetStore(str(tmp_path))
    a = account(store, "run-a", Caps())
    for i in range(SNAPSHOT_EVERY * 2 + 3):
        a.claim(0.01 * (i + 1), 0.01 * (i + 1), 0.0)
    root = tmp_path / LEDGER / "2026-12"
    assert (root / "snapshot.json").read_text() == str(SNAPSHOT_EVERY * 2)
    fresh = Ledger(store, "2026-12")
    reads: list[str] = []
    original = fresh.fs.cat_file
    fresh.fs.cat_file = lambda path, *a, **k: reads.append(path) or original(path, *a, **k)
    try:
        state = fresh.read()
    finally:
        fresh.fs.cat_file = original
    assert state.seq == SNAPSHOT_EVERY * 2 + 4  # the import entry, then every claim
    assert state.accounts["run-a"].total == pytest.approx(0.01 * (SNAPSHOT_EVERY * 2 + 3))
    log_reads = [p for p in reads if "/log/" in p]
    assert len(log_reads) == 5  # entries after the snapshot, and the one that is not there yet


def test_records_of_the_old_per_run_ledger_count(tmp_path: Path) -> None:
    store = AssetStore(str(tmp_path))
    old = tmp_path / LEDGER / DAY
    old.mkdir(parents=True)
    for name, spent, reserved, final in (
        ("old-done", 0.2, 0.0, True),
        ("old-died", 0.1, 0.3, False),
    ):
        record = {
            "run_id": name,
            "started_at": STARTED.isoformat(),
            "spent_usd": spent,
            "reserved_usd": reserved,
            "final": final,
        }
        (old / f"{name}.json").write_text(json.dumps(record))
    a = account(store, "run-new")
    assert a.claim(0.1, 1.0, 0.0) == pytest.approx(0.2)  # 1.0 - 0.6 left: half of it
    assert entries(store)[0].by == "import"


def test_threads_racing_for_the_last_of_the_cap_never_pass_it(tmp_path: Path) -> None:
    store = AssetStore(str(tmp_path))
    cap = 0.5
    barrier = threading.Barrier(8)
    got: list[float] = []

    def spender(i: int) -> None:
        mine = account(store, f"run-{i}", Caps(period="day", period_usd=cap))
        barrier.wait()  # every one reads the same empty ledger, then writes
        for _ in range(10):
            before = mine.claimed
            got.append(mine.claim(before + 0.02, before + 0.1, 0.0) - before)

    threads = [threading.Thread(target=spender, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    state = replay(entries(store), cap)
    # Nearly all of it was claimed, and every grant a spender was told of is in the log.
    assert cap - 0.02 < state.period_total(DAY, "day") <= cap + 1e-9
    assert sum(got) == pytest.approx(state.period_total(DAY, "day"), abs=1e-12)


def _hammer(url: str, options: dict, name: str, rounds: int, cap: float, start, results) -> None:
    """One process: claim, spend part of it, claim again...; then close. Reports its figures."""
    store = AssetStore(url, options)
    mine = LedgerAccount(store, name, "run", STARTED, Caps(period="day", period_usd=cap))
    rng = random.Random(name)
    spent = 0.0
    start.wait()
    for _ in range(rounds):
        total = mine.claim(spent + rng.uniform(0.001, 0.01), spent + 0.02, spent)
        spent += rng.uniform(0, total - spent)
    mine.close(spent)
    results.put((name, spent, mine.ledger.writes, mine.ledger.lost))


def test_processes_hammering_the_ledger_on_s3_lose_nothing(
    s3_endpoint: str, s3_bucket: str
) -> None:
    url, options = f"{s3_bucket}/store", {"endpoint_url": s3_endpoint}
    cap, rounds, n = 0.6, 25, 4
    ctx = multiprocessing.get_context("spawn")
    start, queue = ctx.Barrier(n), ctx.Queue()
    procs = [
        ctx.Process(target=_hammer, args=(url, options, f"proc-{i}", rounds, cap, start, queue))
        for i in range(n)
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    store = AssetStore(url, options)
    found = entries(store)
    state = replay(found, cap)
    # Every entry a process says it wrote is in the log, and nothing else but the import.
    assert len(found) == 1 + sum(writes for _, _, writes, _ in results)
    for name, spent, writes, _ in results:
        assert sum(e.by == name for e in found) == writes
        mine = state.accounts[name]
        assert mine.closed and mine.held_usd == 0
        assert mine.spent_usd == pytest.approx(spent, abs=1e-12)
    assert state.period_total(DAY, "day") == pytest.approx(sum(r[1] for r in results))
    print("lost races:", sum(r[3] for r in results))


def test_budget_report_tells_live_ended_and_dead_spenders_apart(tmp_path: Path) -> None:
    store = AssetStore(str(tmp_path))
    now = STARTED + timedelta(minutes=10)
    ended, alive, dead = (account(store, n) for n in ("run-ended", "run-alive", "run-dead"))
    ended.claim(0.1, 0.1, 0.0)
    ended.close(0.05)
    alive.claim(0.2, 0.2, 0.0)
    dead.claim(0.3, 0.3, 0.1)
    with Heartbeat(alive, lambda: 0.15):
        beat = json.loads((tmp_path / heartbeat_path("2026-12", "run-alive")).read_text())
        beat["at"] = (now - timedelta(seconds=5)).isoformat()  # as if it beat just now
        (tmp_path / heartbeat_path("2026-12", "run-alive")).write_text(json.dumps(beat))
        (report,) = budget_report(store, "day", 1.0, now=now)
    rows = {r.id: r for r in report.accounts}
    assert rows["run-ended"].state == "ended" and rows["run-ended"].held_usd == 0
    assert rows["run-alive"].state == "alive"
    assert (rows["run-alive"].spent_usd, rows["run-alive"].held_usd) == (0.15, 0.05)
    assert rows["run-dead"].state == "died" and rows["run-dead"].held_usd == pytest.approx(0.2)
    assert report.died_holding_usd == pytest.approx(0.2)
    assert report.held_usd == pytest.approx(0.05)
    assert report.left_usd == pytest.approx(1.0 - 0.05 - 0.2 - 0.3)
    # The heartbeat file goes when the spender ends.
    assert not (tmp_path / heartbeat_path("2026-12", "run-alive")).exists()


def test_account_ids_cannot_leave_the_ledger_folder() -> None:
    for bad in ("../x", "a/b", "", ".hidden", "a..b"):
        with pytest.raises(ValueError):
            Account(
                id=bad,
                kind="run",
                group="g",
                day=DAY,
                opened_at=STARTED,
                updated_at=STARTED,
            )
    assert month_of(DAY) == "2026-12"
