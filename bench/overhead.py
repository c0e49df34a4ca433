"""Orchestration overhead: CPU seconds per image of a whole `assetgen run` process.

    python bench/overhead.py [--jobs 10000] [--quick]

The Images API test server answers at once with no rate limit; renditions are
off, so what is left is our own work per image: Prefect flow and tasks, plan,
dispatch, limiter, budget, the SDK and HTTP, decoding and checking each image,
writing it with its sidecar, the catalog. Each run is a subprocess

    assetgen run MANIFEST -c CONFIG --provider openai --store TMP --ipm 10000000 --json

with PREFECT_API_URL unset (assetgen starts a local Prefect server) and a fresh
PREFECT_HOME. CPU is user+sys of that subprocess and of every process it
waited for (os.wait4): the assetgen process with all its threads, and the
local Prefect API server, which it runs as a subprocess and reaps at exit
(its share is also sampled from /proc, for the table). The test
server runs in this process and its CPU is not counted (it serves a cached
image, so it does little anyway). Runs go side by side in two waves, to fit a
2-core machine's minute; each run's CPU is its own.

Fixed start-up (imports, Prefect's server start and database) is measured with
a 1-row manifest and taken off: marginal = (cpu(N) - cpu(1)) / (N - 1).
The baseline sends the same jobs with a bare SDK loop in a subprocess (asyncio,
AsyncOpenAI(max_retries=0), a semaphore, images.generate, base64-decode, write
the file), measured the same way. Last line: marginal ms per image at the
largest N.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakes.images_api import FakeOpenAI

ROOT = Path(__file__).resolve().parent.parent
ASSETGEN = Path(sys.executable).parent / "assetgen"
KEY = "sk-bench-overhead"
SIZE, QUALITY, FORMAT = "1024x1024", "low", "jpeg"
CONCURRENCY = 64

CONFIG = f"""\
provider: openai
renditions: []
defaults: {{size: {SIZE}, quality: {QUALITY}, output_format: {FORMAT}}}
budget: {{cap_usd: null}}
limits: {{max_attempts: 3}}
"""

BASELINE = textwrap.dedent(
    """
    import asyncio, base64, csv, os, sys
    from pathlib import Path
    import openai

    async def main(manifest, out, concurrency, size, quality, fmt):
        with open(manifest, newline="") as f:
            rows = list(csv.DictReader(f))
        client = openai.AsyncOpenAI(max_retries=0)
        gate = asyncio.Semaphore(concurrency)

        async def one(row):
            async with gate:
                r = await client.images.generate(
                    model="gpt-image-2", prompt=row["prompt"], size=size, quality=quality,
                    output_format=fmt,
                )
                data = base64.b64decode(r.data[0].b64_json)
                Path(out, row["id"] + "." + fmt).write_bytes(data)

        await asyncio.gather(*(one(row) for row in rows))
        await client.close()

    manifest, out, concurrency, size, quality, fmt = sys.argv[1:]
    asyncio.run(main(manifest, out, int(concurrency), size, quality, fmt))
    """
)


def write_manifest(path: Path, n: int, tag: str) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "prompt"])
        for i in range(n):
            w.writerow([f"{tag}-{i}", f"overhead {tag} image {i}: a ceramic mug on an oak desk"])
    return path


class Child:
    """A subprocess whose CPU is read from os.wait4 (its own, and what it reaped).

    While it runs, its descendants' CPU is sampled from /proc (Linux), to tell
    the local Prefect server apart; the last sample before that server stops
    is a slight underestimate.
    """

    def __init__(self, name: str, n: int, cmd: list[str], env: dict[str, str], work: Path):
        self.name, self.n, self.work = name, n, work
        self.out = (work / "stdout").open("w+")
        self.err = (work / "stderr").open("w+")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.out, stderr=self.err, cwd=ROOT)
        self.cpu: float | None = None
        self.wall = 0.0
        self._server_ticks: dict[int, int] = {}

    def poll(self) -> bool:
        """True once it has exited (and been reaped here)."""
        if self.cpu is not None:
            return True
        self._sample_server()
        pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
        if pid == 0:
            return False
        self.wall = time.monotonic() - self.started
        self.cpu = usage.ru_utime + usage.ru_stime
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.out.seek(0)
        self.err.seek(0)
        if self.proc.returncode != 0:
            sys.exit(
                f"{self.name} {self.n} exited {self.proc.returncode}:\n"
                f"{self.out.read()[-2000:]}{self.err.read()[-4000:]}"
            )
        return True

    @property
    def server_cpu(self) -> float | None:
        """CPU seconds of the local Prefect server, sampled; None where /proc is not there."""
        if not Path("/proc/self/stat").exists():
            return None
        return sum(self._server_ticks.values()) / os.sysconf("SC_CLK_TCK")

    def _sample_server(self) -> None:
        try:
            tasks = Path(f"/proc/{self.proc.pid}/task").iterdir()
            kids = {int(p) for t in tasks for p in (t / "children").read_text().split()}
            for kid in kids:
                command = Path(f"/proc/{kid}/cmdline").read_bytes()
                if b"prefect.server" not in command and b"local_server" not in command:
                    continue
                fields = Path(f"/proc/{kid}/stat").read_text().rsplit(")", 1)[1].split()
                self._server_ticks[kid] = int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, ValueError, IndexError):
            pass  # not Linux, or a process came and went between reads


def run_all(children: list[Child]) -> None:
    while not all([c.poll() for c in children]):
        time.sleep(0.2)


def child_env(fake: FakeOpenAI, prefect_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "OPENAI_"))}
    env |= {
        "OPENAI_API_KEY": KEY,
        "OPENAI_BASE_URL": fake.base_url,
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # Its start is CPU-bound: allow for runs side by side on a busy machine.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    }
    return env


def start_assetgen(fake: FakeOpenAI, tmp: Path, n: int) -> Child:
    work = Path(tempfile.mkdtemp(prefix=f"run{n}-", dir=tmp))
    manifest = write_manifest(work / "manifest.csv", n, f"a{n}")
    config = work / "config.yaml"
    config.write_text(CONFIG)
    cmd = [str(ASSETGEN), "run", str(manifest), "-c", str(config), "--provider", "openai"]
    cmd += ["--store", str(work / "store"), "--ipm", "10000000", "--json"]
    return Child("assetgen", n, cmd, child_env(fake, work / "prefect"), work)


def start_baseline(fake: FakeOpenAI, tmp: Path, n: int) -> Child:
    work = Path(tempfile.mkdtemp(prefix=f"sdk{n}-", dir=tmp))
    manifest = write_manifest(work / "manifest.csv", n, f"b{n}")
    (work / "out").mkdir()
    script = work / "sdk_loop.py"
    script.write_text(BASELINE)
    cmd = [sys.executable, str(script), str(manifest), str(work / "out")]
    cmd += [str(CONCURRENCY), SIZE, QUALITY, FORMAT]
    return Child("sdk-loop", n, cmd, child_env(fake, work / "prefect"), work)


def check(child: Child) -> None:
    """Every job made its image."""
    if child.name == "assetgen":
        summary = json.loads(child.out.read().strip().splitlines()[-1])
        made = summary["generated"]
    else:
        made = len(list((child.work / "out").iterdir()))
    if made != child.n:
        sys.exit(f"{child.name} of {child.n} jobs made {made} images")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=10_000, help="the largest run")
    ap.add_argument("--quick", action="store_true", help="1,000 jobs only")
    args = ap.parse_args()
    sizes = [1000] if args.quick else sorted({1000, args.jobs})

    # Runs go side by side, in two waves (a 2-core machine stays busy); each
    # one's CPU is its own, whatever runs beside it.
    waves = [[1, sizes[0]], sizes[1:]]
    runs: dict[str, dict[int, Child]] = {"assetgen": {}, "sdk-loop": {}}
    with tempfile.TemporaryDirectory() as t, FakeOpenAI(api_key=KEY, latency_s=0) as fake:
        tmp = Path(t)
        for wave in waves:
            children = [
                start(fake, tmp, n) for n in wave for start in (start_assetgen, start_baseline)
            ]
            run_all(children)
            for child in children:
                check(child)
                runs[child.name][child.n] = child

    def marginal(name: str, n: int) -> float:
        by_n = runs[name]
        return (by_n[n].cpu - by_n[1].cpu) / (n - 1) * 1000

    print(
        f"CPU (user+sys) per subprocess, with what it reaped; test server at zero latency, "
        f"no rate limit; {SIZE} {QUALITY} {FORMAT}; renditions off"
    )
    print(
        f"{'run':9} {'jobs':>7} {'cpu s':>7} {'prefect server s':>17} {'wall s':>7} "
        f"{'raw ms/img':>11} {'marginal ms/img':>16}"
    )
    for name, by_n in runs.items():
        for n, c in sorted(by_n.items()):
            server = "" if name != "assetgen" or c.server_cpu is None else f"{c.server_cpu:.2f}"
            marg = f"{marginal(name, n):16.2f}" if n > 1 else f"{'(start-up)':>16}"
            print(
                f"{name:9} {n:7,} {c.cpu:7.2f} {server:>17} {c.wall:7.1f} "
                f"{c.cpu / n * 1000:11.2f} {marg}"
            )
    top = max(sizes)
    ours, sdk = marginal("assetgen", top), marginal("sdk-loop", top)
    print(
        "assetgen: the `assetgen run` process, all its threads (Prefect flow and tasks, plan, "
        "dispatch, SDK and HTTP, image checks, store writes, catalog), and Prefect's temporary "
        "API server, a subprocess it starts and reaps (sampled from /proc, a lower bound); "
        "a new PREFECT_HOME each run, so start-up includes creating Prefect's database"
    )
    print(
        f"sdk-loop: asyncio + AsyncOpenAI(max_retries=0) + a semaphore of {CONCURRENCY}, "
        "images.generate, base64-decode, write the file; no checks, no sidecar, no fsync"
    )
    print("not counted: the test server (this process), which serves one cached image")
    if len(sizes) > 1:
        low = marginal("assetgen", min(sizes))
        print(f"growth per image {min(sizes):,} -> {top:,}: x{ours / low:.2f} (goal <= 1.1)")
    print(f"assetgen over the SDK loop at {top:,}: +{ours - sdk:.2f} ms/image")
    print(f"overhead_ms_per_image: {ours:.2f}")


if __name__ == "__main__":
    main()
