"""Reading manifests: every format from every place, format detection, and bad input."""

from __future__ import annotations

import gzip
import io
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from assetgen.tasks.manifest.read import ManifestError, RawRow, Reject, detect_format, read_manifest
from assetgen.tasks.plan.jobs import Planner
from tests.helpers import plan_all, write_manifest

FORMATS = ("csv", "parquet", "jsonl")
LOCATIONS = ("local", "memory")

ROWS: list[dict[str, Any]] = [
    {
        "id": "007",
        "prompt": "A blue ceramic mug on a wooden desk, soft light",
        "size": "1536x1024",
        "quality": "low",
        "n": 2,
        "reference_images": ["refs/mug.png"],
        "campaign": "spring",
    },
    {
        "id": "lamp-red",
        "prompt": 'A red lamp, "studio" shot\nwith a second line',
        "size": "1024x1024",
        "quality": "medium",
        "n": 1,
        "reference_images": None,
        "campaign": "autumn",
    },
    {
        "id": "banner",
        "prompt": "Minimal abstract banner with pastel waves",
        "size": "2048x688",
        "quality": "high",
        "n": 3,
        "reference_images": ["refs/mug.png", "refs/lamp.png"],
        "campaign": "spring",
    },
]


def _png(width: int, height: int, color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, format="PNG")
    return buf.getvalue()


def _put(url: str, data: bytes) -> str:
    with fsspec.open(url, "wb") as f:
        f.write(data)
    return url


def _folder(location: str, tmp_path: Path, memory_dir: str) -> str:
    return str(tmp_path) if location == "local" else memory_dir


def _read_all(url: str, fmt: str | None = None, batch_rows: int = 2048) -> list[RawRow | Reject]:
    return [item for batch in read_manifest(url, fmt, batch_rows) for item in batch]


def _rows(items: list[RawRow | Reject]) -> list[RawRow]:
    return [i for i in items if isinstance(i, RawRow)]


def _rejects(items: list[RawRow | Reject]) -> list[Reject]:
    return [i for i in items if isinstance(i, Reject)]


def _as_written(row: dict[str, Any], fmt: str) -> dict[str, Any]:
    """What a reader should hand back for `row` written by `write_manifest` in `fmt`."""
    if fmt != "csv":
        return row
    # CSV has only text: lists are written as JSON, None as an empty cell.
    return {
        k: "" if v is None else json.dumps(v) if isinstance(v, list) else str(v)
        for k, v in row.items()
    }


# --- each format from each place ----------------------------------------------------------


@pytest.mark.parametrize("location", LOCATIONS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_rows_come_out_numbered_with_their_values(
    fmt: str, location: str, tmp_path: Path, memory_dir: str
) -> None:
    url = write_manifest(f"{_folder(location, tmp_path, memory_dir)}/manifest.{fmt}", ROWS)
    items = _read_all(url)
    assert _rejects(items) == []
    rows = _rows(items)
    assert [r.number for r in rows] == [1, 2, 3]
    assert [r.fields for r in rows] == [_as_written(row, fmt) for row in ROWS]
    assert rows[0].fields["id"] == "007"


@pytest.mark.parametrize("location", LOCATIONS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_plan_over_each_format_and_place(
    fmt: str,
    location: str,
    tmp_path: Path,
    memory_dir: str,
    make_planner: Callable[..., Planner],
) -> None:
    folder = _folder(location, tmp_path, memory_dir)
    _put(f"{folder}/refs/mug.png", _png(64, 48, (0, 0, 200)))
    _put(f"{folder}/refs/lamp.png", _png(32, 32, (200, 0, 0)))
    url = write_manifest(f"{folder}/manifest.{fmt}", ROWS)

    jobs, rejects = plan_all(make_planner(partition_by=["campaign"]), url)

    assert rejects == []
    assert [(j.row, j.row_id, j.variant) for j in jobs] == [
        (1, "007", 0),
        (1, "007", 1),
        (2, "lamp-red", 0),
        (3, "banner", 0),
        (3, "banner", 1),
        (3, "banner", 2),
    ]
    by_row = {j.row_id: j for j in jobs}
    assert by_row["007"].size == "1536x1024"
    assert by_row["007"].quality == "low"
    assert by_row["lamp-red"].prompt == ROWS[1]["prompt"]
    assert by_row["banner"].partition == {"campaign": "spring"}
    assert by_row["lamp-red"].partition == {"campaign": "autumn"}
    # Relative reference paths resolve against the manifest's own folder.
    assert [r.uri.rsplit("/", 2)[-2:] for r in by_row["banner"].references] == [
        ["refs", "mug.png"],
        ["refs", "lamp.png"],
    ]
    assert [(r.width, r.height) for r in by_row["banner"].references] == [(64, 48), (32, 32)]
    assert by_row["lamp-red"].references == []
    assert len({j.asset_id for j in jobs}) == 6
    assert all(0 < j.cost_low <= j.cost_expected <= j.cost_worst for j in jobs)


def test_same_manifest_in_every_format_and_place_plans_the_same_assets(
    tmp_path: Path, memory_dir: str, make_planner: Callable[..., Planner]
) -> None:
    plans = {}
    for location in LOCATIONS:
        folder = _folder(location, tmp_path, memory_dir)
        _put(f"{folder}/refs/mug.png", _png(64, 48, (0, 0, 200)))
        _put(f"{folder}/refs/lamp.png", _png(32, 32, (200, 0, 0)))
        for fmt in FORMATS:
            url = write_manifest(f"{folder}/manifest.{fmt}", ROWS)
            jobs, rejects = plan_all(make_planner(), url)
            assert rejects == []
            plans[(fmt, location)] = [(j.row, j.asset_id, j.cost_expected) for j in jobs]
    first = plans[("csv", "local")]
    assert len(first) == 6
    for key, plan in plans.items():
        assert plan == first, key


# --- reference_images in each format ------------------------------------------------------


@pytest.fixture
def two_refs(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "refs").mkdir()
    a = tmp_path / "refs" / "a.png"
    b = tmp_path / "refs" / "b.png"
    a.write_bytes(_png(40, 30, (10, 20, 30)))
    b.write_bytes(_png(20, 10, (200, 100, 50)))
    return a, b


@pytest.mark.parametrize(
    "cell",
    [
        '"[""refs/a.png"", ""refs/b.png""]"',
        "refs/a.png;refs/b.png",
        '" refs/a.png ; refs/b.png ;"',
    ],
    ids=["json-list", "semicolons", "semicolons-with-spaces"],
)
def test_csv_reference_images_as_json_list_or_semicolons(
    cell: str,
    tmp_path: Path,
    two_refs: tuple[Path, Path],
    make_planner: Callable[..., Planner],
) -> None:
    url = tmp_path / "m.csv"
    url.write_text(f'id,prompt,reference_images\nr1,"A product shot",{cell}\n', encoding="utf-8")
    jobs, rejects = plan_all(make_planner(), str(url))
    assert rejects == []
    assert len(jobs) == 1
    assert [(r.width, r.height) for r in jobs[0].references] == [(40, 30), (20, 10)]
    assert [Path(r.uri).name for r in jobs[0].references] == ["a.png", "b.png"]


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_reference_images_as_real_list(
    fmt: str,
    tmp_path: Path,
    two_refs: tuple[Path, Path],
    make_planner: Callable[..., Planner],
) -> None:
    rows = [
        {"id": "r1", "prompt": "A product shot", "reference_images": ["refs/a.png", "refs/b.png"]}
    ]
    url = write_manifest(str(tmp_path / f"m.{fmt}"), rows)
    [raw] = _read_all(url)
    assert isinstance(raw, RawRow)
    assert raw.fields["reference_images"] == ["refs/a.png", "refs/b.png"]
    jobs, rejects = plan_all(make_planner(), url)
    assert rejects == []
    assert [(r.width, r.height) for r in jobs[0].references] == [(40, 30), (20, 10)]


def test_parquet_reference_images_list_column_is_typed_list(tmp_path: Path) -> None:
    url = write_manifest(
        str(tmp_path / "m.parquet"),
        [{"id": "a", "prompt": "p", "reference_images": ["x.png", "y.png"]}],
    )
    assert pa.types.is_list(pq.read_schema(url).field("reference_images").type)


# --- format detection ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "fmt"),
    [
        ("m.csv", "csv"),
        ("M.CSV", "csv"),
        ("m.parquet", "parquet"),
        ("m.pq", "parquet"),
        ("m.jsonl", "jsonl"),
        ("m.ndjson", "jsonl"),
        ("m.csv.gz", "csv"),
        ("m.jsonl.gz", "jsonl"),
        ("s3://bucket/some.folder/m.csv", "csv"),
        ("memory://x/2027.05/m.parquet", "parquet"),
        ("file:///data/m.jsonl", "jsonl"),
    ],
)
def test_format_from_extension(url: str, fmt: str) -> None:
    assert detect_format(url) == fmt


@pytest.mark.parametrize("url", ["m.txt", "m", "m.gz", "m.xlsx", "memory://a.csv/manifest"])
def test_unknown_extension_asks_for_format(url: str) -> None:
    with pytest.raises(ManifestError, match="--format"):
        detect_format(url)


def test_unknown_extension_raises_when_reading(tmp_path: Path) -> None:
    path = tmp_path / "m.txt"
    path.write_text("id,prompt\na,b\n")
    with pytest.raises(ManifestError, match="--format"):
        _read_all(str(path))


def test_format_argument_wins_over_extension() -> None:
    assert detect_format("m.txt", "csv") == "csv"
    assert detect_format("m.csv", "JSONL") == "jsonl"
    with pytest.raises(ManifestError, match="csv, parquet, jsonl"):
        detect_format("m.csv", "xlsx")


@pytest.mark.parametrize("fmt", FORMATS)
def test_format_override_reads_file_with_odd_extension(fmt: str, tmp_path: Path) -> None:
    url = write_manifest(str(tmp_path / "manifest.export"), ROWS[:2], fmt=fmt)
    rows = _rows(_read_all(url, fmt))
    assert [(r.number, r.fields["id"]) for r in rows] == [(1, "007"), (2, "lamp-red")]


@pytest.mark.parametrize("location", LOCATIONS)
def test_gzipped_csv_is_read(location: str, tmp_path: Path, memory_dir: str) -> None:
    text = 'id,prompt\n007,"A mug, blue"\n008,A lamp\n'
    url = _put(f"{_folder(location, tmp_path, memory_dir)}/m.csv.gz", gzip.compress(text.encode()))
    rows = _rows(_read_all(url))
    assert [(r.number, r.fields) for r in rows] == [
        (1, {"id": "007", "prompt": "A mug, blue"}),
        (2, {"id": "008", "prompt": "A lamp"}),
    ]


@pytest.mark.parametrize("location", LOCATIONS)
def test_gzipped_jsonl_is_read(location: str, tmp_path: Path, memory_dir: str) -> None:
    text = "".join(json.dumps(r) + "\n" for r in ROWS)
    url = _put(
        f"{_folder(location, tmp_path, memory_dir)}/m.jsonl.gz", gzip.compress(text.encode())
    )
    rows = _rows(_read_all(url))
    assert [r.fields for r in rows] == ROWS
    assert [r.number for r in rows] == [1, 2, 3]


def test_gzipped_csv_plans(tmp_path: Path, make_planner: Callable[..., Planner]) -> None:
    path = tmp_path / "m.csv.gz"
    path.write_bytes(gzip.compress(b"id,prompt,n\na,A mug,2\nb,A lamp,1\n"))
    jobs, rejects = plan_all(make_planner(), str(path))
    assert rejects == []
    assert [(j.row_id, j.variant) for j in jobs] == [("a", 0), ("a", 1), ("b", 0)]


# --- manifests that cannot be read at all -------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("location", LOCATIONS)
def test_missing_file(fmt: str, location: str, tmp_path: Path, memory_dir: str) -> None:
    url = f"{_folder(location, tmp_path, memory_dir)}/nope.{fmt}"
    with pytest.raises(ManifestError, match="not found") as err:
        _read_all(url)
    assert url in str(err.value)


def test_missing_file_through_planner(tmp_path: Path, make_planner: Callable[..., Planner]) -> None:
    with pytest.raises(ManifestError, match="not found"):
        plan_all(make_planner(), str(tmp_path / "nope.csv"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_id_column(fmt: str, tmp_path: Path) -> None:
    url = write_manifest(
        str(tmp_path / f"m.{fmt}"), [{"sku": "a", "prompt": "x"}, {"sku": "b", "prompt": "y"}]
    )
    with pytest.raises(ManifestError, match="no `id` column") as err:
        _read_all(url)
    message = str(err.value)
    assert url in message
    assert "sku" in message  # names the columns it did find


def test_jsonl_first_record_decides_the_columns(tmp_path: Path) -> None:
    # Garbage before the first object does not count as the header.
    path = tmp_path / "m.jsonl"
    path.write_text('not json\n{"sku": "a", "prompt": "x"}\n{"id": "b", "prompt": "y"}\n')
    with pytest.raises(ManifestError, match="no `id` column"):
        _read_all(str(path))


def test_jsonl_later_record_without_id_is_a_row_not_an_error(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text('{"id": "a", "prompt": "x"}\n{"prompt": "y"}\n{"id": "c", "prompt": "z"}\n')
    jobs, rejects = plan_all(make_planner(), str(path))
    assert [j.row_id for j in jobs] == ["a", "c"]
    assert [(r.row, r.column) for r in rejects] == [(2, "id")]


@pytest.mark.parametrize("location", LOCATIONS)
def test_corrupt_parquet(location: str, tmp_path: Path, memory_dir: str) -> None:
    data = random.Random(42).randbytes(4096)
    url = _put(f"{_folder(location, tmp_path, memory_dir)}/m.parquet", data)
    with pytest.raises(ManifestError, match="not a readable Parquet file") as err:
        _read_all(url)
    assert url in str(err.value)


def test_csv_saved_as_parquet_is_not_readable(tmp_path: Path) -> None:
    path = tmp_path / "m.parquet"
    path.write_text("id,prompt\na,b\n")
    with pytest.raises(ManifestError, match="Parquet"):
        _read_all(str(path))


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf"], ids=["empty", "bom-only"])
def test_empty_csv(content: bytes, tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(content)
    with pytest.raises(ManifestError, match="empty file"):
        _read_all(str(path))


def test_duplicate_csv_columns(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("id,prompt,size,prompt\na,x,1024x1024,y\n")
    with pytest.raises(ManifestError, match="'prompt' appears twice"):
        _read_all(str(path))


def test_duplicate_columns_after_trimming_spaces(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("id, id\na,b\n")
    with pytest.raises(ManifestError, match="'id' appears twice"):
        _read_all(str(path))


def test_duplicate_parquet_columns(tmp_path: Path) -> None:
    table = pa.Table.from_arrays(
        [pa.array(["a"]), pa.array(["x"]), pa.array(["y"])], names=["id", "prompt", "prompt"]
    )
    path = tmp_path / "m.parquet"
    pq.write_table(table, path)
    with pytest.raises(ManifestError, match="'prompt' appears twice"):
        _read_all(str(path))


def test_unnamed_csv_column(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("id,,prompt\na,b,c\n")
    with pytest.raises(ManifestError, match="column 2 has no name"):
        _read_all(str(path))


def test_directory_is_not_a_manifest(tmp_path: Path) -> None:
    (tmp_path / "m.csv").mkdir()
    with pytest.raises(ManifestError, match="directory"):
        _read_all(str(tmp_path / "m.csv"))


# --- bad records do not stop the others ---------------------------------------------------


def test_csv_wrong_field_counts_are_rejects(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("id,prompt,size\na,A mug,1024x1024\nb,too,many,fields\nc,too few\nd,ok,auto\n")
    items = _read_all(str(path))
    assert [(r.number, r.fields["id"]) for r in _rows(items)] == [(1, "a"), (4, "d")]
    rejects = _rejects(items)
    assert [(r.row, r.id, r.code) for r in rejects] == [
        (2, "b", "csv_field_count"),
        (3, "c", "csv_field_count"),
    ]
    assert "4 fields" in rejects[0].reason and "3" in rejects[0].reason
    assert "2 fields" in rejects[1].reason


def test_csv_invalid_utf8_is_a_reject(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(b"id,prompt\na,fine\nb,caf\xe9 latte\n\xff\xfe,x\nd,also fine\n")
    items = _read_all(str(path))
    assert [(r.number, r.fields) for r in _rows(items)] == [
        (1, {"id": "a", "prompt": "fine"}),
        (4, {"id": "d", "prompt": "also fine"}),
    ]
    assert [(r.row, r.id, r.column, r.code) for r in _rejects(items)] == [
        (2, "b", "prompt", "encoding"),
        (3, None, "id", "encoding"),
    ]


def test_jsonl_bad_lines_are_rejects(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_bytes(
        b'{"id": "a", "prompt": "A mug"}\n'
        b"this is not json\n"
        b'["an", "array"]\n'
        b'{"id": "d", "prompt": "caf\xe9"}\n'
        b'{"id": "e", "prompt": "A lamp"}\n'
    )
    items = _read_all(str(path))
    assert [(r.number, r.fields["id"]) for r in _rows(items)] == [(1, "a"), (5, "e")]
    assert [(r.row, r.id, r.column, r.code) for r in _rejects(items)] == [
        (2, None, None, "json_syntax"),
        (3, None, None, "json_syntax"),
        (4, "d", "prompt", "encoding"),
    ]
    assert "not valid JSON" in _rejects(items)[0].reason
    assert "not a JSON object" in _rejects(items)[1].reason


def test_bad_records_through_the_planner(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(b"id,prompt\na,A mug\nb,x,y\nc,caf\xe9\nd,A lamp\n")
    jobs, rejects = plan_all(make_planner(), str(path))
    assert [(j.row, j.row_id) for j in jobs] == [(1, "a"), (4, "d")]
    assert [(r.row, r.code) for r in rejects] == [(2, "csv_field_count"), (3, "encoding")]


def test_rejects_and_rows_keep_order_across_batches(tmp_path: Path) -> None:
    lines = ["id,prompt"] + [f"r{i},p{i}" if i % 4 else f"r{i},p,extra" for i in range(1, 11)]
    path = tmp_path / "m.csv"
    path.write_text("\n".join(lines) + "\n")
    batches = list(read_manifest(str(path), batch_rows=3))
    assert len(batches) > 1
    items = [i for b in batches for i in b]
    numbers = [i.number if isinstance(i, RawRow) else i.row for i in items]
    assert numbers == list(range(1, 11))
    assert [r.row for r in _rejects(items)] == [4, 8]


# --- CSV niceties -------------------------------------------------------------------------


def test_csv_quoted_prompt_with_newlines_and_commas_is_one_row(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(
        'id,prompt,size\na,"Line one, with a comma\nline two, ""quoted""\n\nline four",auto\n'
        "b,next,auto\n",
        encoding="utf-8",
    )
    items = _read_all(str(path))
    assert _rejects(items) == []
    assert [(r.number, r.fields) for r in _rows(items)] == [
        (
            1,
            {
                "id": "a",
                "prompt": 'Line one, with a comma\nline two, "quoted"\n\nline four',
                "size": "auto",
            },
        ),
        (2, {"id": "b", "prompt": "next", "size": "auto"}),
    ]


@pytest.mark.parametrize("location", LOCATIONS)
def test_csv_utf8_bom_is_not_part_of_the_first_column(
    location: str, tmp_path: Path, memory_dir: str
) -> None:
    data = "\ufeffid,prompt\n007,Ein sonniges Küchenregal\n".encode()
    url = _put(f"{_folder(location, tmp_path, memory_dir)}/m.csv", data)
    [row] = _read_all(url)
    assert isinstance(row, RawRow)
    assert row.fields == {"id": "007", "prompt": "Ein sonniges Küchenregal"}


def test_csv_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("id,prompt\n\na,A mug\n\n\nb,A lamp\n\n")
    items = _read_all(str(path))
    assert _rejects(items) == []
    assert [(r.number, r.fields["id"]) for r in _rows(items)] == [(1, "a"), (2, "b")]


def test_csv_crlf_line_ends(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(b'id,prompt\r\na,"two\r\nlines"\r\nb,A lamp\r\n')
    rows = _rows(_read_all(str(path)))
    assert [r.fields["id"] for r in rows] == ["a", "b"]
    assert rows[1].fields["prompt"] == "A lamp"


def test_csv_header_names_are_trimmed(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(" id , prompt \na,A mug\n")
    [row] = _read_all(str(path))
    assert isinstance(row, RawRow)
    assert row.fields == {"id": "a", "prompt": "A mug"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_leading_zeros_in_ids_are_kept(
    fmt: str, tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    rows = [{"id": "007", "prompt": "A mug"}, {"id": "0042", "prompt": "A lamp"}]
    url = write_manifest(str(tmp_path / f"m.{fmt}"), rows)
    assert [r.fields["id"] for r in _rows(_read_all(url))] == ["007", "0042"]
    jobs, rejects = plan_all(make_planner(), url)
    assert rejects == []
    assert [j.row_id for j in jobs] == ["007", "0042"]


def test_ids_differing_only_in_leading_zeros_are_not_duplicates(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    path = tmp_path / "m.csv"
    path.write_text("id,prompt\n7,A mug\n007,A lamp\n")
    jobs, rejects = plan_all(make_planner(), str(path))
    assert rejects == []
    assert [j.row_id for j in jobs] == ["7", "007"]
