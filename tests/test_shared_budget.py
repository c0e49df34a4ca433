"""One period cap for every run into a store, however many spend at once: by the server's bill.

Runs are real `assetgen` processes sending real SDK requests to the test
server; every figure checked is what the server billed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from assetgen.flows.cli.app import app
from tests.conftest import FAKE_KEY
from tests.fakes.images_api import FakeOpenAI
from tests.processes import descendants, still_running

CAP = 0.30  # a medium 1024x1024 image is ~$0.053: five fit, six do not
CLI = str(Path(sys.executable).parent / "assetgen")


def _config(tmp_path: Path, cap: float = CAP) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(
        f"store: {tmp_path / 'store'}\n"
        "provider: openai\n"
        f"budget: {{cap_usd: null, period: day, period_cap_usd: {cap}}}\n"
        "batch: {poll_s: 0.01}\n"
    )
    return path


def _manifest(tmp_path: Path, tag: str, rows: int = 10) -> Path:
    path = tmp_path / f"{tag}.csv"
    path.write_text("id,prompt\n" + "".join(f"{tag}{i},{tag} image {i}\n" for i in range(rows)))
    return path


def _env(fake: FakeOpenAI, api_url: str | None) -> dict[str, str]:
    env = {**os.environ, "OPENAI_API_KEY": FAKE_KEY, "OPENAI_BASE_URL": fake.base_url}
    env.pop("PREFECT_API_URL", None)
    if api_url:
        env["PREFECT_API_URL"] = api_url  # the session's server: no start-up per run
    return env


def _start(
    manifest: Path, config: Path, env: dict[str, str], *extra: str, ipm: int = 600
) -> subprocess.Popen[str]:
    cmd = [CLI, "run", str(manifest), "-c", str(config), "--ipm", str(ipm), "--json", *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode in (0, 1), err[-3000:]
    return json.loads(out)


def _budget(config: Path, day: str | None = None) -> dict[str, Any]:
    """`assetgen budget --json` for `day` (default: today, UTC)."""
    since = ["--since", day] if day else []
    result = CliRunner().invoke(app, ["budget", "-c", str(config), *since, "--json"])
    assert result.exit_code == 0, result.output
    periods = json.loads(result.stdout)["periods"]
    return periods[0] if day else periods[-1]


def _one_day(*summaries: dict[str, Any]) -> str:
    """The UTC day the runs count in; a test whose runs straddle midnight is void."""
    days = {s["period"]["key"] for s in summaries}
    if len(days) > 1:
        pytest.skip(f"the runs started on either side of midnight UTC ({sorted(days)})")
    return days.pop()


def _billed(fake: FakeOpenAI, tag: str) -> float:
    return sum(r.billed_usd for r in fake.requests if r.prompt.startswith(tag))


def _wait_for(condition, timeout: float, *procs: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        for proc in procs:
            assert proc.poll() is None, proc.stderr.read()[-3000:] if proc.stderr else ""
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_a_second_run_started_while_the_first_spends_stays_within_the_cap(
    fake: FakeOpenAI, prefect_api_url: str, tmp_path: Path
) -> None:
    fake.latency_s = 0.5
    config, env = _config(tmp_path), _env(fake, prefect_api_url)
    first = _start(_manifest(tmp_path, "A"), config, env, ipm=60)
    _wait_for(lambda: fake.images_billed >= 1, 120, first)
    second = _start(_manifest(tmp_path, "B"), config, env, ipm=60)
    a, b = _finish(first), _finish(second)
    day = _one_day(a, b)

    assert fake.billed_usd <= CAP + 1e-9
    assert a["cost_usd"] + b["cost_usd"] == pytest.approx(fake.billed_usd, abs=1e-6)
    assert a["generated"] + b["generated"] == fake.images_billed == 5
    assert a["budget_exhausted"] + b["budget_exhausted"] == 20 - 5
    # The second saw what the first had spent or held when it started.
    assert b["period"]["spent_before_usd"] > 0
    period = _budget(config, day)
    assert period["spent_usd"] == pytest.approx(fake.billed_usd, abs=1e-6)
    assert period["held_usd"] == 0 and period["died_holding_usd"] == 0
    assert period["left_usd"] == pytest.approx(CAP - fake.billed_usd, abs=1e-6)
    assert {r["state"] for r in period["accounts"]} == {"ended"}


@pytest.mark.parametrize("runs", [2, pytest.param(4, marks=pytest.mark.slow)])
def test_runs_started_at_the_same_instant_share_one_cap(
    fake: FakeOpenAI, prefect_api_url: str, tmp_path: Path, runs: int
) -> None:
    fake.latency_s = 1.0
    config, env = _config(tmp_path), _env(fake, prefect_api_url)
    # Slow enough (an image every 2 s per run) that the runs spend at the same time.
    procs = [
        _start(_manifest(tmp_path, f"R{i}x", rows=6), config, env, ipm=30) for i in range(runs)
    ]
    summaries = [_finish(p) for p in procs]
    day = _one_day(*summaries)

    assert fake.billed_usd <= CAP + 1e-9
    assert sum(s["generated"] for s in summaries) == fake.images_billed
    # A run that finds too little left gives up its jobs; what it held goes back, so at
    # most one image's worth per run is left unspent (five fit the cap).
    assert fake.images_billed >= 5 - (runs - 1)
    assert sum(s["cost_usd"] for s in summaries) == pytest.approx(fake.billed_usd, abs=1e-6)
    period = _budget(config, day)
    assert period["spent_usd"] == pytest.approx(fake.billed_usd, abs=1e-6)
    assert period["held_usd"] == 0 and {a["state"] for a in period["accounts"]} == {"ended"}


def test_a_run_cap_and_the_period_cap_hold_together(
    fake: FakeOpenAI, prefect_api_url: str, tmp_path: Path
) -> None:
    fake.latency_s = 0.2
    config, env = _config(tmp_path), _env(fake, prefect_api_url)
    capped = _start(_manifest(tmp_path, "C"), config, env, "--budget", "0.11")
    free = _start(_manifest(tmp_path, "F"), config, env)
    c, f = _finish(capped), _finish(free)
    _one_day(c, f)

    assert _billed(fake, "C") <= 0.11 + 1e-9  # two images, not three
    assert c["generated"] <= 2 and c["budget_usd"] == 0.11
    assert fake.billed_usd <= CAP + 1e-9
    assert c["generated"] + f["generated"] == fake.images_billed == 5


def test_a_batch_submit_and_an_online_run_share_one_cap(
    fake: FakeOpenAI, prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    config = _config(tmp_path)
    runner = CliRunner()
    fake.hold_batches = True
    batch_manifest = str(_manifest(tmp_path, "S", rows=4))
    submitted = runner.invoke(
        app, ["run", batch_manifest, "-c", str(config), "--mode", "batch", "--json"]
    )
    assert submitted.exit_code == 0, submitted.output
    sub = json.loads(submitted.stdout)
    held = sub["batch_reserved_usd"]
    assert held > 0 and _budget(config, sub["period"]["key"])["held_usd"] == pytest.approx(held)

    online = runner.invoke(
        app, ["run", str(_manifest(tmp_path, "O")), "-c", str(config), "--ipm", "600", "--json"]
    )
    o = json.loads(online.stdout)
    day = _one_day(sub, o)
    assert o["period"]["spent_before_usd"] == pytest.approx(held)
    assert _billed(fake, "O") <= CAP - held + 1e-9 and o["budget_exhausted"] > 0

    fake.hold_batches = False
    collected = runner.invoke(app, ["collect", "-c", str(config), "--wait", "--json"])
    assert collected.exit_code == 0, collected.output
    assert fake.billed_usd <= CAP + 1e-9
    period = _budget(config, day)
    assert period["spent_usd"] == pytest.approx(fake.billed_usd, abs=1e-6)
    assert period["held_usd"] == 0
    states = {r["kind"]: r["state"] for r in period["accounts"]}
    assert states == {"run": "ended", "batch": "collected"}


def test_a_run_killed_holding_a_claim_never_lets_the_period_overspend(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    fake.latency_s = 2.0
    config = _config(tmp_path)
    # Its own local Prefect server, as a user's run has: it must die with the run.
    env = {**_env(fake, None), "PREFECT_HOME": str(tmp_path / "prefect")}
    day = f"{datetime.now(UTC):%Y-%m-%d}"
    killed = _start(_manifest(tmp_path, "K"), config, env, ipm=120)
    _wait_for(lambda: fake.images_billed >= 1, 120, killed)
    started = descendants(killed.pid)
    assert started  # the Prefect server and the rendition workers
    killed.send_signal(signal.SIGKILL)
    killed.wait(30)
    assert not still_running(started, within_s=10)
    deadline = time.monotonic() + 30  # what the killed run left in flight still bills
    while any(r.status == 0 for r in fake.requests):
        assert time.monotonic() < deadline
        time.sleep(0.05)

    period = _budget(config, day)
    (dead,) = period["accounts"]
    assert dead["state"] == "died" and dead["held_usd"] > 0
    assert period["died_holding_usd"] == dead["held_usd"]

    later = _finish(_start(_manifest(tmp_path, "L"), config, env))
    if later["period"]["key"] != day:
        pytest.skip(f"the runs started on either side of midnight UTC ({day})")
    assert later["period"]["spent_before_usd"] == pytest.approx(
        dead["spent_usd"] + dead["held_usd"], abs=1e-6
    )
    assert fake.billed_usd <= CAP + 1e-9
