"""What assetgen sends and what the test server answers, against OpenAI's published API description.

The description is openapi.json of https://github.com/openai/openai-openapi at
commit f85dbe2 of 2026-08-21 (MIT, copyright OpenAI); the schemas used here are
extracted from it into tests/contract/openai-images.schema.json by
tests/contract/refresh.py (see tests/contract/README.md). Requests go through
the project's real client (OpenAIProvider, the batch submit and collect) and
the real SDK to tests/fakes/; the bodies the server got and the JSON it
answered are validated with jsonschema (Draft 2020-12), `$ref`s resolving
inside the extracted document. Beyond the schemas, a request may carry only
the parameters its schema lists: the API answers any other with 400
unknown_parameter.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest
from jsonschema import Draft202012Validator
from openai.types import ImagesResponse
from PIL import Image
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from assetgen.tasks.batch.collect import collect
from assetgen.tasks.batch.records import EDITS, GENERATIONS, request_line, split_batches
from assetgen.tasks.batch.submit import submit
from assetgen.tasks.config.job import JobConfig, load_job_config
from assetgen.tasks.generation.openai_images import OpenAIProvider
from assetgen.tasks.generation.run import GenerationReport, generate
from assetgen.tasks.plan.jobs import Job, Planner
from assetgen.tasks.plan.pricing import PriceTable
from assetgen.tasks.store.assets import AssetStore, now_utc
from tests.conftest import FAKE_KEY as KEY
from tests.fakes.images_api import FakeOpenAI, RequestRecord
from tests.helpers import plan_all, write_manifest

# The dated description every check here is against.
DESCRIPTION = "openapi.json of openai/openai-openapi, commit f85dbe2, 2026-08-21"
SCHEMA_FILE = Path(__file__).parent / "contract" / "openai-images.schema.json"
DOCUMENT = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
SCHEMAS: dict[str, Any] = DOCUMENT["components"]["schemas"]
_URI = "urn:assetgen:contract:openai-images"
_REGISTRY = Registry().with_resource(
    _URI, Resource.from_contents(DOCUMENT, default_specification=DRAFT202012)
)
JSON_EDIT_SIZES = ("auto", "1024x1024", "1536x1024", "1024x1536")


# --- validating ---------------------------------------------------------------------------


@functools.cache
def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"{_URI}#/components/schemas/{name}"}, registry=_REGISTRY)


def problems(instance: Any, name: str) -> list[str]:
    """Where `instance` breaks schema `name`, plus top-level keys the schema does not list."""
    found = [
        f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
        for e in validator(name).iter_errors(instance)
    ]
    listed = SCHEMAS[name].get("properties")
    if isinstance(instance, dict) and listed is not None:
        found += [
            f"{key}: not a parameter of {name}" for key in sorted(set(instance) - set(listed))
        ]
    return found


def check(instance: Any, name: str, what: str) -> None:
    found = problems(instance, name)
    assert not found, f"{what} does not follow {name} of {DESCRIPTION}: {'; '.join(found)}"


def _types(schema: dict[str, Any]) -> set[str]:
    if "$ref" in schema:
        schema = SCHEMAS[schema["$ref"].rsplit("/", 1)[-1]]
    kind = schema.get("type")
    found = {kind} if isinstance(kind, str) else set(kind or [])
    for sub in schema.get("anyOf", []) + schema.get("oneOf", []):
        found |= _types(sub)
    return found


def form_as_json(fields: dict[str, Any], name: str) -> dict[str, Any]:
    """A multipart body's text fields as the typed values they encode, by the schema's types.

    Multipart sends every value as text: `n=1` stands for the integer 1. A value
    that does not parse as its type stays text, and fails the check.
    """
    listed = SCHEMAS[name]["properties"]
    out: dict[str, Any] = {}
    for key, value in fields.items():
        types = _types(listed.get(key, {}))
        if isinstance(value, str) and "integer" in types and re.fullmatch(r"-?\d+", value):
            value = int(value)
        elif isinstance(value, str) and "boolean" in types and value in ("true", "false"):
            value = value == "true"
        out[key] = value
    return out


def check_request(record: RequestRecord) -> str:
    """A request the images endpoints got, against the schema of its form; that schema."""
    assert record.body is not None
    if record.endpoint == "generations":
        name, body = "CreateImageRequest", record.body
    elif record.content == "multipart":
        name, body = "CreateImageEditRequest", form_as_json(record.body, "CreateImageEditRequest")
    else:
        name, body = "EditImageBodyJsonParam", record.body
    check(body, name, f"{record.content} {record.endpoint} body {record.body}")
    return name


def check_answers(fake: FakeOpenAI) -> int:
    """Every JSON object the Files and Batch APIs answered; how many were checked."""
    schemas = {
        "files.create": "OpenAIFile",
        "files.retrieve": "OpenAIFile",
        "batches.create": "Batch",
        "batches.retrieve": "Batch",
        "batches.cancel": "Batch",
    }
    checked = 0
    for x in fake.batch_api.exchanges:
        if x.status != 200 or x.response is None:
            continue
        if x.call in schemas:
            check(x.response, schemas[x.call], f"{x.endpoint} answer")
            checked += 1
        elif x.call in ("files.list", "batches.list"):
            item = "OpenAIFile" if x.call == "files.list" else "Batch"
            for obj in x.response["data"]:
                check(obj, item, f"{x.endpoint} item")
                checked += 1
    return checked


# --- jobs -----------------------------------------------------------------------------------


def png(path: Path, size: tuple[int, int] = (1024, 1024), mode: str = "RGB") -> str:
    colour = (0, 0, 0, 0) if mode == "RGBA" else "navy"
    Image.new(mode, size, colour).save(path)
    return str(path)


def plan_rows(
    make_planner: Callable[..., Planner], tmp_path: Path, rows: list[dict[str, Any]]
) -> dict[str, Job]:
    """The jobs of `rows`, by row id; every row must be valid."""
    jobs, rejects = plan_all(make_planner(), write_manifest(str(tmp_path / "m.csv"), rows))
    assert not rejects, rejects
    return {job.row_id: job for job in jobs}


def fast_config(**overrides: Any) -> JobConfig:
    base = {"limits.ipm": 60_000, "limits.backoff_base_s": 0.01, "renditions": []}
    return load_job_config(None, base | overrides)


def run_online(fake: FakeOpenAI, tmp_path: Path, prices: PriceTable, jobs: list[Job]) -> Any:
    client = openai.AsyncOpenAI(api_key=KEY, base_url=fake.base_url, max_retries=0, timeout=30)
    provider = OpenAIProvider(timeout_s=30, client=client)
    store = AssetStore(str(tmp_path / "store"))
    return generate(jobs, fast_config(), store, "contract", now_utc(), prices, provider)


def sync_client(fake: FakeOpenAI) -> openai.OpenAI:
    return openai.OpenAI(api_key=KEY, base_url=fake.base_url, max_retries=0)


# --- online ---------------------------------------------------------------------------------


@pytest.fixture
def references(tmp_path: Path) -> dict[str, str]:
    return {
        "a": png(tmp_path / "a.png"),
        "b": png(tmp_path / "b.png", mode="RGBA"),
        "c": png(tmp_path / "c.png", (1536, 1024)),
        "mask": png(tmp_path / "mask.png", mode="RGBA"),
    }


def online_rows(refs: dict[str, str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for size in ("1024x1024", "1536x1024", "1024x1536", "auto", "1536x864", "2048x1152"):
        rows.append({"id": f"size-{size}", "prompt": f"a chair at {size}", "size": size})
    for quality in ("low", "medium", "high", "auto"):
        rows.append({"id": f"q-{quality}", "prompt": f"a {quality} lamp", "quality": quality})
    for fmt in ("png", "jpeg", "webp"):
        rows.append({"id": f"f-{fmt}", "prompt": f"a {fmt} table", "output_format": fmt})
    for fmt, compression in (("jpeg", 80), ("webp", 0), ("webp", 100)):
        rows.append(
            {
                "id": f"c-{fmt}-{compression}",
                "prompt": f"a {fmt} vase at {compression}",
                "output_format": fmt,
                "output_compression": compression,
            }
        )
    for fmt in ("png", "webp"):
        rows.append(
            {
                "id": f"t-{fmt}",
                "prompt": f"a {fmt} cup, no background",
                "output_format": fmt,
                "background": "transparent",
            }
        )
    rows.append({"id": "opaque", "prompt": "a mug", "background": "opaque"})
    edits = [
        ("e-one", [refs["a"]], None, "1024x1024"),
        ("e-several", [refs["a"], refs["b"], refs["c"]], None, "1536x1024"),
        ("e-mask", [refs["a"]], refs["mask"], "1024x1024"),
        ("e-custom", [refs["c"]], None, "1536x864"),
    ]
    for row_id, images, mask, size in edits:
        row = {"id": row_id, "prompt": f"the product, {row_id}", "size": size}
        row |= {"reference_images": ";".join(images), "output_format": "webp"}
        rows.append(row | ({"mask": mask} if mask else {}))
    rows.append({"id": "mod-gen", "prompt": "a poster, moderation low", "moderation": "low"})
    rows.append(
        {"id": "mod-edit", "prompt": "the poster, moderation low", "reference_images": refs["a"]}
        | {"moderation": "low"}
    )
    rows.append({"id": "text-out", "prompt": "a sign [[text_out:5]]"})
    return rows


def test_online_requests_and_answers_follow_the_description(
    fake: FakeOpenAI,
    tmp_path: Path,
    make_planner: Callable[..., Planner],
    prices: PriceTable,
    references: dict[str, str],
) -> None:
    jobs = plan_rows(make_planner, tmp_path, online_rows(references))
    report: GenerationReport = run_online(fake, tmp_path, prices, list(jobs.values()))
    failed = {o.job.row_id: o.reason for o in report.outcomes if o.status != "generated"}
    assert not failed
    assert len(fake.requests) == len(jobs)

    forms: dict[str, int] = {}
    for record in fake.requests:
        name = check_request(record)
        forms[name] = forms.get(name, 0) + 1
        assert record.status == 200 and record.response is not None
        check(record.response, "ImagesResponse", f"answer to {record.prompt!r}")
    assert forms["CreateImageRequest"] >= 18 and forms["CreateImageEditRequest"] >= 4
    by_prompt = {r.prompt: r for r in fake.requests}

    # What the project sent is what the rows asked for.
    several = by_prompt["the product, e-several"].body or {}
    assert isinstance(several["image"], list) and len(several["image"]) == 3
    assert all(re.fullmatch(r"<file .+, \d+ bytes>", f) for f in several["image"])
    assert "mask" in (by_prompt["the product, e-mask"].body or {})
    assert by_prompt["a poster, moderation low"].moderation == "low"
    assert by_prompt["a jpeg vase at 80"].body["output_compression"] == 80  # type: ignore[index]
    # An edit with moderation goes as the JSON body, the only edit form that takes it.
    edit = by_prompt["the poster, moderation low"]
    assert (edit.content, edit.moderation) == ("json", "low")

    # A size outside ImagesResponse's enum is left out of the answer; the client
    # then records the size it asked for (`response.size or job.size`).
    for prompt, size in (
        ("a chair at 1536x864", "1536x864"),
        ("the product, e-custom", "1536x864"),
    ):
        assert "size" not in (by_prompt[prompt].response or {})
        outcome = next(o for o in report.outcomes if o.job.prompt == prompt)
        sidecar = json.loads(Path(outcome.uri or "").read_text())
        assert sidecar["returned"]["size"] == size
    assert (by_prompt["a chair at 1536x1024"].response or {})["size"] == "1536x1024"

    text = by_prompt["a sign [[text_out:5]]"].response or {}
    assert text["usage"]["output_tokens_details"]["text_tokens"] == 5
    plain = by_prompt["a medium lamp"].response or {}
    assert plain["usage"]["output_tokens_details"]["text_tokens"] == 0
    assert text["usage"]["output_tokens"] == plain["usage"]["output_tokens"] + 5
    assert report.spent_usd == pytest.approx(fake.billed_usd)


# --- batch lines ----------------------------------------------------------------------------


def batch_rows(refs: dict[str, str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [
        {"id": f"g-{size}", "prompt": f"a chair at {size}", "size": size}
        for size in ("1024x1024", "1536x1024", "1024x1536", "auto", "1536x864")
    ]
    rows += [
        {"id": "g-jpeg", "prompt": "a jpeg", "output_format": "jpeg", "output_compression": 70},
        {"id": "g-clear", "prompt": "a cup", "output_format": "png", "background": "transparent"},
    ]
    for size in JSON_EDIT_SIZES:
        rows.append(
            {
                "id": f"e-{size}",
                "prompt": f"edit at {size}",
                "size": size,
                "reference_images": refs["a"],
            }
        )
    rows.append(
        {
            "id": "e-several",
            "prompt": "edit of three",
            "reference_images": ";".join([refs["a"], refs["b"], refs["c"]]),
        }
    )
    rows.append(
        {
            "id": "e-mask",
            "prompt": "edit with a mask",
            "reference_images": refs["a"],
            "mask": refs["mask"],
        }
    )
    return rows


def fake_file_ids(jobs: list[Job]) -> dict[str, str]:
    refs = [r for job in jobs for r in [*job.references, *([job.mask] if job.mask else [])]]
    return {ref.sha256: f"file-{ref.sha256[:24]}" for ref in refs}


def test_batch_lines_follow_the_description(
    tmp_path: Path, make_planner: Callable[..., Planner], references: dict[str, str]
) -> None:
    moderated = [
        {"id": "e-moderated", "prompt": "edit, moderation low", "moderation": "low"}
        | {"reference_images": references["a"]},
        {"id": "g-moderated", "prompt": "a poster, moderation low", "moderation": "low"},
    ]
    jobs = plan_rows(make_planner, tmp_path, [*batch_rows(references), *moderated])
    file_ids = fake_file_ids(list(jobs.values()))
    endpoints = SCHEMAS["CreateBatchRequest"]["properties"]["endpoint"]["enum"]
    lines = 0
    for url, chunk, data in split_batches(jobs.values(), file_ids, 50_000, 200 * 1024 * 1024):
        assert url in endpoints
        raw_lines = data.decode().splitlines()
        assert len(raw_lines) == len(chunk)
        for raw in raw_lines:
            line = json.loads(raw)
            assert set(line) == {"custom_id", "method", "url", "body"}
            assert (line["method"], line["url"]) == ("POST", url)
            name = "CreateImageRequest" if url == GENERATIONS else "EditImageBodyJsonParam"
            check(line["body"], name, f"batch line {line['custom_id']}")
            lines += 1
    assert lines == len(jobs)


def test_an_edit_in_a_custom_size_never_becomes_a_batch_line(
    tmp_path: Path, make_planner: Callable[..., Planner], references: dict[str, str]
) -> None:
    # EditImageBodyJsonParam takes only auto and the standard sizes: such a line
    # would fail a day later. The plan marks the job, batch mode sends it online
    # (tests/test_api_parameters.py), and batch lines refuse it.
    row = {"id": "e", "prompt": "x", "size": "1536x864", "reference_images": references["c"]}
    job = plan_rows(make_planner, tmp_path, [row])["e"]
    with pytest.raises(AssertionError, match="EditImageBodyJsonParam"):
        check(request_line(job, fake_file_ids([job]))["body"], "EditImageBodyJsonParam", "1536x864")
    assert not job.batchable
    with pytest.raises(ValueError, match="cannot be a batch line"):
        list(split_batches([job], fake_file_ids([job]), 50_000, 200_000_000))


# --- files and batches through the server ----------------------------------------------------


def batch_config() -> JobConfig:
    return load_job_config(
        None, {"provider": "openai", "mode": "batch", "batch.poll_s": 0.01, "renditions": []}
    )


def test_batch_files_and_objects_follow_the_description(
    fake: FakeOpenAI,
    tmp_path: Path,
    make_planner: Callable[..., Planner],
    prices: PriceTable,
    references: dict[str, str],
) -> None:
    rows = [r for r in batch_rows(references) if r["id"] != "g-1536x864"]
    jobs = list(plan_rows(make_planner, tmp_path, rows).values())
    client = sync_client(fake)
    statuses: list[str] = []
    for name, setup in (("completed", None), ("expired", 1), ("cancelled", None)):
        fake.expire_batches_after = setup
        store = AssetStore(str(tmp_path / f"store-{name}"))
        sent = submit(jobs, batch_config(), store, f"run-{name}", now_utc(), prices, client)
        assert len(sent.batches) == 2  # generations and edits
        if name == "cancelled":
            for record in sent.batches:
                client.batches.cancel(record.batch_id or "")
        async_client = openai.AsyncOpenAI(api_key=KEY, base_url=fake.base_url, max_retries=0)
        done = collect(
            store, batch_config(), prices, f"collect-{name}", wait=True, client=async_client
        )
        statuses += [r.status or "" for r in done.collected]
        asyncio.run(async_client.close())
    assert sorted(set(statuses)) == ["cancelled", "completed", "expired"]
    client.files.list()
    client.batches.list()

    # What the SDK sent.
    received = fake.batch_api.received
    purposes = set()
    for endpoint, body in received:
        if endpoint == "POST /v1/files":
            check(form_as_json(body, "CreateFileRequest"), "CreateFileRequest", "upload")
            assert re.fullmatch(r"<file .+, \d+ bytes>", body["file"])
            purposes.add(body["purpose"])
        elif endpoint == "POST /v1/batches":
            check(body, "CreateBatchRequest", "batch creation")
    assert purposes == {"batch", "vision"}
    assert sum(e == "POST /v1/batches" for e, _ in received) == 6
    # What it got back: file and batch objects in every state they went through.
    assert check_answers(fake) > 20
    seen = {b["status"] for b in fake.batch_api.answered("batches.retrieve")}
    assert {"in_progress", "finalizing", "completed", "expired", "cancelled"} <= seen
    assert {b["status"] for b in fake.batch_api.answered("batches.cancel")} == {"cancelling"}

    # The output files' answers are ImagesResponse objects too; their lines' bodies
    # were what batch mode built.
    outputs = 0
    output_files = {
        answer["output_file_id"]
        for answer in fake.batch_api.answered("batches.retrieve")
        if "output_file_id" in answer
    }
    for file_id in sorted(output_files):
        content = client.files.content(file_id).text
        for line in map(json.loads, content.splitlines()):
            body = {**line["response"]["body"], "data": [{"b64_json": "..."}]}
            check(body, "ImagesResponse", f"output line {line['custom_id']}")
            outputs += 1
    assert outputs >= len(jobs)  # the completed run's, and the expired run's first lines
    for record in fake.requests:
        assert record.endpoint.startswith("batch:")
        edit = record.endpoint == "batch:edits"
        name = "EditImageBodyJsonParam" if edit else "CreateImageRequest"
        check(record.body, name, f"batch line {record.prompt!r}")


# --- what the test server refuses, as the API does ----------------------------------------


def data_url(size: tuple[int, int] = (1024, 1024)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, "navy").save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def json_edit(client: openai.OpenAI, **body: Any) -> ImagesResponse:
    body = {"model": "gpt-image-2", "prompt": "the product", **body}
    body.setdefault("images", [{"image_url": data_url()}])
    return client.post("/images/edits", cast_to=ImagesResponse, body=body)


def bad_request(call: Callable[[], Any]) -> dict[str, Any]:
    with pytest.raises(openai.BadRequestError) as e:
        call()
    assert isinstance(e.value.body, dict)
    return e.value.body


def test_the_server_refuses_what_the_description_does_not_allow(fake: FakeOpenAI) -> None:
    client = sync_client(fake)
    strict: Any = "strict"
    gen = bad_request(
        lambda: client.images.generate(model="gpt-image-2", prompt="x", moderation=strict)
    )
    assert (gen["param"], gen["type"]) == ("moderation", "invalid_request_error")
    assert bad_request(lambda: json_edit(client, moderation="high"))["param"] == "moderation"
    size = bad_request(lambda: json_edit(client, size="1536x864"))
    assert (size["param"], size["code"]) == ("size", "invalid_value")
    many = [{"image_url": data_url()}] * 17
    assert bad_request(lambda: json_edit(client, images=many))["param"] == "images"
    assert bad_request(lambda: json_edit(client, images=[]))["param"] == "images"
    broken = [{"image_url": "data:image/png;base64,%%%"}]
    assert bad_request(lambda: json_edit(client, images=broken))["param"] == "images"
    both = [{"image_url": data_url(), "file_id": "file-x"}]
    assert bad_request(lambda: json_edit(client, images=both))["param"] == "images"
    assert fake.billed_usd == 0
    for record in fake.requests:
        assert record.status == 400 and (record.response or {})["error"]["param"]

    # What the description allows is accepted, and recorded as it came.
    fake.reset()
    for value in ("low", "auto"):
        client.images.generate(model="gpt-image-2", prompt="x", moderation=value, size="1024x1024")
        json_edit(client, moderation=value, size="1536x1024", mask={"image_url": _mask_url()})
    assert [r.moderation for r in fake.requests] == ["low", "low", "auto", "auto"]
    for record in fake.requests:
        check_request(record)
        check(record.response, "ImagesResponse", "answer")
    assert fake.requests[1].has_mask and fake.requests[1].n_images_in == 1


def _mask_url() -> str:
    buf = io.BytesIO()
    Image.new("RGBA", (1024, 1024), (0, 0, 0, 0)).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_batch_edit_line_in_a_custom_size_fails_its_line(fake: FakeOpenAI) -> None:
    client = sync_client(fake)
    ref = client.files.create(
        file=("ref.png", base64.b64decode(data_url().split(",")[1])), purpose="vision"
    )
    body = {"model": "gpt-image-2", "prompt": "x", "images": [{"file_id": ref.id}]}
    lines = [
        {"custom_id": "ok", "method": "POST", "url": EDITS, "body": {**body, "size": "1024x1024"}},
        {
            "custom_id": "custom",
            "method": "POST",
            "url": EDITS,
            "body": {**body, "size": "1536x864"},
        },
        {"custom_id": "mod", "method": "POST", "url": EDITS, "body": {**body, "moderation": "no"}},
    ]
    data = b"".join(json.dumps(x).encode() + b"\n" for x in lines)
    upload = client.files.create(file=("in.jsonl", data), purpose="batch")
    batch = client.batches.create(input_file_id=upload.id, endpoint=EDITS, completion_window="24h")
    for _ in range(3):
        batch = client.batches.retrieve(batch.id)
    assert batch.status == "completed"
    assert batch.request_counts is not None and batch.request_counts.failed == 2
    errors = client.files.content(batch.error_file_id or "").text.splitlines()
    by_id = {e["custom_id"]: e["response"] for e in map(json.loads, errors)}
    assert by_id["custom"]["status_code"] == 400
    assert by_id["custom"]["body"]["error"]["param"] == "size"
    assert by_id["mod"]["body"]["error"]["param"] == "moderation"
    assert [r.status for r in fake.requests] == [200, 400, 400]


def test_json_edit_is_billed_like_the_multipart_edit(fake: FakeOpenAI) -> None:
    client = sync_client(fake)
    url = data_url((1536, 1024))
    raw = base64.b64decode(url.split(",")[1])
    params: dict[str, Any] = {"model": "gpt-image-2", "prompt": "the product", "size": "1024x1024"}
    client.images.edit(image=[("a.png", raw, "image/png"), ("b.png", raw, "image/png")], **params)
    json_edit(client, images=[{"image_url": url}] * 2, **params)
    multipart, as_json = fake.requests
    assert (multipart.content, as_json.content) == ("multipart", "json")
    assert multipart.n_images_in == as_json.n_images_in == 2
    assert multipart.billed_usd == pytest.approx(as_json.billed_usd) and as_json.billed_usd > 0
    assert multipart.body is not None and multipart.body["image"] == [
        f"<file a.png, {len(raw)} bytes>",
        f"<file b.png, {len(raw)} bytes>",
    ]
    assert as_json.body is not None and as_json.body["images"][0]["image_url"] == url


def test_text_output_tokens_are_reported_and_billed(fake: FakeOpenAI, prices: PriceTable) -> None:
    client = sync_client(fake)
    params: dict[str, Any] = {"model": "gpt-image-2", "size": "1024x1024", "quality": "low"}
    plain = client.images.generate(prompt="a sign", **params)
    text = client.images.generate(prompt="a sign [[text_out:5]]", **params)
    assert plain.usage and plain.usage.output_tokens_details and text.usage
    assert text.usage.output_tokens_details is not None
    assert text.usage.output_tokens_details.text_tokens == 5
    assert text.usage.output_tokens == plain.usage.output_tokens + 5
    assert text.usage.output_tokens_details.image_tokens == plain.usage.output_tokens
    per = prices.pricing("gpt-image-2").per_million_tokens
    rate = getattr(per, "text_output", None) or per.image_output
    first, second = fake.requests
    # The longer prompt is also more text in; the 5 text tokens out are what is new.
    text_in = text.usage.input_tokens - plain.usage.input_tokens
    expected = (5 * rate + text_in * per.text_input) / 1e6
    assert second.billed_usd - first.billed_usd == pytest.approx(expected)
    for record in fake.requests:
        check(record.response, "ImagesResponse", "answer")


def test_the_extracted_schemas_are_the_dated_description() -> None:
    source = DOCUMENT["x-source"]
    assert source["commit"].startswith("f85dbe2") and source["date"] == "2026-08-21"
    assert source["licence"] == "MIT" and "OpenAI" in source["copyright"]
    roots = {
        "CreateImageRequest",
        "CreateImageEditRequest",
        "EditImageBodyJsonParam",
        "ImagesResponse",
        "OpenAIFile",
        "CreateFileRequest",
        "Batch",
        "CreateBatchRequest",
    }
    assert roots <= set(SCHEMAS)
    # Every $ref resolves inside the document.
    text = json.dumps(SCHEMAS)
    for ref in set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', text)):
        assert ref in SCHEMAS, ref
    for name in SCHEMAS:
        Draft202012Validator.check_schema(SCHEMAS[name])
        validator(name)
    with pytest.raises(jsonschema.ValidationError):
        validator("EditImageBodyJsonParam").validate({"prompt": "x", "images": [], "size": "2x2"})
