"""OpenAI's Files and Batch APIs, for image batches, served by FakeOpenAI.

The real SDK uploads a JSONL input file (POST /v1/files), creates a batch
(POST /v1/batches), polls it (GET /v1/batches/{id}) and downloads the output
and error files (GET /v1/files/{id}/content).

- Each retrieve moves a batch one step: validating -> in_progress -> finalizing
  -> completed (the third retrieve answers completed). An input that breaks the
  API's rules is accepted by create and fails on the first retrieve, with
  `errors.data` [{code, message, line}]. `fake.hold_batches` keeps batches
  in_progress; `fake.expire_batches_after = N` makes a batch that would complete
  expire instead, with only its first N lines executed.
- Cancel: cancelling, then cancelled on the next retrieve. Cancelled before
  finalizing, no line runs (all go to the error file as batch_cancelled); from
  finalizing, every line runs. Cancelling a batch in a terminal status answers
  409, as the API does; cancelling one already cancelling returns it unchanged.
- Lines run (and are billed, at (1 - batch_discount) of the online price, in
  `fake.requests`) once, when the batch reaches its terminal status. Only each
  line's outcome is kept; its JSON, images included, is built while the output
  or error file is streamed, so a 500 MB output file never sits in memory.
- Edit lines use the JSON edit body (EditImageBodyJsonParam), whose `size` is
  auto or a standard size only: any other size fails the line with a 400, as
  the API does. Online JSON edits are checked by the same code.
- `exchanges`: every call, with the body it got (POST /v1/files: the form's
  text fields and the file as `<file NAME, N bytes>`; POST /v1/batches: its
  JSON) and the JSON it answered (None for file contents); `received`: the
  (endpoint, body) pairs of the calls that had a body.
- Objects leave out the fields that have no value rather than send null where
  OpenAI's description (openapi.json of 2026-08-21) types them as integer or
  string: `expires_at` of a file (files of purpose batch expire after 30 days,
  as the description says), and a batch's `*_at`, `output_file_id`,
  `error_file_id`, `errors`, `model` and `usage` until they are known.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.parser
import email.policy
import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.images_api import (
    ApiError,
    RequestRecord,
    file_placeholder,
    moderation_error,
    sha256s,
)

if TYPE_CHECKING:
    from tests.fakes.images_api import FakeOpenAI

ENDPOINTS = {"/v1/images/generations": "generations", "/v1/images/edits": "edits"}
PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
TERMINAL = ("completed", "failed", "expired", "cancelled")
DAY_S = 24 * 3600
# FileExpirationAfter in the description: batch files expire after 30 days by default.
BATCH_FILE_TTL_S = 30 * DAY_S
# EditImageBodyJsonParam in the description: its sizes and how many images it takes.
JSON_EDIT_SIZES = ("auto", "1024x1024", "1536x1024", "1024x1536")
JSON_EDIT_MAX_IMAGES = 16
IMAGE_URL_MAX_CHARS = 20_971_520  # ImageRefParam.image_url maxLength
# Stands for the base64 of an image in a line's JSON until it is streamed.
_B64 = f"@@b64-{secrets.token_hex(8)}@@"
_BROKEN = ("[[badb64]]", "[[truncated]]", "[[wrongsize]]")
_SKIPPED = {
    "batch_expired": "This request could not be executed before the completion window of 24h "
    "has expired.",
    "batch_cancelled": "This request was not executed because the batch was cancelled.",
}


@dataclass
class UploadRecord:
    """One POST /v1/files, as `fake.uploads` shows it."""

    id: str
    purpose: str
    filename: str
    bytes: int


@dataclass
class Exchange:
    """One Files or Batch API call, as `batch_api.exchanges` shows it."""

    call: str  # "files.create", "batches.retrieve", ...
    endpoint: str  # "POST /v1/files", "GET /v1/batches/{batch_id}", ...
    status: int = 0
    request: dict[str, Any] | None = None  # the body it got, when it had one
    response: dict[str, Any] | None = None  # the JSON answered; None: not JSON


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    created_at: int
    data: bytes | None = None  # None: a batch's output or error file, made when read
    batch_id: str | None = None
    kind: str = ""  # of a batch's file: "output" or "error"
    size: int | None = None


@dataclass
class Line:
    """An input line that passed validation, and what became of it."""

    number: int
    custom_id: str
    body: dict[str, Any]
    # Decided when the batch reaches its terminal status:
    id: str = ""
    request_id: str = ""
    status: int = 0  # the HTTP status the request got; 0: not executed
    error: dict[str, Any] | None = None  # the error body of a failed request
    params: dict[str, Any] | None = None  # the validated request of a success
    created: int = 0
    skipped: str | None = None  # batch_expired or batch_cancelled


@dataclass
class BatchState:
    id: str
    endpoint: str
    input_file_id: str
    completion_window: str
    metadata: dict[str, str] | None
    created_at: int
    lines: list[Line]
    errors: list[dict[str, Any]]
    model: str | None
    status: str = "validating"
    times: dict[str, int] = field(default_factory=dict)  # in_progress_at, ...
    run_upto: int = 0  # lines to execute when a cancelled batch ends
    output_file_id: str | None = None
    error_file_id: str | None = None
    completed: int = 0
    failed: int = 0
    usage: dict[str, Any] | None = None


class BatchEndpoints:
    """Files and batches of one FakeOpenAI; its controls live on the FakeOpenAI."""

    def __init__(self, fake: FakeOpenAI) -> None:
        self.fake = fake
        self._lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.files: dict[str, StoredFile] = {}
            self.batches: dict[str, BatchState] = {}
            self._uploads: dict[str, UploadRecord] = {}
            self.calls: Counter[str] = Counter()
            self.exchanges: list[Exchange] = []

    @property
    def received(self) -> list[tuple[str, dict[str, Any]]]:
        """(endpoint, body) of each call that came with a body, in order."""
        with self._lock:
            return [(x.endpoint, x.request) for x in self.exchanges if x.request is not None]

    def answered(self, call: str) -> list[dict[str, Any]]:
        """The JSON bodies answered to a call (e.g. "batches.retrieve"), errors included."""
        with self._lock:
            return [x.response for x in self.exchanges if x.call == call and x.response]

    def uploads(self) -> dict[str, UploadRecord]:
        with self._lock:
            return dict(self._uploads)

    def routes(self) -> list[Route]:
        def route(path: str, name: str, handler: Any, method: str) -> Route:
            return Route(path, self._endpoint(name, f"{method} {path}", handler), methods=[method])

        return [
            route("/v1/files", "files.create", self._files_create, "POST"),
            route("/v1/files", "files.list", self._files_list, "GET"),
            route("/v1/files/{file_id}", "files.retrieve", self._files_retrieve, "GET"),
            route("/v1/files/{file_id}", "files.delete", self._files_delete, "DELETE"),
            route("/v1/files/{file_id}/content", "files.content", self._files_content, "GET"),
            route("/v1/batches", "batches.create", self._batches_create, "POST"),
            route("/v1/batches", "batches.list", self._batches_list, "GET"),
            route("/v1/batches/{batch_id}", "batches.retrieve", self._batches_retrieve, "GET"),
            route("/v1/batches/{batch_id}/cancel", "batches.cancel", self._batches_cancel, "POST"),
        ]

    def _endpoint(
        self, name: str, path: str, handler: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            headers = {"x-request-id": f"req_{secrets.token_hex(12)}"}
            exchange = Exchange(name, path)
            request.state.exchange = exchange
            with self._lock:
                self.calls[name] += 1
                self.exchanges.append(exchange)
            try:
                self.fake._check_key(request)
                response = await handler(request)
            except ApiError as e:
                exchange.status, exchange.response = e.status, e.body()
                return e.response(headers)
            exchange.status = response.status_code
            if isinstance(response, JSONResponse):
                exchange.response = json.loads(response.body)
            response.headers.update(headers)
            return response

        return endpoint

    # --- files --------------------------------------------------------------------------

    async def _files_create(self, request: Request) -> Response:
        raw = await request.body()
        content_type = request.headers.get("content-type", "")
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + raw
        )
        data: bytes | None = None
        filename = "upload"
        fields: dict[str, str] = {}
        arrived: dict[str, Any] = {}
        if message.is_multipart():
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                payload = part.get_payload(decode=True) or b""
                if name == "file":
                    data, filename = payload, part.get_filename() or filename
                    arrived[name] = file_placeholder(part.get_filename() or name, len(payload))
                elif name:
                    fields[name] = arrived[name] = payload.decode("utf-8", "replace")
        request.state.exchange.request = arrived
        if data is None:
            raise _missing("file")
        purpose = fields.get("purpose")
        if not purpose:
            raise _missing("purpose")
        if purpose not in PURPOSES:
            raise ApiError(
                400,
                f"'{purpose}' is not one of {list(PURPOSES)} - 'purpose'",
                code="invalid_value",
                param="purpose",
            )
        stored = StoredFile(_id("file-"), filename, purpose, int(time.time()), data, size=len(data))
        with self._lock:
            self.files[stored.id] = stored
            self._uploads[stored.id] = UploadRecord(stored.id, purpose, filename, len(data))
        return JSONResponse(self._file_json(stored))

    async def _files_list(self, request: Request) -> Response:
        purpose = request.query_params.get("purpose")
        with self._lock:
            files = [f for f in self.files.values() if purpose is None or f.purpose == purpose]
        if request.query_params.get("order", "desc") == "desc":
            files.reverse()
        return _page(request, [self._file_json(f) for f in files], 10_000, 10_000)

    async def _files_retrieve(self, request: Request) -> Response:
        return JSONResponse(self._file_json(self._file(request.path_params["file_id"])))

    async def _files_delete(self, request: Request) -> Response:
        stored = self._file(request.path_params["file_id"])
        with self._lock:
            self.files.pop(stored.id, None)
        return JSONResponse({"id": stored.id, "object": "file", "deleted": True})

    async def _files_content(self, request: Request) -> Response:
        stored = self._file(request.path_params["file_id"])
        if stored.data is not None:
            return Response(stored.data, media_type="application/octet-stream")
        lines = self._file_lines(stored)
        return StreamingResponse(
            self._stream(lines),
            media_type="application/octet-stream",
            headers={"content-length": str(self._size(stored))},
        )

    def _file(self, file_id: str) -> StoredFile:
        with self._lock:
            stored = self.files.get(file_id)
        if stored is None:
            raise ApiError(404, f"No such File object: {file_id}", param="id")
        return stored

    def _file_json(self, stored: StoredFile) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "id": stored.id,
            "object": "file",
            "bytes": self._size(stored),
            "created_at": stored.created_at,
            "filename": stored.filename,
            "purpose": stored.purpose,
            "status": "processed",
        }
        if stored.purpose == "batch":
            obj["expires_at"] = stored.created_at + BATCH_FILE_TTL_S
        return obj

    def _size(self, stored: StoredFile) -> int:
        """A batch file's size, counted once from the chunks it streams as."""
        if stored.size is None:
            chunks = (c for line in self._file_lines(stored) for c in self._line_chunks(line))
            stored.size = sum(len(c) for c in chunks)
        return stored.size

    def _file_lines(self, stored: StoredFile) -> list[Line]:
        with self._lock:
            batch = self.batches[stored.batch_id or ""]
            ok = stored.kind == "output"
            return [line for line in batch.lines if (line.status == 200) == ok]

    async def _stream(self, lines: list[Line]) -> AsyncIterator[bytes]:
        for line in lines:
            for chunk in self._line_chunks(line):
                yield chunk
            await asyncio.sleep(0)  # let polls and other downloads through

    def _line_chunks(self, line: Line) -> list[bytes]:
        """One line of an output or error file, in pieces: images are cached bytes."""
        head = {"id": line.id, "custom_id": line.custom_id}
        if line.skipped is not None:
            error = {"code": line.skipped, "message": _SKIPPED[line.skipped]}
            return [_jsonl({**head, "response": None, "error": error})]
        if line.status != 200 or line.params is None:
            response = {"status_code": line.status, "request_id": line.request_id}
            return [_jsonl({**head, "response": {**response, "body": line.error}, "error": None})]
        params = line.params
        payload, _ = self.fake._priced(params)
        payload["created"] = line.created
        b64 = self.fake._b64_image(params, payload)
        response = {"status_code": 200, "request_id": line.request_id, "body": payload}
        if any(d in params["prompt"] for d in _BROKEN):
            payload["data"] = [{"b64_json": b64.decode()} for _ in range(params["n"])]
            self.fake._break_image(params["prompt"], payload)
            return [_jsonl({**head, "response": response, "error": None})]
        payload["data"] = [{"b64_json": _B64} for _ in range(params["n"])]
        parts = json.dumps({**head, "response": response, "error": None}).split(_B64)
        chunks = [parts[0].encode()]
        for part in parts[1:]:
            chunks += [b64, part.encode()]
        chunks[-1] += b"\n"
        return chunks

    # --- batches ------------------------------------------------------------------------

    async def _batches_create(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            request.state.exchange.request = body
        else:
            raise ApiError(400, "We could not parse the JSON body of your request.")
        for name in ("input_file_id", "endpoint", "completion_window"):
            if not body.get(name):
                raise _missing(name)
        endpoint, window = body["endpoint"], body["completion_window"]
        if endpoint not in ENDPOINTS:
            raise ApiError(
                400,
                f"Invalid value for 'endpoint': {endpoint!r}; this test server batches "
                f"{sorted(ENDPOINTS)} only.",
                code="invalid_value",
                param="endpoint",
            )
        if window != "24h":
            raise ApiError(
                400,
                f"Invalid value for 'completion_window': {window!r}; only '24h' is supported.",
                code="invalid_value",
                param="completion_window",
            )
        metadata = body.get("metadata")
        if metadata is not None and not (
            isinstance(metadata, dict)
            and len(metadata) <= 16
            and all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
        ):
            raise ApiError(400, "Invalid 'metadata'.", code="invalid_value", param="metadata")
        with self._lock:
            stored = self.files.get(body["input_file_id"])
        if stored is None or stored.data is None:
            raise ApiError(
                400, f"No such File object: {body['input_file_id']}", param="input_file_id"
            )
        if stored.purpose != "batch":
            raise ApiError(
                400,
                f"The input file must have purpose 'batch', not '{stored.purpose}'.",
                code="invalid_value",
                param="input_file_id",
            )
        lines, errors, model = self._parse(stored.data, endpoint)
        state = BatchState(
            id=_id("batch_"),
            endpoint=endpoint,
            input_file_id=stored.id,
            completion_window=window,
            metadata=metadata,
            created_at=int(time.time()),
            lines=lines,
            errors=errors,
            model=model,
        )
        with self._lock:
            self.batches[state.id] = state
            return JSONResponse(self._batch_json(state))

    def _parse(
        self, data: bytes, endpoint: str
    ) -> tuple[list[Line], list[dict[str, Any]], str | None]:
        """The input's lines, and the errors that make the batch fail validation."""
        fake = self.fake
        if len(data) > fake.max_batch_file_bytes:
            message = f"The input file is larger than {fake.max_batch_file_bytes} bytes."
            return [], [_error("file_too_large", message)], None
        lines: list[Line] = []
        errors: list[dict[str, Any]] = []
        seen: set[str] = set()
        models: list[str] = []
        count = 0
        for number, raw in enumerate(data.split(b"\n"), 1):
            if not raw.strip():
                continue
            count += 1
            try:
                obj = json.loads(raw)
            except ValueError:
                obj = None
            if not isinstance(obj, dict):
                message = "This line is not parseable as valid JSON."
                errors.append(_error("invalid_json_line", message, number))
                continue
            custom_id, body = obj.get("custom_id"), obj.get("body")
            if not isinstance(custom_id, str) or not custom_id:
                message = "Missing required parameter: 'custom_id'."
                errors.append(_error("missing_required_parameter", message, number, "custom_id"))
            elif custom_id in seen:
                message = (
                    "The custom_id for this request is a duplicate of another request. The "
                    "custom_id parameter must be unique for each request in a batch."
                )
                errors.append(_error("duplicate_custom_id", message, number, "custom_id"))
            elif obj.get("method") != "POST":
                message = f"Invalid method {obj.get('method')!r}: batch requests must be POST."
                errors.append(_error("invalid_method", message, number, "method"))
            elif obj.get("url") != endpoint:
                message = (
                    f"The URL provided for this request does not match the batch endpoint "
                    f"{endpoint}."
                )
                errors.append(_error("url_mismatch", message, number, "url"))
            elif not isinstance(body, dict):
                message = "Missing required parameter: 'body'."
                errors.append(_error("missing_required_parameter", message, number, "body"))
            else:
                model = body.get("model")
                if isinstance(model, str):
                    if fake.single_model_batches and models and model != models[0]:
                        message = (
                            f"The model {model!r} does not match the model {models[0]!r} of "
                            "the other requests: a batch may only use one model."
                        )
                        errors.append(_error("model_mismatch", message, number, "body.model"))
                    models.append(model)
                lines.append(Line(number, custom_id, body))
            if isinstance(custom_id, str):
                seen.add(custom_id)
        if not count:
            errors.append(_error("empty_file", "The input file is empty."))
        if count > fake.max_batch_requests:
            message = (
                f"The input file has more than {fake.max_batch_requests} requests, the "
                "maximum for one batch."
            )
            errors.insert(0, _error("too_many_tasks", message))
        return lines, errors, models[0] if models else None

    async def _batches_list(self, request: Request) -> Response:
        with self._lock:
            newest_first = [self._batch_json(b) for b in reversed(self.batches.values())]
        return _page(request, newest_first, 20, 100)

    async def _batches_retrieve(self, request: Request) -> Response:
        with self._lock:
            state = self._batch(request.path_params["batch_id"])
            self._step(state)
            return JSONResponse(self._batch_json(state))

    async def _batches_cancel(self, request: Request) -> Response:
        with self._lock:
            state = self._batch(request.path_params["batch_id"])
            if state.status in TERMINAL:
                raise ApiError(
                    409,
                    f"Cannot cancel a batch with status '{state.status}'.",
                    code="batch_not_cancellable",
                )
            if state.status != "cancelling":
                state.run_upto = len(state.lines) if state.status == "finalizing" else 0
                self._move(state, "cancelling")
            return JSONResponse(self._batch_json(state))

    def _batch(self, batch_id: str) -> BatchState:
        state = self.batches.get(batch_id)
        if state is None:
            raise ApiError(404, f"No batch found with id '{batch_id}'.", param="batch_id")
        return state

    def _step(self, state: BatchState) -> None:
        """What one retrieve does to a batch."""
        status, fake = state.status, self.fake
        if status == "validating":
            self._move(state, "failed" if state.errors else "in_progress")
        elif status == "in_progress" and not fake.hold_batches:
            self._move(state, "finalizing")
        elif status == "finalizing":
            upto = fake.expire_batches_after
            if upto is None:
                self._finish(state, len(state.lines), "batch_expired")
                self._move(state, "completed")
            else:
                self._finish(state, max(0, upto), "batch_expired")
                self._move(state, "expired")
        elif status == "cancelling":
            self._finish(state, state.run_upto, "batch_cancelled")
            self._move(state, "cancelled")

    def _move(self, state: BatchState, status: str) -> None:
        state.status = status
        state.times[f"{status}_at"] = int(time.time())

    def _finish(self, state: BatchState, upto: int, skipped: str) -> None:
        """Run (and bill) the first `upto` lines; the others were never executed."""
        usage = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
        for index, line in enumerate(state.lines):
            line.id = _id("batch_req_")
            if index < upto:
                if tokens := self._execute(state, line):
                    for key in usage:
                        usage[key] += tokens[key]
            else:
                line.skipped = skipped
        state.completed = sum(1 for line in state.lines if line.status == 200)
        state.failed = len(state.lines) - state.completed
        state.usage = {
            "input_tokens": usage["input_tokens"],
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": usage["output_tokens"],
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage["total_tokens"],
        }
        now = int(time.time())
        if state.completed:
            out = StoredFile(
                _id("file-"), f"{state.id}_output.jsonl", "batch_output", now, None, state.id
            )
            out.kind = "output"
            self.files[out.id] = out
            state.output_file_id = out.id
        if state.failed:
            err = StoredFile(
                _id("file-"), f"{state.id}_error.jsonl", "batch_output", now, None, state.id
            )
            err.kind = "error"
            self.files[err.id] = err
            state.error_file_id = err.id

    def _execute(self, state: BatchState, line: Line) -> dict[str, Any] | None:
        """Decide one line's outcome and bill it; the usage of a success."""
        fake, body = self.fake, line.body
        kind = ENDPOINTS[state.endpoint]
        prompt = str(body.get("prompt") or "")
        n, refs = body.get("n", 1), body.get("images")
        moderation = body.get("moderation")
        record = RequestRecord(
            endpoint=f"batch:{kind}",
            model=body.get("model"),
            prompt=prompt,
            size=body.get("size"),
            quality=body.get("quality"),
            output_format=body.get("output_format"),
            n=n if isinstance(n, int) else 0,
            n_images_in=len(refs) if kind == "edits" and isinstance(refs, list) else 0,
            has_mask=kind == "edits" and body.get("mask") is not None,
            started=time.monotonic(),
            moderation=moderation if isinstance(moderation, str) else None,
            body=body,
        )
        line.request_id = f"req_{secrets.token_hex(12)}"
        line.created = int(time.time())
        try:
            images: list[bytes] = []
            mask: bytes | None = None
            fields = body
            if kind == "edits":
                fields, images, mask = self.json_edit_inputs(body)
                record.images_sha256 = sha256s(images)
            if "[[moderation]]" in prompt:
                raise moderation_error()
            params = fake._validate(fields, images, mask)
            payload, billed = fake._priced(params)
        except ApiError as e:
            line.status, line.error = e.status, e.body()
            record.status, record.error_code = e.status, e.code
            usage = None
        else:
            line.status, line.params = 200, params
            discount = fake._prices.pricing(params["model"]).batch_discount
            record.status, record.billed_usd = 200, billed * (1 - discount)
            usage = payload["usage"]
        record.finished = time.monotonic()
        with fake._lock:
            fake.requests.append(record)
        return usage

    def json_edit_inputs(
        self, body: dict[str, Any]
    ) -> tuple[dict[str, Any], list[bytes], bytes | None]:
        """A JSON edit body (EditImageBodyJsonParam), online or a batch line, checked as the
        API checks it: its other fields, and the bytes of its images and mask."""
        refs = body.get("images")
        if not isinstance(refs, list) or not refs:
            raise _missing("images")
        if len(refs) > JSON_EDIT_MAX_IMAGES:
            raise ApiError(
                400,
                f"Invalid 'images': array too long. Expected an array with maximum length "
                f"{JSON_EDIT_MAX_IMAGES}, but got an array with length {len(refs)} instead.",
                code="array_above_max_length",
                param="images",
            )
        size = body.get("size")
        if size is not None and size not in JSON_EDIT_SIZES:
            supported = ", ".join(repr(s) for s in JSON_EDIT_SIZES)
            raise ApiError(
                400,
                f"Invalid value: {size!r}. Supported values are: {supported}.",
                code="invalid_value",
                param="size",
            )
        images = [self._resolve(ref, "images") for ref in refs]
        mask = self._resolve(body["mask"], "mask") if body.get("mask") is not None else None
        fields = {k: v for k, v in body.items() if k not in ("images", "mask")}
        return fields, images, mask

    def _resolve(self, ref: Any, param: str) -> bytes:
        """The bytes of an image given as {"file_id": ...} or {"image_url": "data:..."}."""
        if isinstance(ref, dict) and "file_id" in ref and "image_url" in ref:
            raise ApiError(
                400,
                f"Invalid '{param}': provide exactly one of 'image_url' or 'file_id'.",
                code="invalid_value",
                param=param,
            )
        if isinstance(ref, dict) and isinstance(ref.get("file_id"), str):
            stored = self.files.get(ref["file_id"])
            if stored is None or stored.data is None:
                raise ApiError(400, f"No such File object: {ref['file_id']}", param=param)
            return stored.data
        if isinstance(ref, dict) and isinstance(ref.get("image_url"), str):
            url = ref["image_url"]
            if len(url) > IMAGE_URL_MAX_CHARS:
                raise ApiError(
                    400,
                    f"Invalid '{param}': string too long. Expected a string with maximum length "
                    f"{IMAGE_URL_MAX_CHARS}, but got a string with length {len(url)} instead.",
                    code="string_above_max_length",
                    param=param,
                )
            head, sep, data = url.partition(",")
            if url.startswith("data:") and head.endswith(";base64") and sep:
                try:
                    return base64.b64decode(data, validate=True)
                except binascii.Error:
                    pass
            raise ApiError(
                400,
                f"Invalid '{param}': this test server reads base64 data URLs only.",
                code="invalid_image_url",
                param=param,
            )
        raise ApiError(
            400,
            f"Invalid '{param}': expected an object with 'file_id' or 'image_url'.",
            code="invalid_value",
            param=param,
        )

    def _batch_json(self, state: BatchState) -> dict[str, Any]:
        times = {
            f"{s}_at": state.times.get(f"{s}_at")
            for s in (
                "in_progress",
                "finalizing",
                "completed",
                "failed",
                "expired",
                "cancelling",
                "cancelled",
            )
        }
        errors = {"object": "list", "data": state.errors} if state.status == "failed" else None
        obj = {
            "id": state.id,
            "object": "batch",
            "endpoint": state.endpoint,
            "model": state.model,
            "errors": errors,
            "input_file_id": state.input_file_id,
            "completion_window": state.completion_window,
            "status": state.status,
            "output_file_id": state.output_file_id,
            "error_file_id": state.error_file_id,
            "created_at": state.created_at,
            "expires_at": state.created_at + DAY_S,
            **times,
            "request_counts": {
                "total": len(state.lines),
                "completed": state.completed,
                "failed": state.failed,
            },
            "usage": state.usage,
        }
        # No value: left out, where the description has no null for it.
        return {k: v for k, v in obj.items() if v is not None} | {"metadata": state.metadata}


def _id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def _jsonl(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def _missing(param: str) -> ApiError:
    return ApiError(
        400,
        f"Missing required parameter: '{param}'.",
        code="missing_required_parameter",
        param=param,
    )


def _error(code: str, message: str, line: int | None = None, param: str | None = None) -> dict:
    return {"code": code, "message": message, "param": param, "line": line}


def _page(request: Request, items: list[dict[str, Any]], default: int, most: int) -> Response:
    """A cursor page: `limit` items after the item whose id is `after`."""
    try:
        limit = int(request.query_params.get("limit", default))
    except ValueError:
        limit = 0
    if not 1 <= limit <= most:
        raise ApiError(
            400, f"Invalid 'limit': between 1 and {most}.", code="invalid_value", param="limit"
        )
    start = 0
    if after := request.query_params.get("after"):
        ids = [item["id"] for item in items]
        start = ids.index(after) + 1 if after in ids else len(items)
    page = items[start : start + limit]
    return JSONResponse(
        {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": start + limit < len(items),
        }
    )
