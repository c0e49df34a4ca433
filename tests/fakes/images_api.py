"""A real HTTP server speaking OpenAI's Images API wire protocol, for tests and benchmarks.

The real SDK talks to it over 127.0.0.1. It validates requests like the API,
bills usage from configs/pricing.yaml, and injects faults on demand:

- in the prompt: `[[moderation]]` (400 moderation_blocked), `[[status:500x2]]`
  (the first two requests with this prompt get a 500; any status),
  `[[slow:2.5]]` (2.5 s more latency); billed answers that are broken:
  `[[badb64]]` (not base64), `[[truncated]]` (half an image), `[[wrongsize]]`
  (a 512x512 image whatever was asked), `[[drop]]` (the first request with
  this prompt loses its connection halfway through the body);
- `fail_next(status, code, count=, retry_after_s=)`: the next requests fail;
- `insufficient_quota = True`: every request gets 429 insufficient_quota;
- `ipm`: a token bucket of images per minute answering 429 with retry headers;
- `[[noise]]` in the prompt: the image is random noise (incompressible, ~4 MB of
  base64 at 1024x1024), made once per size and format;
- `[[text_out:N]]` in the prompt: the model also wrote N text tokens
  (`usage.output_tokens_details.text_tokens`, counted in `output_tokens`), billed at
  the model's `text_output` price in configs/pricing.yaml, or at `image_output`
  where the table has none.

POST /v1/images/edits takes the multipart form (CreateImageEditRequest) and the
JSON body (EditImageBodyJsonParam: `images: [{"image_url": "data:..."} |
{"file_id": ...}]`, optional `mask`), whose `size` is only auto or a standard
size, as in OpenAI's description (openapi.json of 2026-08-21); both are billed
alike. `moderation` (generations, JSON edits, batch lines) is `low` or `auto`.
The response leaves out `size` when it is not one of the description's enum
(1024x1024, 1024x1536, 1536x1024).

Each `fake.requests` record keeps the sha256 of every input image of an edit
(`images_sha256`, in order), the body as it arrived (`body`: the JSON object;
for multipart, the text fields as sent, each file part as a placeholder string
`<file NAME, N bytes>`, and `image[]` or a repeated field as a list under the bare
name) and the JSON body answered (`response`, with each `b64_json` replaced by
`<base64, N chars>`: the images would be megabytes per request).

It also serves the Files and Batch APIs for image batches (tests/fakes/batch_api.py):
each retrieve of a batch moves it one step (validating, in_progress, finalizing,
completed), executing and billing its lines at (1 - batch_discount) of the online
price, and output and error files are streamed line by line. Batch controls:

- `hold_batches = True`: batches stay in_progress until it is False again;
- `expire_batches_after = N`: a batch about to complete expires instead, with
  only its first N lines executed (the others: batch_expired in the error file);
- `max_batch_requests` (50,000) and `max_batch_file_bytes` (200 MB): beyond them
  the batch fails validation (too_many_tasks, file_too_large);
- `single_model_batches = True`: lines of one batch naming different models fail
  validation (model_mismatch), as the API requires; False to allow them;
- `uploads`: what was sent to POST /v1/files, by file id; `batch_api.calls`:
  Files and Batch API calls by name (e.g. "batches.retrieve"); `batch_api.exchanges`:
  each of those calls with the body it got (POST /v1/files: its form fields, the file
  as a placeholder; POST /v1/batches: its JSON) and the JSON it answered.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.parser
import email.policy
import hashlib
import io
import math
import os
import random
import re
import secrets
import socket
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from assetgen.tasks.config.models import load_model_table, size_problem
from assetgen.tasks.plan.pricing import load_price_table, output_tokens
from assetgen.tasks.renditions.credentials import SigningMaterial, mime_of, sign_original

if TYPE_CHECKING:
    from tests.fakes.batch_api import UploadRecord

_SCRIPT = re.compile(r"\[\[status:(\d{3})x(\d+)\]\]")
_SLOW = re.compile(r"\[\[slow:(\d+(?:\.\d+)?)\]\]")
_TEXT_OUT = re.compile(r"\[\[text_out:(\d+)\]\]")
FORMATS = ("png", "jpeg", "webp")
QUALITIES = ("low", "medium", "high", "auto")
MODERATIONS = ("low", "auto")
# ImagesResponse.size in the description: any other size is left out of a response.
RESPONSE_SIZES = ("1024x1024", "1024x1536", "1536x1024")


@dataclass
class RequestRecord:
    endpoint: str
    model: str | None
    prompt: str
    size: str | None
    quality: str | None
    output_format: str | None
    n: int
    n_images_in: int
    has_mask: bool
    started: float
    status: int = 0
    error_code: str | None = None
    billed_usd: float = 0.0
    finished: float = 0.0
    moderation: str | None = None
    # "json" or "multipart": how the body came (batch lines are JSON).
    content: str = "json"
    # The body as it arrived: the JSON object; for multipart the text fields, each
    # file part as "<file NAME, N bytes>", `image[]` or a repeated field as a list.
    body: dict[str, Any] | None = None
    # The JSON body answered (an error body too), each b64_json as "<base64, N chars>";
    # None for batch lines (their answers are in the batch's output and error files).
    response: dict[str, Any] | None = None
    # The sha256 of each input image of an edit as the server read it (multipart file
    # parts, JSON data URLs or uploaded file ids), in order.
    images_sha256: list[str] = field(default_factory=list)


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        type_: str = "invalid_request_error",
        param: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.type, self.param = status, code, type_, param
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        """The JSON error body the API answers with."""
        body = {"message": str(self), "type": self.type, "param": self.param, "code": self.code}
        return {"error": {**body, **self.extra}}

    def response(self, headers: dict[str, str]) -> JSONResponse:
        return JSONResponse(self.body(), self.status, headers={**headers, **self.headers})


def moderation_error() -> ApiError:
    """What a prompt carrying `[[moderation]]` gets, online and in batches."""
    return ApiError(
        400,
        "Your request was rejected by the safety system. If you believe this is an "
        "error, contact us at help.openai.com and include the request ID.",
        code="moderation_blocked",
        type_="image_generation_user_error",
        extra={"moderation_details": {"categories": ["test"], "flagged": True}},
    )


class FakeOpenAI:
    """The test server; start() it or use it as a context manager."""

    def __init__(
        self,
        *,
        api_key: str = "sk-test-fake",
        ipm: float | None = None,
        burst: float | None = None,
        latency_s: float = 0.0,
        latency_jitter: float = 0.0,
        rate_headers: bool = True,
        seed: int = 0,
        generator: SigningMaterial | None = None,
    ) -> None:
        self.api_key = api_key
        self.ipm = ipm
        self.burst = burst
        self.latency_s = latency_s
        self.latency_jitter = latency_jitter
        self.rate_headers = rate_headers
        # Signs every image it answers with a C2PA manifest as created by a
        # trained algorithm, the way OpenAI's images arrive; None: unsigned.
        self.generator = generator
        self.insufficient_quota = False
        self._seed = seed
        self._lock = threading.Lock()
        self._models = load_model_table()
        self._prices = load_price_table()
        self._images: dict[tuple[str, str, bool], bytes] = {}
        self._b64_images: dict[tuple[str, str, bool, bool], bytes] = {}
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""
        from tests.fakes.batch_api import BatchEndpoints

        self.batch_api = BatchEndpoints(self)
        self.reset()

    # --- control ------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget requests, faults and modes; keep the port and the settings."""
        with self._lock:
            self.requests: list[RequestRecord] = []
            self._faults: deque[ApiError] = deque()
            self._scripted: Counter[str] = Counter()
            self.insufficient_quota = False
            self._tokens: float | None = None
            self._refilled = time.monotonic()
            self._rng = random.Random(self._seed)
            self.hold_batches = False
            self.expire_batches_after: int | None = None
            self.max_batch_requests = 50_000
            self.max_batch_file_bytes = 200 * 1024 * 1024
            self.single_model_batches = True
        self.batch_api.reset()

    def fail_next(
        self,
        status: int,
        code: str | None = None,
        *,
        count: int = 1,
        retry_after_s: float | None = None,
        message: str | None = None,
    ) -> None:
        """The next `count` image requests get this error (not billed)."""
        headers = {}
        if retry_after_s is not None:
            headers = {
                "retry-after-ms": str(int(retry_after_s * 1000)),
                "retry-after": str(math.ceil(retry_after_s)),
            }
        with self._lock:
            for _ in range(count):
                self._faults.append(
                    ApiError(status, message or f"injected {status}", code=code, headers=headers)
                )

    @property
    def uploads(self) -> dict[str, UploadRecord]:
        """What was uploaded to POST /v1/files, by file id, in order: purpose, filename, bytes."""
        return self.batch_api.uploads()

    @property
    def billed_usd(self) -> float:
        with self._lock:
            return sum(r.billed_usd for r in self.requests)

    @property
    def images_billed(self) -> int:
        with self._lock:
            return sum(r.n for r in self.requests if r.billed_usd > 0)

    def count(self, status: int | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.requests if status is None or r.status == status)

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> FakeOpenAI:
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets marked
        # TCP, and without it every response after the first on a keep-alive
        # connection waits ~40 ms behind Nagle's algorithm.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        app = Starlette(
            routes=[
                Route("/v1/images/generations", self._generations, methods=["POST"]),
                Route("/v1/images/edits", self._edits, methods=["POST"]),
                *self.batch_api.routes(),
            ]
        )
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            backlog=4096,
            timeout_keep_alive=30,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            if self._thread is not None:
                self._thread.join(10)
            self._server = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- endpoints ----------------------------------------------------------------------

    async def _generations(self, request: Request) -> Response:
        body = await _json_body(request)
        if body is None:
            return _unparsable().response({})
        return await self._handle(request, "generations", body, [], None)

    async def _edits(self, request: Request) -> Response:
        content_type = request.headers.get("content-type", "")
        if content_type.split(";")[0].strip().lower() == "application/json":
            body = await _json_body(request)
            if body is None:
                return _unparsable().response({})
            return await self._handle(request, "edits", body, [], None, json_edit=True)
        raw = await request.body()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + raw
        )
        fields: dict[str, Any] = {}
        arrived: dict[str, Any] = {}
        images: list[bytes] = []
        mask: bytes | None = None
        if message.is_multipart():
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                if not name:
                    continue
                data = part.get_payload(decode=True) or b""
                filename = part.get_filename()
                if name in ("image", "image[]"):
                    images.append(data)
                elif name == "mask":
                    mask = data
                else:
                    fields[name] = data.decode("utf-8")
                if filename is not None or name in ("image", "image[]", "mask"):
                    value = file_placeholder(filename or name, len(data))
                else:
                    value = data.decode("utf-8", "replace")
                _add_field(arrived, name, value)
        for key in ("n", "output_compression"):
            if key in fields:
                with contextlib.suppress(ValueError):
                    fields[key] = int(fields[key])
        return await self._handle(
            request, "edits", fields, images, mask, content="multipart", arrived=arrived
        )

    async def _handle(
        self,
        request: Request,
        endpoint: str,
        body: dict[str, Any],
        images: list[bytes],
        mask: bytes | None,
        *,
        json_edit: bool = False,
        content: str = "json",
        arrived: dict[str, Any] | None = None,
    ) -> Response:
        prompt = str(body.get("prompt") or "")
        n = body.get("n", 1) if isinstance(body.get("n", 1), int) else 0
        refs = body.get("images") if json_edit else None
        moderation = body.get("moderation")
        record = RequestRecord(
            endpoint=endpoint,
            model=body.get("model"),
            prompt=prompt,
            size=body.get("size"),
            quality=body.get("quality"),
            output_format=body.get("output_format"),
            n=n,
            n_images_in=len(refs) if isinstance(refs, list) else len(images),
            has_mask=mask is not None or (json_edit and body.get("mask") is not None),
            started=time.monotonic(),
            moderation=moderation if isinstance(moderation, str) else None,
            content=content,
            body=body if arrived is None else arrived,
            images_sha256=sha256s(images),
        )
        with self._lock:
            self.requests.append(record)
        headers = {"x-request-id": f"req_{secrets.token_hex(12)}"}
        try:
            self._check_key(request)
            self._arrival_faults(prompt)
            fields = body
            if json_edit:
                fields, images, mask = self.batch_api.json_edit_inputs(body)
                record.images_sha256 = sha256s(images)
            params = self._validate(fields, images, mask)
            headers |= self._take_tokens(max(n, 1))
            await asyncio.sleep(self._latency(prompt))
            payload, billed = self._image_response(params, images)
        except ApiError as e:
            record.status, record.error_code, record.finished = e.status, e.code, time.monotonic()
            record.response = e.body()
            return e.response(headers)
        record.status, record.billed_usd, record.finished = 200, billed, time.monotonic()
        self._break_image(prompt, payload)
        record.response = elided(payload)
        if "[[drop]]" in prompt:
            with self._lock:
                self._scripted["drop:" + prompt] += 1
                first = self._scripted["drop:" + prompt] == 1
            if first:
                record.error_code = "dropped"
                return _Dropped(payload, headers=headers)
        return JSONResponse(payload, headers=headers)

    def _break_image(self, prompt: str, payload: dict[str, Any]) -> None:
        data = payload["data"][0]
        if "[[badb64]]" in prompt:
            data["b64_json"] = "%%% not base64 %%%"
        elif "[[truncated]]" in prompt:
            raw = base64.b64decode(data["b64_json"])
            data["b64_json"] = base64.b64encode(raw[: len(raw) // 2]).decode()
        elif "[[wrongsize]]" in prompt:
            buf = io.BytesIO()
            Image.new("RGB", (512, 512), "gray").save(buf, payload["output_format"].upper())
            data["b64_json"] = base64.b64encode(buf.getvalue()).decode()

    # --- behaviour ----------------------------------------------------------------------

    def _check_key(self, request: Request) -> None:
        sent = request.headers.get("authorization", "")
        if sent != f"Bearer {self.api_key}":
            # The real API echoes part of a wrong key; echo all of it, the
            # worst case for anything that logs or stores this message.
            raise ApiError(
                401,
                f"Incorrect API key provided: {sent.removeprefix('Bearer ')}. You can find "
                "your API key at https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )

    def _arrival_faults(self, prompt: str) -> None:
        if self.insufficient_quota:
            raise ApiError(
                429,
                "You exceeded your current quota, please check your plan and billing details.",
                code="insufficient_quota",
                type_="insufficient_quota",
            )
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        if fault is not None:
            raise fault
        if "[[moderation]]" in prompt:
            raise moderation_error()
        if m := _SCRIPT.search(prompt):
            status, times = int(m[1]), int(m[2])
            with self._lock:
                self._scripted[prompt] += 1
                hit = self._scripted[prompt] <= times
            if hit:
                code = "rate_limit_exceeded" if status == 429 else None
                headers = {"retry-after-ms": "100", "retry-after": "1"} if status == 429 else {}
                raise ApiError(status, f"scripted {status}", code=code, headers=headers)

    def _validate(
        self, body: dict[str, Any], images: list[bytes], mask: bytes | None
    ) -> dict[str, Any]:
        model = body.get("model")
        if not model:
            raise ApiError(400, "Missing required parameter: 'model'.", param="model")
        caps = self._models.get(model)
        if caps is None:
            raise ApiError(
                404,
                f"The model '{model}' does not exist or you do not have access to it.",
                code="model_not_found",
            )
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not 1 <= len(prompt) <= caps.max_prompt_chars:
            raise ApiError(400, "Invalid 'prompt': length out of range.", param="prompt")
        if "response_format" in body:
            raise ApiError(
                400,
                "Unknown parameter: 'response_format'.",
                code="unknown_parameter",
                param="response_format",
            )
        if "input_fidelity" in body and not caps.input_fidelity:
            raise ApiError(400, "input_fidelity is not supported.", param="input_fidelity")
        size = body.get("size") or "auto"
        if size != "auto" and (problem := size_problem(size, caps)):
            raise ApiError(
                400, f"Invalid size '{size}': {problem}", code="invalid_value", param="size"
            )
        quality = body.get("quality") or "auto"
        if quality not in QUALITIES:
            raise ApiError(
                400, f"Invalid quality '{quality}'.", code="invalid_value", param="quality"
            )
        fmt = body.get("output_format") or "png"
        if fmt not in FORMATS:
            raise ApiError(
                400, f"Invalid output_format '{fmt}'.", code="invalid_value", param="output_format"
            )
        compression = body.get("output_compression")
        if compression is not None and (
            fmt == "png" or not isinstance(compression, int) or not 0 <= compression <= 100
        ):
            raise ApiError(400, "Invalid output_compression.", param="output_compression")
        background = body.get("background") or "auto"
        if background not in ("auto", "opaque", "transparent") or (
            background == "transparent" and fmt == "jpeg"
        ):
            raise ApiError(400, "Invalid background.", param="background")
        n = body.get("n", 1)
        if not isinstance(n, int) or not 1 <= n <= caps.max_n:
            raise ApiError(400, "Invalid 'n'.", code="invalid_value", param="n")
        moderation = body.get("moderation")
        if moderation is not None and moderation not in MODERATIONS:
            raise ApiError(
                400,
                f"Invalid value: {moderation!r}. Supported values are: 'low' and 'auto'.",
                code="invalid_value",
                param="moderation",
            )
        inputs: list[tuple[int, int]] = []
        if images or mask is not None:
            if not 1 <= len(images) <= caps.max_reference_images:
                raise ApiError(400, "Invalid 'image': between 1 and 16 images.", param="image")
            for data in images:
                try:
                    with Image.open(io.BytesIO(data)) as img:
                        if img.format not in ("PNG", "JPEG", "WEBP", "MPO"):
                            raise ValueError(img.format)
                        inputs.append(img.size)
                except Exception as e:
                    raise ApiError(400, f"Invalid image file: {e}", param="image") from None
            if mask is not None:
                try:
                    with Image.open(io.BytesIO(mask)) as img:
                        ok = img.format == "PNG" and "A" in img.getbands()
                        same = img.size == inputs[0]
                except Exception:
                    ok = same = False
                if not ok or not same:
                    raise ApiError(
                        400, "Invalid mask: PNG with alpha, same size as the image.", param="mask"
                    )
        return {
            "model": model,
            "prompt": prompt,
            "size": size,
            "quality": quality,
            "output_format": fmt,
            "background": background,
            "n": n,
            "inputs": inputs,
        }

    def _take_tokens(self, images: int) -> dict[str, str]:
        """The images-per-minute bucket: 429 when empty; rate headers either way."""
        if not self.ipm:
            return {}
        capacity = self.burst or max(1.0, self.ipm / 60)
        per_s = self.ipm / 60
        with self._lock:
            now = time.monotonic()
            if self._tokens is None:
                self._tokens = capacity
            self._tokens = min(capacity, self._tokens + (now - self._refilled) * per_s)
            self._refilled = now
            short = images - self._tokens
            if short <= 0:
                self._tokens -= images
            remaining = max(0, int(self._tokens))
        reset_s = max(0.0, (capacity - remaining) / per_s)
        headers = {}
        if self.rate_headers:
            headers = {
                "x-ratelimit-limit-requests": str(int(self.ipm)),
                "x-ratelimit-remaining-requests": str(remaining),
                "x-ratelimit-reset-requests": f"{int(reset_s * 1000)}ms",
            }
        if short > 0:
            wait = short / per_s
            raise ApiError(
                429,
                f"Rate limit reached for images per min (IPM): Limit {int(self.ipm)}. "
                f"Please try again in {int(wait * 1000)}ms.",
                code="rate_limit_exceeded",
                type_="requests",
                headers={
                    **headers,
                    "retry-after-ms": str(max(1, math.ceil(wait * 1000))),
                    "retry-after": str(max(1, math.ceil(wait))),
                },
            )
        return headers

    def _latency(self, prompt: str) -> float:
        with self._lock:
            jitter = self._rng.uniform(-self.latency_jitter, self.latency_jitter)
        extra = float(m[1]) if (m := _SLOW.search(prompt)) else 0.0
        return max(0.0, self.latency_s + jitter) + extra

    def _image_response(
        self, params: dict[str, Any], inputs: list[bytes]
    ) -> tuple[dict[str, Any], float]:
        payload, billed = self._priced(params)
        b64 = self._b64_image(params, payload).decode()
        payload["data"] = [{"b64_json": b64} for _ in range(params["n"])]
        return payload, billed

    def _priced(self, params: dict[str, Any]) -> tuple[dict[str, Any], float]:
        """The response payload with `data` still empty, and the USD it bills online."""
        size = image_size(params)
        quality = "medium" if params["quality"] == "auto" else params["quality"]
        fmt, transparent = params["output_format"], params["background"] == "transparent"
        pricing = self._prices.pricing(params["model"])
        text = math.ceil(len(params["prompt"]) / 4)
        image_in = sum(pricing.image_input.tokens(w, h) for w, h in params["inputs"])
        n = params["n"]
        image_out = math.ceil(output_tokens(pricing, size, quality).expected) * n
        text_out = int(m[1]) if (m := _TEXT_OUT.search(params["prompt"])) else 0
        per = pricing.per_million_tokens
        # Read straight from the table: a price table without the key bills text
        # output at the image output rate.
        text_rate = getattr(per, "text_output", None)
        text_rate = per.image_output if text_rate is None else text_rate
        billed = (
            text * per.text_input
            + image_in * per.image_input
            + image_out * per.image_output
            + text_out * text_rate
        ) / 1e6
        output = image_out + text_out
        payload: dict[str, Any] = {
            "created": int(time.time()),
            "data": [],
            "background": "transparent" if transparent else "opaque",
            "output_format": fmt,
            "quality": quality,
            "usage": {
                "input_tokens": text + image_in,
                "input_tokens_details": {"text_tokens": text, "image_tokens": image_in},
                "output_tokens": output,
                "output_tokens_details": {"image_tokens": image_out, "text_tokens": text_out},
                "total_tokens": text + image_in + output,
            },
        }
        if size in RESPONSE_SIZES:
            payload["size"] = size
        return payload, billed

    def _b64_image(self, params: dict[str, Any], payload: dict[str, Any]) -> bytes:
        """The base64 of the answer's image (cached: the same bytes object every time)."""
        transparent = payload["background"] == "transparent"
        noise = "[[noise]]" in params["prompt"]
        generator = self.generator
        fmt = payload["output_format"]
        key = (image_size(params), fmt, transparent, noise, id(generator) if generator else 0)
        with self._lock:
            cached = self._b64_images.get(key)
        if cached is None:
            maker = self._noise if noise else self._image
            image = maker(image_size(params), fmt, transparent)
            if generator is not None:
                image = sign_original(generator, image, mime_of(fmt))
            cached = base64.b64encode(image)
            with self._lock:
                self._b64_images[key] = cached
        return cached

    def _noise(self, size: str, fmt: str, transparent: bool) -> bytes:
        """Random pixels: an image no encoder can shrink."""
        w, h = (int(v) for v in size.split("x"))
        mode = "RGBA" if transparent else "RGB"
        img = Image.frombytes(mode, (w, h), os.urandom(w * h * len(mode)))
        buf = io.BytesIO()
        options = {"compress_level": 1} if fmt == "png" else {"quality": 80}
        img.save(buf, fmt.upper(), **options)
        return buf.getvalue()

    def _image(self, size: str, fmt: str, transparent: bool) -> bytes:
        key = (size, fmt, transparent)
        with self._lock:
            cached = self._images.get(key)
        if cached is None:
            w, h = (int(v) for v in size.split("x"))
            mode, colour = ("RGBA", (40, 90, 160, 0)) if transparent else ("RGB", (40, 90, 160))
            buf = io.BytesIO()
            options = {"compress_level": 1} if fmt == "png" else {"quality": 80}
            Image.new(mode, (w, h), colour).save(buf, fmt.upper(), **options)
            cached = buf.getvalue()
            with self._lock:
                self._images[key] = cached
        return cached


def sha256s(images: list[bytes]) -> list[str]:
    """What a request record keeps of its input images."""
    return [hashlib.sha256(data).hexdigest() for data in images]


def image_size(params: dict[str, Any]) -> str:
    """The size of the image answered to validated request parameters."""
    return "1024x1024" if params["size"] == "auto" else params["size"]


def elided(payload: dict[str, Any]) -> dict[str, Any]:
    """An images response as recorded: each `b64_json` replaced by `<base64, N chars>`."""
    data = [
        {**item, "b64_json": f"<base64, {len(item['b64_json'])} chars>"}
        if isinstance(item.get("b64_json"), str)
        else dict(item)
        for item in payload.get("data", [])
    ]
    return {**payload, "data": data}


def file_placeholder(filename: str | None, size: int) -> str:
    """What a recorded multipart body shows for a file part."""
    return f"<file {filename}, {size} bytes>"


def _add_field(fields: dict[str, Any], name: str, value: str) -> None:
    """One multipart field into a recorded body: `x[]` and repeated fields become lists."""
    key = name.removesuffix("[]")
    if key in fields:
        current = fields[key]
        fields[key] = [*current, value] if isinstance(current, list) else [current, value]
    else:
        fields[key] = [value] if name.endswith("[]") else value


async def _json_body(request: Request) -> dict[str, Any] | None:
    """The request's JSON object, or None when it is not one."""
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _unparsable() -> ApiError:
    return ApiError(400, "We could not parse the JSON body of your request.")


class _Dropped(JSONResponse):
    """Headers and half the body, then the connection goes."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        half = self.body[: len(self.body) // 2]
        await send({"type": "http.response.body", "body": half, "more_body": True})
        raise ConnectionAbortedError("connection dropped by the test server")
