"""The catalog as a Delta table: concurrent writers on S3, a writer killed mid-commit,
migration of an old Parquet-parts catalog, time travel, and what vacuum keeps.

Child processes run `child_main` of this module (see `_spawn`); an HTTP proxy in
front of the moto server (`S3Proxy`) holds or cuts requests at exact points of a
commit, so the races and the kill below happen the same way on every run.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import fsspec
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pa_fs
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from typer.testing import CliRunner, Result

from assetgen.flows.cli.app import app
from assetgen.tasks.catalog import table as cat
from assetgen.tasks.catalog.location import CATALOG, RUN_KEY
from assetgen.tasks.catalog.rows import SCHEMA
from assetgen.tasks.store.assets import AssetStore

REPO = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 3, 1, tzinfo=UTC)
CHILD_TIMEOUT_S = 120
COMMIT_PUT = re.compile(r"/_delta_log/(\d{20})\.json$")


# --- rows, stores, commands --------------------------------------------------------------------


def make_row(asset_id: str, run_id: str = "run", **over: Any) -> dict[str, Any]:
    """A catalog row as a run records it (columns left out are null)."""
    base: dict[str, Any] = {
        "asset_id": asset_id,
        "row_id": f"sku-{asset_id}",
        "row": 1,
        "variant": 0,
        "partition": {"campaign": "spring"},
        "status": "generated",
        "model": "gpt-image-2",
        "prompt": f"a photo of {asset_id} ({run_id})",
        "size": "1024x1024",
        "quality": "low",
        "output_format": "png",
        "attempts": 1,
        "latency_s": 0.5,
        "output_tokens": 196,
        "cost_usd": 0.006,
        "run_id": run_id,
        "created_at": T0,
        "recorded_at": T0,
        "original_uri": f"file:///store/campaign=spring/{asset_id}/original.png",
        "original_bytes": 1234,
        "renditions": [],
        "metadata": json.dumps({"product": asset_id}),
    }
    return base | over


def s3_options(endpoint: str) -> dict[str, str]:
    """What any Delta reader needs to open a table on the moto server (no assetgen)."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ALLOW_HTTP": "true",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }


def delta(store: AssetStore, endpoint: str | None = None) -> DeltaTable:
    """The catalog opened by deltalake alone, not through assetgen."""
    if store.is_local:
        return DeltaTable(store.path(CATALOG))
    assert endpoint
    return DeltaTable(f"s3://{store.path(CATALOG)}", storage_options=s3_options(endpoint))


def delta_rows(table: DeltaTable) -> list[dict[str, Any]]:
    """Every row of the table's files (file_uris and pyarrow, not to_pyarrow_dataset,
    which can abort the process at exit)."""
    files = table.file_uris()
    if not files:
        return []
    if files[0].startswith("s3://"):
        fs = fsspec.filesystem("s3")
        fs.invalidate_cache()  # a listing cached earlier would hide files written since
        handler = pa_fs.PyFileSystem(pa_fs.FSSpecHandler(fs))
        dataset = ds.dataset([f[5:] for f in files], format="parquet", filesystem=handler)
    else:
        dataset = ds.dataset(files, format="parquet")
    return dataset.to_table().to_pylist()


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "1000"})


def json_lines(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found = {r["asset_id"]: r for r in rows}
    assert len(found) == len(rows), Counter(r["asset_id"] for r in rows).most_common(3)
    return found


def as_json(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows as `catalog list --format json` writes them."""
    return [json.loads(json.dumps(r, default=str)) for r in rows]


def assert_clean_error(result: Result, *needles: str) -> None:
    """Exit code 2 and one `error:` line: no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output, result.output
    err = " ".join(result.stderr.split())
    assert err.startswith("error:"), result.stderr
    for needle in needles:
        assert needle in err, result.stderr


# --- child processes ---------------------------------------------------------------------------


def _spawn(spec: dict[str, Any], **popen: Any) -> subprocess.Popen[str]:
    """A python process running child_main(spec), from the repository root."""
    code = (
        "import json, sys; from tests.test_catalog_delta import child_main; "
        "child_main(json.loads(sys.argv[1]))"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, json.dumps(spec)],
        cwd=REPO,
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **popen,
    )


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test starts; any still running at its end are killed (by pid)."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(Exception):
            proc.communicate(timeout=10)


def big_rows(n: int, run_id: str) -> list[dict[str, Any]]:
    return [
        make_row(f"big{i:05d}", run_id, row_id=f"big-{i}", row=i, prompt="x" * 300)
        for i in range(n)
    ]


def child_main(spec: dict[str, Any]) -> None:
    """The entry point of a child process (see _spawn)."""
    if spec.get("endpoint"):
        fsspec.config.conf["s3"] = {"endpoint_url": spec["endpoint"]}
    store = AssetStore(spec["store"])
    action = spec["action"]
    if action == "batches":
        _child_batches(store, spec)
    elif action == "big_commit":
        _child_big_commit(store, spec)
    elif action == "migrate":
        from assetgen.tasks.catalog.migrate import migrate

        print("ready", flush=True)
        assert sys.stdin.readline().strip() == "go"
        print(json.dumps({"assets": migrate(store)}), flush=True)
    elif action == "writer_flush":
        from assetgen.tasks.catalog.writer import CatalogWriter

        writer = CatalogWriter(store, spec["run_id"])
        for row in big_rows(spec["rows"], spec["run_id"]):
            writer.add(row)
        writer.flush()
        print(json.dumps({"rows_written": writer.rows_written, "errors": writer.errors}))
    else:
        raise SystemExit(f"unknown action {action!r}")


def _shared(a: int, b: int, batch: int) -> str:
    return f"pair{min(a, b)}{max(a, b)}x{batch}"


def _others(me: int, spec: dict[str, Any]) -> list[int]:
    return [other for other in range(spec["processes"]) if other != me]


def _child_batches(store: AssetStore, spec: dict[str, Any]) -> None:
    """Commit `batches` batches of this process's own assets, plus one asset shared with each
    other process; start when the parent says go."""
    me, run_id = spec["me"], f"run-{spec['me']}"
    print("ready", flush=True)
    assert sys.stdin.readline().strip() == "go"
    for batch in range(spec["batches"]):
        rows = [
            make_row(f"p{me}b{batch}n{n}", run_id, row=n, created_at=T0 + timedelta(seconds=n))
            for n in range(spec["per_batch"])
        ]
        # One asset shared with each other process: every two processes upsert one together.
        rows += [make_row(_shared(me, other, batch), run_id) for other in _others(me, spec)]
        cat.commit(store, rows, run_id)
    print("done", flush=True)


def _child_big_commit(store: AssetStore, spec: dict[str, Any]) -> None:
    """A large commit whose MERGE source is streamed; the process SIGKILLs itself while the
    merge is reading it (after most of the source, before any commit can have happened)."""
    real = cat._merge

    def merge(table: DeltaTable, source: pa.Table, scope: set[str], properties: Any) -> None:
        batches = source.to_batches(max_chunksize=max(1, source.num_rows // 5))

        def stream() -> Iterator[pa.RecordBatch]:
            for i, batch in enumerate(batches):
                if i == len(batches) - 1:
                    Path(spec["marker"]).write_text("merging")
                    os.kill(os.getpid(), signal.SIGKILL)
                yield batch

        reader = pa.RecordBatchReader.from_batches(source.schema, stream())
        real(table, reader, scope, properties)

    cat._merge = merge  # type: ignore[assignment]  # this child process only
    cat.commit(store, big_rows(spec["rows"], spec["run_id"]), spec["run_id"], ("bulk", 1))
    print("committed", flush=True)  # never reached


# --- an S3 proxy that holds or cuts requests -----------------------------------------------------

HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "expect", "te"}


class S3Proxy:
    """HTTP in front of the moto server; `hook(method, path)` runs before each request is
    passed on and may block, or return "drop" to answer 503 without passing it on."""

    def __init__(self, upstream: str, hook: Callable[[str, str], str | None]) -> None:
        self.upstream = urlsplit(upstream)
        self.hook = hook
        self.seen: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while size := int(self.rfile.readline().split(b";")[0], 16):
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _any(self) -> None:
                body = self._body()
                with proxy._lock:
                    proxy.seen.append((self.command, self.path))
                if proxy.hook(self.command, self.path) == "drop":
                    self.send_response_only(503)
                    self.send_header("Content-Length", "0")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.close_connection = True
                    return
                up = proxy.upstream
                conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for key, value in self.headers.items():
                    if key.lower() not in HOP and key.lower() != "content-length":
                        conn.putheader(key, value)
                if body or self.command in ("PUT", "POST"):
                    conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body or None)
                response = conn.getresponse()
                data = response.read()
                self.send_response_only(response.status, response.reason)
                for key, value in response.getheaders():
                    if key.lower() not in HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                if self.command == "HEAD":
                    self.send_header("Content-Length", response.getheader("Content-Length", "0"))
                else:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # A client killed mid-request (on purpose) is no error worth a traceback.
        self.server.handle_error = lambda request, address: None  # type: ignore[method-assign]
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def s3_proxy(upstream: str, hook: Callable[[str, str], str | None]) -> Iterator[S3Proxy]:
    proxy = S3Proxy(upstream, hook)
    try:
        yield proxy
    finally:
        proxy.close()


# --- 1. concurrent writers on S3 ---------------------------------------------------------------

PROCESSES = 4
BATCHES = 3
PER_BATCH = 10


def _run_batches(
    children: list[subprocess.Popen[str]], endpoint: str, store_url: str
) -> list[tuple[str, str]]:
    """PROCESSES children committing BATCHES batches each, all started at once."""
    for me in range(PROCESSES):
        spec = {
            "action": "batches",
            "endpoint": endpoint,
            "store": store_url,
            "me": me,
            "batches": BATCHES,
            "per_batch": PER_BATCH,
            "processes": PROCESSES,
        }
        children.append(_spawn(spec))
    _start_together(children)
    outputs = [proc.communicate(timeout=CHILD_TIMEOUT_S) for proc in children]
    for proc, (out, err) in zip(children, outputs, strict=True):
        assert proc.returncode == 0, err[-3000:]
        assert out.strip() == "done", out
    return outputs


def _expected_assets() -> dict[str, set[str]]:
    """asset_id -> the runs that may have written it last."""
    expected: dict[str, set[str]] = {}
    for me in range(PROCESSES):
        for batch in range(BATCHES):
            for n in range(PER_BATCH):
                expected[f"p{me}b{batch}n{n}"] = {f"run-{me}"}
            for other in range(PROCESSES):
                if other != me:
                    expected.setdefault(_shared(me, other, batch), set()).add(f"run-{me}")
    return expected


def _check_concurrent_result(store: AssetStore, endpoint: str, seeded: set[str]) -> None:
    table = delta(store, endpoint)
    rows = delta_rows(table)
    counts = Counter(r["asset_id"] for r in rows)
    duplicated = {a: c for a, c in counts.items() if c > 1}
    assert not duplicated, f"more than one row for {duplicated}"
    expected = _expected_assets()
    assert set(counts) == set(expected) | seeded, (
        f"lost: {sorted(set(expected) - set(counts))[:10]}"
    )
    for row in rows:
        if row["asset_id"] in expected:
            assert row["run_id"] in expected[row["asset_id"]]
            assert row["prompt"] == f"a photo of {row['asset_id']} ({row['run_id']})"
    # Every commit is a version of its own: none lost to a commit race, none doubled.
    history = table.history()
    ours = [h for h in history if str(h.get(RUN_KEY)).startswith("run-")]
    runs = Counter(h[RUN_KEY] for h in ours)
    assert runs == {f"run-{me}": BATCHES for me in range(PROCESSES)}, runs
    others = [h for h in history if h not in ours]  # the seed, or an empty table's creation
    assert all(h.get(RUN_KEY) == "seed" or h["operation"] == "CREATE TABLE" for h in others), [
        (h["version"], h["operation"], h.get(RUN_KEY)) for h in others
    ]
    assert sorted(h["version"] for h in history) == list(range(len(history)))
    # assetgen reads the same.
    assert sorted(cat.read_catalog(store)["asset_id"].to_pylist()) == sorted(counts)


@pytest.mark.slow
def test_four_processes_commit_to_one_s3_table_at_once(
    s3_endpoint: str, s3_bucket: str, children: list[subprocess.Popen[str]]
) -> None:
    store_url = f"{s3_bucket}/store"
    store = AssetStore(store_url)
    cat.commit(store, [make_row("seed0", "seed")], "seed")  # the table exists: version 0
    _run_batches(children, s3_endpoint, store_url)
    _check_concurrent_result(store, s3_endpoint, {"seed0"})
    assert len(delta(store, s3_endpoint).history()) == 1 + PROCESSES * BATCHES


@pytest.mark.slow
def test_four_processes_creating_the_table_at_once_make_one_row_per_asset(
    s3_endpoint: str, s3_bucket: str, children: list[subprocess.Popen[str]]
) -> None:
    """The first commits of a store race to create the table. The proxy holds every PUT of
    version 0 until all four processes have sent theirs (none can see a table before), so
    the race happens on every run: one creates the table, the others must merge into it."""
    store_url = f"{s3_bucket}/store"
    store = AssetStore(store_url)
    arrived = threading.Condition()
    puts: list[str] = []

    def hold_version_0(method: str, path: str) -> None:
        if method == "PUT" and path.endswith("/_delta_log/00000000000000000000.json"):
            with arrived:
                puts.append(path)
                arrived.notify_all()
                arrived.wait_for(lambda: len(puts) >= PROCESSES, timeout=20)

    with s3_proxy(s3_endpoint, hold_version_0) as proxy:
        _run_batches(children, proxy.url, store_url)
    assert len(puts) >= 2, "the creation race did not happen"
    _check_concurrent_result(store, s3_endpoint, set())


# --- 2. SIGKILL in the middle of a commit --------------------------------------------------------

BIG = 3000


def _seed_two_versions(store: AssetStore) -> list[dict[str, Any]]:
    cat.commit(store, [make_row("old1", "seed-1"), make_row("old2", "seed-1")], "seed-1")
    cat.commit(store, [make_row("old3", "seed-2"), make_row("big00007", "seed-2")], "seed-2")
    return cat.read_catalog(store).to_pylist()


def _assert_at_version_1(store: AssetStore, before: list[dict[str, Any]], table: DeltaTable):
    assert table.version() == 1
    assert [h[RUN_KEY] for h in table.history()] == ["seed-2", "seed-1"]
    assert by_id(cat.read_catalog(store).to_pylist()) == by_id(before)
    assert {r["asset_id"] for r in delta_rows(table)} == {"old1", "old2", "old3", "big00007"}


def _assert_completed(store: AssetStore, table: DeltaTable, run_id: str) -> None:
    assert table.version() == 2
    assert table.history(1)[0][RUN_KEY] == run_id
    rows = by_id(delta_rows(table))  # one row per asset
    assert set(rows) == {f"big{i:05d}" for i in range(BIG)} | {"old1", "old2", "old3"}
    assert rows["big00007"]["run_id"] == run_id  # the big commit's row won over the old one
    assert cat.read_catalog(store).num_rows == BIG + 3


def test_sigkill_during_a_large_commit_leaves_the_previous_version_and_a_rerun_completes(
    tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    store = AssetStore(str(tmp_path / "store"))
    before = _seed_two_versions(store)
    marker = tmp_path / "merging"
    spec = {
        "action": "big_commit",
        "store": store.url,
        "rows": BIG,
        "run_id": "bulk-run",
        "marker": str(marker),
    }
    children.append(proc := _spawn(spec))
    out, err = proc.communicate(timeout=CHILD_TIMEOUT_S)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, out, err[-3000:])
    assert marker.read_text() == "merging"  # killed inside the MERGE, not before it
    assert "committed" not in out

    _assert_at_version_1(store, before, delta(store))
    assert delta(store).transaction_version("bulk") is None

    # The same commit again (same rows, same application transaction) completes it.
    cat.commit(store, big_rows(BIG, "bulk-run"), "bulk-run", ("bulk", 1))
    _assert_completed(store, delta(store), "bulk-run")
    assert delta(store).transaction_version("bulk") == 1
    cat.commit(store, big_rows(BIG, "bulk-run"), "bulk-run", ("bulk", 1))  # recorded: no-op
    assert delta(store).version() == 2


WRITER_ROWS = 400  # under FLUSH_ROWS: one commit, at flush()


def test_sigkill_between_data_files_and_commit_on_s3_then_a_rerun_completes(
    s3_endpoint: str, s3_bucket: str, children: list[subprocess.Popen[str]]
) -> None:
    """A CatalogWriter flush on S3, killed the moment its commit file is about to be PUT:
    its data files are written, the log entry never lands."""
    store_url = f"{s3_bucket}/store"
    store = AssetStore(store_url)
    before = _seed_two_versions(store)
    pid_known = threading.Event()
    child: list[subprocess.Popen[str]] = []
    data_puts: list[str] = []
    killed: list[str] = []

    def kill_at_commit(method: str, path: str) -> str | None:
        if method == "PUT" and path.endswith(".parquet"):
            data_puts.append(path)
        if method == "PUT" and COMMIT_PUT.search(path):
            pid_known.wait(30)
            os.kill(child[0].pid, signal.SIGKILL)
            killed.append(path)
            return "drop"
        return None

    spec = {"action": "writer_flush", "store": store_url, "rows": WRITER_ROWS, "run_id": "w-run"}
    with s3_proxy(s3_endpoint, kill_at_commit) as proxy:
        children.append(proc := _spawn(spec | {"endpoint": proxy.url}))
        child.append(proc)
        pid_known.set()
        out, err = proc.communicate(timeout=CHILD_TIMEOUT_S)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, out, err[-3000:])
    assert killed and killed[0].endswith("/_delta_log/00000000000000000002.json"), killed
    assert data_puts, "the data files were not written before the commit"

    table = delta(store, s3_endpoint)
    _assert_at_version_1(store, before, table)
    fs = fsspec.filesystem("s3")
    fs.invalidate_cache()
    stored = {p for p in fs.ls(store.path(CATALOG), detail=False) if p.endswith(".parquet")}
    live = {u.removeprefix("s3://") for u in table.file_uris()}
    assert stored - live, "no orphan data files: the kill was not mid-commit"

    # The run again, in a new process: the flush completes.
    children.append(again := _spawn(spec | {"endpoint": s3_endpoint}))
    out, err = again.communicate(timeout=CHILD_TIMEOUT_S)
    assert again.returncode == 0, err[-3000:]
    assert json.loads(out) == {"rows_written": WRITER_ROWS, "errors": []}
    table = delta(store, s3_endpoint)
    assert table.version() == 2 and table.history(1)[0][RUN_KEY] == "w-run"
    rows = by_id(delta_rows(table))
    assert set(rows) == {f"big{i:05d}" for i in range(WRITER_ROWS)} | {"old1", "old2", "old3"}
    assert rows["big00007"]["run_id"] == "w-run"


# --- 3. migration of an old catalog --------------------------------------------------------------

LEGACY = pa.schema([f for f in SCHEMA if f.name != "superseded_by"])
NEWER_COLUMNS = ("c2pa_state", "c2pa_generator", "c2pa_signer", "c2pa_source_type")
H = timedelta(hours=1)


def legacy_parts_rows() -> list[list[dict[str, Any]]]:
    """Three parts of an old catalog: several rows per asset, recorded at different times."""
    spring, fall = {"campaign": "spring"}, {"campaign": "fall"}
    lamp = {"row_id": "lamp", "variant": 0}
    return [
        [
            make_row("a1", "r1", status="failed", error="500", recorded_at=T0),
            make_row("a2", "r1", partition=spring, created_at=T0, recorded_at=T0, **lamp),
            make_row("a4", "r1", prompt="old prompt", recorded_at=T0),
            make_row("a5", "r1", partition=fall, created_at=T0, recorded_at=T0, **lamp),
        ],
        [
            make_row("a1", "r2", recorded_at=T0 + H, c2pa_state="valid"),
            make_row("a3", "r2", partition=spring, created_at=T0 + H, recorded_at=T0 + H, **lamp),
        ],
        [make_row("a4", "r3", prompt="new prompt", recorded_at=T0 + 2 * H)],
    ]


# Names as an earlier assetgen gave them: a writer's checkpoints, and a compaction's output.
LEGACY_NAMES = (
    "part-r1-a1b2c3-00001.parquet",
    "part-r2-d4e5f6-00001.parquet",
    "compact-20260301T020000000000Z-0a0b0c.parquet",
)


def write_legacy_catalog(store: AssetStore) -> dict[str, bytes]:
    """The parts as an earlier assetgen wrote them; the first lacks the newer columns."""
    written = {}
    store.fs.makedirs(store.path(CATALOG), exist_ok=True)
    for n, (name, rows) in enumerate(zip(LEGACY_NAMES, legacy_parts_rows(), strict=True)):
        part = pa.Table.from_pylist(rows, schema=LEGACY)
        if n == 0:
            part = part.drop_columns(list(NEWER_COLUMNS))
        path = store.path(f"{CATALOG}/{name}")
        with (
            store.fs.open(path, "wb") as f,
            pq.ParquetWriter(f, part.schema, compression="zstd") as w,
        ):
            w.write_table(part)
        written[path] = store.fs.cat_file(path)
    return written


@pytest.fixture(params=["local", "s3"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> AssetStore:
    if request.param == "local":
        return AssetStore(str(tmp_path / "store"))
    return AssetStore(request.getfixturevalue("s3_bucket") + "/store")


def _parts_left(store: AssetStore) -> set[str]:
    store.fs.invalidate_cache()
    root = store.path(CATALOG)
    if not store.fs.exists(root):
        return set()
    return {p for p in store.fs.ls(root, detail=False) if p.rsplit("/", 1)[-1] in LEGACY_NAMES}


def _has_log(store: AssetStore) -> bool:
    store.fs.invalidate_cache()
    return store.fs.exists(store.path(f"{CATALOG}/_delta_log"))


@pytest.mark.parametrize("command", ["list", "migrate"])
def test_an_old_catalog_is_migrated_keeping_each_assets_newest_row(
    any_store: AssetStore, command: str, request: pytest.FixtureRequest
) -> None:
    store = any_store
    parts = write_legacy_catalog(store)
    if command == "migrate":
        done = cli("catalog", "migrate", "--store", store.url)
        assert done.exit_code == 0, done.output
        assert "migrated 3 parts" in done.stdout and "5 assets" in done.stdout
        assert "nothing to migrate" in cli("catalog", "migrate", "--store", store.url).stdout
    rows = by_id(
        json_lines(cli("catalog", "list", "--store", store.url, "--format", "json", "--versions"))
    )
    assert set(rows) == {"a1", "a2", "a3", "a4", "a5"}
    assert (rows["a1"]["status"], rows["a1"]["error"], rows["a1"]["run_id"]) == (
        "generated",
        None,
        "r2",
    )
    assert rows["a1"]["c2pa_state"] == "valid"
    assert rows["a4"]["prompt"] == "new prompt"
    assert rows["a2"]["c2pa_state"] is None  # its part had no such column
    # superseded_by worked out: a3 is the newer asset of a2's slot; a5 is another partition.
    assert {a: r["superseded_by"] for a, r in rows.items()} == {
        "a1": None,
        "a2": "a3",
        "a3": None,
        "a4": None,
        "a5": None,
    }
    current = json_lines(cli("catalog", "list", "--store", store.url, "--format", "json"))
    assert {r["asset_id"] for r in current} == {"a1", "a3", "a4", "a5"}

    assert _parts_left(store) == set() and all(not store.fs.exists(p) for p in parts)
    endpoint = None if store.is_local else request.getfixturevalue("s3_endpoint")
    table = delta(store, endpoint)
    assert table.version() == 0
    assert [(h["operation"], h[RUN_KEY]) for h in table.history()] == [("WRITE", "migrate")]
    independent = by_id(delta_rows(table))
    assert {a: r["superseded_by"] for a, r in independent.items()} == {
        a: r["superseded_by"] for a, r in rows.items()
    }


@pytest.mark.parametrize("error", [OSError("connection reset by peer"), RuntimeError("boom")])
def test_a_migration_failing_before_its_commit_leaves_the_old_parts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    store = AssetStore(str(tmp_path / "store"))
    parts = write_legacy_catalog(store)

    def failing(*args: Any, **kwargs: Any) -> None:
        raise error

    monkeypatch.setattr("assetgen.tasks.catalog.migrate.write_deltalake", failing)
    assert cli("catalog", "list", "--store", store.url, "--format", "json").exit_code != 0
    with pytest.raises(type(error)):
        cat.migrate(store)
    assert {p: store.fs.cat_file(p) for p in _parts_left(store)} == parts
    assert not _has_log(store)

    monkeypatch.undo()
    rows = by_id(json_lines(cli("catalog", "list", "--store", store.url, "--format", "json")))
    assert set(rows) == {"a1", "a3", "a4", "a5"}
    assert _parts_left(store) == set() and _has_log(store)


def _start_together(children: list[subprocess.Popen[str]]) -> None:
    """A barrier: every child has started and says ready; then all are told to go."""
    for proc in children:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    for proc in children:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()


def test_two_processes_migrating_one_old_s3_catalog_at_once_make_one_table(
    s3_endpoint: str, s3_bucket: str, children: list[subprocess.Popen[str]]
) -> None:
    """Two commands on one old store migrate it at once (migrate.py: "another process
    migrating at the same time: let it"). The proxy holds each PUT of version 0 until both
    have sent theirs, so both have found no table and both try to create it."""
    store = AssetStore(f"{s3_bucket}/store")
    write_legacy_catalog(store)
    arrived = threading.Condition()
    puts: list[str] = []

    def hold_version_0(method: str, path: str) -> None:
        if method == "PUT" and path.endswith("/_delta_log/00000000000000000000.json"):
            with arrived:
                puts.append(path)
                arrived.notify_all()
                arrived.wait_for(lambda: len(puts) >= 2, timeout=20)

    with s3_proxy(s3_endpoint, hold_version_0) as proxy:
        spec = {"action": "migrate", "store": store.url, "endpoint": proxy.url}
        children.extend([_spawn(spec), _spawn(spec)])
        _start_together(children)
        outputs = [proc.communicate(timeout=CHILD_TIMEOUT_S) for proc in children]
    assert len(puts) == 2, "the race did not happen"
    for proc, (_, err) in zip(children, outputs, strict=True):
        assert proc.returncode == 0, err[-3000:]
    table = delta(store, s3_endpoint)
    rows = delta_rows(table)
    assert Counter(r["asset_id"] for r in rows) == dict.fromkeys(["a1", "a2", "a3", "a4", "a5"], 1)
    assert _parts_left(store) == set()


def test_a_failed_migration_is_a_clean_cli_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = AssetStore(str(tmp_path / "store"))
    write_legacy_catalog(store)

    def failing(*args: Any, **kwargs: Any) -> None:
        raise OSError("connection reset by peer")

    monkeypatch.setattr("assetgen.tasks.catalog.migrate.write_deltalake", failing)
    assert_clean_error(cli("catalog", "list", "--store", store.url), "connection reset")


# --- 4. time travel ------------------------------------------------------------------------------


@pytest.fixture
def three_versions(tmp_path: Path) -> AssetStore:
    """v0: a b c; v1: d e new, a changed; v2: b2 takes b's slot (b superseded)."""
    store = AssetStore(str(tmp_path / "store"))
    lamp = {"row_id": "lamp", "variant": 0}
    cat.commit(
        store,
        [make_row("a", "run-1", prompt="a v1"), make_row("b", "run-1", **lamp), make_row("c")],
        "run-1",
    )
    cat.commit(
        store,
        [make_row("d"), make_row("e"), make_row("a", "run-2", prompt="a v2")],
        "run-2",
    )
    cat.commit(store, [make_row("b2", "run-3", created_at=T0 + H, **lamp)], "run-3")
    return store


def listed(store: AssetStore, *extra: str) -> dict[str, dict[str, Any]]:
    args = ("catalog", "list", "--store", store.url, "--format", "json", *extra)
    return by_id(json_lines(cli(*args)))


def test_list_show_export_as_of_a_version(three_versions: AssetStore, tmp_path: Path) -> None:
    store = three_versions
    v0 = listed(store, "--as-of", "0")
    assert set(v0) == {"a", "b", "c"} and v0["a"]["prompt"] == "a v1"
    v1 = listed(store, "--as-of", "1")
    assert set(v1) == {"a", "b", "c", "d", "e"} and v1["a"]["prompt"] == "a v2"
    assert v1["b"]["superseded_by"] is None
    assert set(listed(store, "--as-of", "2")) == {"a", "c", "d", "e", "b2"}
    assert listed(store, "--as-of", "2", "--versions")["b"]["superseded_by"] == "b2"
    assert listed(store) == listed(store, "--as-of", "2")

    shown = cli("catalog", "show", "a", "--store", store.url, "--as-of", "0")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["prompt"] == "a v1"
    assert_clean_error(
        cli("catalog", "show", "b2", "--store", store.url, "--as-of", "1"), "no asset 'b2'"
    )

    out = tmp_path / "v1.parquet"
    exported = cli("catalog", "export", "--store", store.url, "-o", str(out), "--as-of", "1")
    assert exported.exit_code == 0, exported.output
    assert by_id(as_json(pq.read_table(out).to_pylist())) == v1  # the same rows


def test_as_of_an_iso_time_reads_the_version_current_then(three_versions: AssetStore) -> None:
    store = three_versions
    history = json_lines(cli("catalog", "history", "--store", store.url, "--json"))
    when = {e["version"]: datetime.fromisoformat(e["timestamp"]) for e in history}
    assert when[0] < when[1] < when[2]
    between = when[0] + (when[1] - when[0]) / 2
    v0 = listed(store, "--as-of", "0")
    assert listed(store, "--as-of", between.isoformat()) == v0
    utc = between.astimezone(UTC).isoformat().replace("+00:00", "Z")
    assert listed(store, "--as-of", utc) == v0
    assert listed(store, "--as-of", when[1].isoformat()) == listed(store, "--as-of", "1")
    later = (when[2] + timedelta(hours=1)).isoformat()
    assert listed(store, "--as-of", later) == listed(store)
    shown = cli("catalog", "show", "a", "--store", store.url, "--as-of", between.isoformat())
    assert json.loads(shown.stdout)["prompt"] == "a v1"


def test_history_lists_versions_with_runs_and_rows_changed(three_versions: AssetStore) -> None:
    store = three_versions
    history = json_lines(cli("catalog", "history", "--store", store.url, "--json"))
    assert [(e["version"], e["run_id"], e["rows_changed"]) for e in history] == [
        (2, "run-3", 1),  # b2 inserted, listing b (no writer settled it: b is not rewritten)
        (1, "run-2", 3),  # d, e inserted, a updated
        (0, "run-1", 3),
    ]
    assert [e["operation"] for e in history] == ["MERGE", "MERGE", "WRITE"]
    limited = json_lines(cli("catalog", "history", "--store", store.url, "--json", "--limit", "1"))
    assert [e["version"] for e in limited] == [2]
    shown = cli("catalog", "history", "--store", store.url)
    assert shown.exit_code == 0, shown.output
    cells = [line.replace("│", " ").split() for line in shown.stdout.splitlines()]
    found = [(c[0], c[-3], c[-2], c[-1]) for c in cells if len(c) >= 6 and c[0].isdigit()]
    assert found == [
        ("2", "MERGE", "run-3", "1"),
        ("1", "MERGE", "run-2", "3"),
        ("0", "WRITE", "run-1", "3"),
    ], shown.stdout


@pytest.mark.parametrize("bad", ["99", "nonsense", "-1", "2026-13-45", "1.5"])
def test_a_bad_as_of_is_a_clear_error(three_versions: AssetStore, bad: str, tmp_path: Path) -> None:
    store = three_versions
    for args in (
        ("list",),
        ("show", "a"),
        ("export", "-o", str(tmp_path / "x.parquet")),
    ):
        result = cli("catalog", *args, "--store", store.url, "--as-of", bad)
        assert_clean_error(result, f"--as-of {bad!r}")
    assert not (tmp_path / "x.parquet").exists()


def test_as_of_a_time_before_the_table_existed_is_not_its_first_version(
    three_versions: AssetStore,
) -> None:
    """The catalog did not exist in 2020: the table 'as it was' then is not version 0."""
    result = cli(
        "catalog",
        "list",
        "--store",
        three_versions.url,
        "--format",
        "json",
        "--as-of",
        "2020-01-01T00:00:00Z",
    )
    if result.exit_code == 0:
        assert json_lines(result) == [], "version 0 read for a time before the table existed"
    else:
        assert_clean_error(result, "--as-of")


# --- 5. vacuum -----------------------------------------------------------------------------------


@pytest.fixture
def five_versions(tmp_path: Path) -> tuple[AssetStore, dict[int, dict[str, dict[str, Any]]]]:
    """Versions 0-4, each commit rewriting the table's one file; the rows at each version."""
    store = AssetStore(str(tmp_path / "store"))
    snapshots = {}
    for v in range(5):
        cat.commit(store, [make_row(f"x{v}", f"run-{v}"), make_row("same", f"run-{v}")], f"run-{v}")
        snapshots[v] = by_id(as_json(cat.read_catalog(store).to_pylist()))
    return store, snapshots


def _age_commits(store: AssetStore, versions: range, age: timedelta) -> None:
    """Make these commits look `age` old: their time, and when they removed files."""
    log = Path(store.path(f"{CATALOG}/_delta_log"))
    then = int((datetime.now(UTC) - age).timestamp() * 1000)
    for v in versions:
        path = log / f"{v:020d}.json"
        actions = [json.loads(line) for line in path.read_text().splitlines() if line]
        for action in actions:
            if "commitInfo" in action:
                action["commitInfo"]["timestamp"] = then + v
            if "remove" in action:
                action["remove"]["deletionTimestamp"] = then + v
        path.write_text("".join(json.dumps(a) + "\n" for a in actions))


def _files(store: AssetStore) -> set[str]:
    return {p.name for p in Path(store.path(CATALOG)).glob("*.parquet")}


def test_compact_keeps_the_versions_its_retention_promises(
    five_versions: tuple[AssetStore, dict[int, dict[str, dict[str, Any]]]],
) -> None:
    store, snapshots = five_versions
    _age_commits(store, range(0, 3), timedelta(days=3))  # versions 0 and 1 ended 3 days ago
    before = _files(store)
    done = cli("catalog", "compact", "--store", store.url, "--keep-days", "1")
    assert done.exit_code == 0, done.output
    assert "6 assets" in done.stdout
    removed = before - _files(store)
    assert len(removed) == 2, removed  # the files only versions 0 and 1 read
    for v in range(2, 5):  # ended within the day kept: they read as they were
        assert listed(store, "--as-of", str(v)) == snapshots[v], v
    assert listed(store, "--as-of", "5") == snapshots[4]  # the optimize: same rows
    assert listed(store) == snapshots[4]
    for v in (0, 1):
        assert_clean_error(cli("catalog", "list", "--store", store.url, "--as-of", str(v)))


def test_compact_with_no_retention_removes_every_older_versions_files(
    five_versions: tuple[AssetStore, dict[int, dict[str, dict[str, Any]]]],
) -> None:
    store, snapshots = five_versions
    done = cat.compact(store, retention_hours=0)
    # The current file is compact already (left as it is); the older versions' four go.
    assert done == {"files_before": 1, "files_after": 1, "removed": 4, "assets": 6}
    assert len(_files(store)) == 1
    assert listed(store) == snapshots[4]
    for v in range(0, 4):
        assert_clean_error(
            cli("catalog", "list", "--store", store.url, "--as-of", str(v)), f"--as-of '{v}'"
        )
    assert listed(store, "--as-of", "4") == snapshots[4]  # its file is the current one
    assert cat.run_version(store, ["run-3"]) is None  # vacuumed: not readable any more


@pytest.mark.parametrize("keep", [None, "1", "0.02"])
def test_compact_keeps_every_version_younger_than_keep_days(
    five_versions: tuple[AssetStore, dict[int, dict[str, dict[str, Any]]]], keep: str | None
) -> None:
    """Versions seconds old survive any retention above zero (0.02 days: 29 minutes)."""
    store, snapshots = five_versions
    args = ["catalog", "compact", "--store", store.url]
    done = cli(*args, *(["--keep-days", keep] if keep else []))
    assert done.exit_code == 0, done.output
    assert "removed 0 files" in done.stdout, done.stdout
    for v in range(5):
        assert listed(store, "--as-of", str(v)) == snapshots[v], v
