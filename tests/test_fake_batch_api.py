"""The test server's Files and Batch APIs, driven by the real SDK."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import openai
import pytest
from openai.types import Batch
from PIL import Image

from tests.conftest import FAKE_KEY as KEY
from tests.fakes.images_api import FakeOpenAI

MODEL = "gpt-image-1-mini"
GENERATIONS = "/v1/images/generations"
EDITS = "/v1/images/edits"


@pytest.fixture
def client(fake: FakeOpenAI) -> openai.OpenAI:
    return openai.OpenAI(api_key=KEY, base_url=fake.base_url, max_retries=0)


def line(custom_id: str, prompt: str, url: str = GENERATIONS, **body: Any) -> dict[str, Any]:
    body = {"model": MODEL, "prompt": prompt, "size": "1024x1024", "quality": "low", **body}
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": body}


def jsonl(*lines: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(x).encode() + b"\n" for x in lines)


def submit(client: openai.OpenAI, data: bytes, endpoint: str = GENERATIONS, **kwargs: Any) -> Batch:
    upload = client.files.create(file=("input.jsonl", data), purpose="batch")
    return client.batches.create(
        input_file_id=upload.id,
        endpoint=endpoint,  # type: ignore[arg-type]
        completion_window="24h",
        **kwargs,
    )


def finish(client: openai.OpenAI, batch_id: str) -> tuple[list[str], Batch]:
    """Retrieve until a terminal status (at most 5 times): the statuses seen and the last."""
    seen: list[str] = []
    for _ in range(5):
        batch = client.batches.retrieve(batch_id)
        seen.append(batch.status)
        if batch.status in ("completed", "failed", "expired", "cancelled"):
            break
    return seen, batch


def download(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    assert file_id is not None
    with client.files.with_streaming_response.content(file_id) as response:
        return [json.loads(x) for x in response.iter_lines() if x]


def png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, (10, 20, 30, 0) if mode == "RGBA" else "navy").save(buf, "PNG")
    return buf.getvalue()


def decoded_size(out: dict[str, Any]) -> tuple[int, int]:
    raw = base64.b64decode(out["response"]["body"]["data"][0]["b64_json"], validate=True)
    with Image.open(io.BytesIO(raw)) as img:
        return img.size


def test_generation_batch_runs_bills_half_and_streams_its_files(
    client: openai.OpenAI, fake: FakeOpenAI
) -> None:
    data = jsonl(line("a", "a red chair"), line("b", "x [[moderation]]"), line("c", "a lamp"))
    batch = submit(client, data, metadata={"run": "r1"})
    assert batch.status == "validating" and batch.metadata == {"run": "r1"}
    assert batch.expires_at == batch.created_at + 24 * 3600
    assert batch.request_counts is not None and batch.request_counts.total == 3
    assert [(u.purpose, u.filename, u.bytes) for u in fake.uploads.values()] == [
        ("batch", "input.jsonl", len(data))
    ]
    assert fake.count() == 0  # nothing runs before the batch ends

    seen, batch = finish(client, batch.id)
    assert seen == ["in_progress", "finalizing", "completed"]
    assert batch.completed_at and batch.in_progress_at and batch.finalizing_at
    assert batch.request_counts is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (2, 1)
    assert batch.model == MODEL

    outputs = download(client, batch.output_file_id)
    assert [o["custom_id"] for o in outputs] == ["a", "c"]
    for out in outputs:
        assert out["id"].startswith("batch_req_") and out["error"] is None
        assert out["response"]["status_code"] == 200
        assert out["response"]["request_id"].startswith("req_")
        assert out["response"]["body"]["usage"]["output_tokens"] > 0
        assert decoded_size(out) == (1024, 1024)
    assert batch.usage is not None
    assert batch.usage.output_tokens == sum(
        o["response"]["body"]["usage"]["output_tokens"] for o in outputs
    )
    (error,) = download(client, batch.error_file_id)
    assert error["custom_id"] == "b" and error["response"]["status_code"] == 400
    assert error["response"]["body"]["error"]["code"] == "moderation_blocked"
    assert error["response"]["body"]["error"]["type"] == "image_generation_user_error"

    # The files report the size they stream as; reading them again gives the same lines.
    assert client.files.retrieve(batch.output_file_id or "").bytes == len(
        client.files.content(batch.output_file_id or "").content
    )
    assert download(client, batch.output_file_id) == outputs

    # Billed once, at half the online price of the same requests.
    assert [(r.endpoint, r.status) for r in fake.requests] == [
        ("batch:generations", 200),
        ("batch:generations", 400),
        ("batch:generations", 200),
    ]
    assert fake.images_billed == 2
    batch_usd = fake.billed_usd
    client.batches.retrieve(batch.id)
    assert fake.billed_usd == batch_usd
    for prompt in ("a red chair", "a lamp"):
        client.images.generate(model=MODEL, prompt=prompt, size="1024x1024", quality="low")
    online_usd = fake.billed_usd - batch_usd
    assert batch_usd > 0 and batch_usd == pytest.approx(online_usd / 2)


def test_edits_batch_reads_uploaded_references(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    ref = client.files.create(file=("ref.png", png((1024, 1024))), purpose="vision")
    mask = client.files.create(file=("mask.png", png((1024, 1024), "RGBA")), purpose="vision")
    small = "data:image/png;base64," + base64.b64encode(png((512, 512))).decode()
    data = jsonl(
        line("ref", "in blue", EDITS, images=[{"file_id": ref.id}], mask={"file_id": mask.id}),
        line("url", "in green", EDITS, images=[{"image_url": small}, {"file_id": ref.id}]),
        line("gone", "in red", EDITS, images=[{"file_id": "file-nope"}]),
        line("none", "in grey", EDITS),
    )
    _, batch = finish(client, submit(client, data, EDITS).id)
    assert batch.status == "completed"
    assert [o["custom_id"] for o in download(client, batch.output_file_id)] == ["ref", "url"]
    errors = {e["custom_id"]: e["response"] for e in download(client, batch.error_file_id)}
    assert errors["gone"]["status_code"] == 400
    assert "file-nope" in errors["gone"]["body"]["error"]["message"]
    assert errors["none"]["body"]["error"]["param"] == "images"
    ok = [r for r in fake.requests if r.status == 200]
    assert [(r.endpoint, r.n_images_in, r.has_mask) for r in ok] == [
        ("batch:edits", 1, True),
        ("batch:edits", 2, False),
    ]
    assert {u.purpose for u in fake.uploads.values()} == {"vision", "batch"}


def test_batches_list_newest_first_with_cursor(client: openai.OpenAI) -> None:
    ids = [submit(client, jsonl(line("a", f"p{i}"))).id for i in range(3)]
    page = client.batches.list(limit=2)
    assert [b.id for b in page.data] == [ids[2], ids[1]] and page.has_more
    rest = client.batches.list(limit=2, after=ids[1])
    assert [b.id for b in rest.data] == [ids[0]] and not rest.has_more
    assert [b.id for b in client.batches.list(limit=2)] == ids[::-1]  # auto-paging
    files = client.files.list(purpose="batch")
    assert len(files.data) == 3 and all(f.purpose == "batch" for f in files.data)


def test_cancel_before_finalizing_runs_nothing(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    batch = submit(client, jsonl(line("a", "p1"), line("b", "p2")))
    assert client.batches.retrieve(batch.id).status == "in_progress"
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at
    assert client.batches.cancel(batch.id).status == "cancelling"  # again: unchanged
    done = client.batches.retrieve(batch.id)
    assert done.status == "cancelled" and done.cancelled_at
    assert done.output_file_id is None
    errors = download(client, done.error_file_id)
    assert [(e["custom_id"], e["response"], e["error"]["code"]) for e in errors] == [
        ("a", None, "batch_cancelled"),
        ("b", None, "batch_cancelled"),
    ]
    assert fake.count() == 0 and fake.billed_usd == 0
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(batch.id)


def test_expired_batch_runs_its_first_lines_only(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    fake.expire_batches_after = 1
    seen, batch = finish(client, submit(client, jsonl(*(line(c, c) for c in "abc"))).id)
    assert seen == ["in_progress", "finalizing", "expired"] and batch.expired_at
    assert [o["custom_id"] for o in download(client, batch.output_file_id)] == ["a"]
    errors = download(client, batch.error_file_id)
    assert [(e["custom_id"], e["error"]["code"]) for e in errors] == [
        ("b", "batch_expired"),
        ("c", "batch_expired"),
    ]
    assert "24h" in errors[0]["error"]["message"] and errors[0]["response"] is None
    assert batch.request_counts is not None and batch.request_counts.completed == 1
    assert fake.images_billed == 1


def test_hold_keeps_batches_in_progress(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    fake.hold_batches = True
    batch = submit(client, jsonl(line("a", "p")))
    assert [client.batches.retrieve(batch.id).status for _ in range(4)] == ["in_progress"] * 4
    fake.hold_batches = False
    seen, _ = finish(client, batch.id)
    assert seen == ["finalizing", "completed"]


def test_too_many_requests_fail_validation(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    fake.max_batch_requests = 3
    batch = submit(client, jsonl(*(line(c, c) for c in "abcd")))
    assert batch.status == "validating"
    seen, batch = finish(client, batch.id)
    assert seen == ["failed"] and batch.failed_at
    assert batch.errors is not None and batch.errors.data is not None
    assert [e.code for e in batch.errors.data] == ["too_many_tasks"]
    assert batch.output_file_id is None and batch.error_file_id is None
    assert fake.count() == 0


def test_bad_lines_fail_validation_with_their_line_numbers(client: openai.OpenAI) -> None:
    data = b"\n".join(
        [
            json.dumps(line("a", "p")).encode(),
            b"{not json",
            json.dumps(line("a", "p")).encode(),
            json.dumps({**line("c", "p"), "method": "GET"}).encode(),
            json.dumps(line("d", "p", EDITS)).encode(),
            json.dumps({k: v for k, v in line("", "p").items() if k != "custom_id"}).encode(),
            json.dumps(line("f", "p", model="gpt-image-1.5")).encode(),
        ]
    )
    _, batch = finish(client, submit(client, data).id)
    assert batch.status == "failed" and batch.errors and batch.errors.data
    assert [(e.code, e.line) for e in batch.errors.data] == [
        ("invalid_json_line", 2),
        ("duplicate_custom_id", 3),
        ("invalid_method", 4),
        ("url_mismatch", 5),
        ("missing_required_parameter", 6),
        ("model_mismatch", 7),
    ]


def test_create_rejects_bad_requests(client: openai.OpenAI) -> None:
    good = client.files.create(file=("in.jsonl", jsonl(line("a", "p"))), purpose="batch")
    vision = client.files.create(file=("in.jsonl", jsonl(line("a", "p"))), purpose="vision")
    bad: list[tuple[str, str, str]] = [
        ("file-unknown", GENERATIONS, "24h"),
        (vision.id, GENERATIONS, "24h"),
        (good.id, "/v1/chat/completions", "24h"),
        (good.id, GENERATIONS, "48h"),
    ]
    for file_id, endpoint, window in bad:
        with pytest.raises(openai.BadRequestError):
            client.batches.create(
                input_file_id=file_id,
                endpoint=endpoint,  # type: ignore[arg-type]
                completion_window=window,  # type: ignore[arg-type]
            )
    assert client.batches.list().data == []


def test_files_retrieve_delete_and_key(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    upload = client.files.create(file=("x.jsonl", b'{"a": 1}\n'), purpose="user_data")
    got = client.files.retrieve(upload.id)
    assert (got.filename, got.bytes, got.purpose, got.status) == (
        "x.jsonl",
        9,
        "user_data",
        "processed",
    )
    assert client.files.content(upload.id).content == b'{"a": 1}\n'
    assert client.files.delete(upload.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(upload.id)
    wrong = openai.OpenAI(api_key="sk-wrong", base_url=fake.base_url, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.batches.list()
    with pytest.raises(openai.AuthenticationError):
        wrong.files.create(file=("x.jsonl", b"{}\n"), purpose="batch")
    assert fake.batch_api.calls["files.create"] == 2


def test_noise_lines_are_large_and_streamed_from_one_cached_image(
    client: openai.OpenAI, fake: FakeOpenAI
) -> None:
    data = jsonl(*(line(c, f"{c} [[noise]]") for c in "abc"), line("d", "plain"))
    _, batch = finish(client, submit(client, data).id)
    size = client.files.retrieve(batch.output_file_id or "").bytes
    with client.files.with_streaming_response.content(batch.output_file_id or "") as response:
        lines = [x for x in response.iter_lines() if x]
    assert sum(len(x) + 1 for x in lines) == size
    noisy = [json.loads(x) for x in lines[:3]]
    assert all(len(x) > 3_000_000 for x in lines[:3]) and len(lines[3]) < 100_000
    # Incompressible and identical: one image made once, streamed three times.
    assert len({o["response"]["body"]["data"][0]["b64_json"] for o in noisy}) == 1
    assert decoded_size(noisy[0]) == (1024, 1024)
