"""The HTTP face of :class:`~smic_fast.serve.service.Service`: a FastAPI app (OpenAPI schema at
``/openapi.json``) that uvicorn serves (``smic serve``) and Ray Serve mounts (``serve.ray``).

Endpoints (docs/serve.md has a curl example for each): ``POST /v1/encode``, ``POST /v1/decode``,
``POST /v1/embeddings`` (OpenAI's shape), ``GET /v1/collections``,
``GET /v1/collections/{name}``, ``POST /v1/collections/{name}/items``,
``GET /v1/collections/{name}/items/{id}``, ``POST /v1/collections/{name}/search``,
``GET /healthz``, ``GET /readyz``, ``GET /metrics``.

Every refusal is a JSON body ``{"error": {"code": ..., "message": ...}}`` with a 4xx/5xx status.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from starlette.exceptions import HTTPException as StarletteHTTPException

from .metrics import CONTENT_TYPE_LATEST, Metrics
from .service import ServeConfig, Service, ServiceError, b64, b64decode, embedding_rows

__all__ = ["create_app"]

log = logging.getLogger("smic_fast.serve")

_OPEN_PATHS = ("/healthz", "/readyz")  # no token needed: probes
_IMAGE_TYPES = ("image/", "application/octet-stream")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _error_body(status: int, code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "status": status}}).encode()


def error_response(exc: ServiceError) -> JSONResponse:
    return JSONResponse({"error": {"code": exc.code, "message": exc.message, "status": exc.status}},
                        status_code=exc.status, headers=exc.headers)


class _Gate:
    """ASGI middleware, outermost: bearer-token check (constant-time; the token is never
    logged), refusal while draining, body-size limit from Content-Length, and the metrics of
    every request by route and status."""

    def __init__(self, app: ASGIApp, service: Service, metrics: Metrics) -> None:
        self.app = app
        self.service = service
        self.metrics = metrics
        token = service.config.token
        self._token = None if token is None else f"Bearer {token}".encode()

    async def _refuse(self, send: Send, status: int, code: str, message: str,
                      headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        body = _error_body(status, code, message)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()), *headers]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        path: str = scope["path"]
        try:
            headers = dict(scope["headers"])
            if self._token is not None and path not in _OPEN_PATHS:
                given = headers.get(b"authorization", b"")
                if not hmac.compare_digest(given, self._token):
                    await self._refuse(sending, 401, "unauthorized", "a valid bearer token is required",
                                       ((b"www-authenticate", b"Bearer"),))
                    return
            if self.service.draining and path not in _OPEN_PATHS and path != "/metrics":
                await self._refuse(sending, 503, "draining", "the server is shutting down; retry elsewhere",
                                   ((b"retry-after", b"1"),))
                return
            length = headers.get(b"content-length")
            limit = self.service.config.max_body_bytes
            if length is not None and (not length.isdigit() or int(length) > limit):
                await self._refuse(sending, 413, "body_too_large", f"the body is over {limit} bytes")
                return
            if scope["method"] == "POST" and headers.get(b"content-type", b"").startswith((b"image/", b"application/octet")):
                try:  # a raw image while the image stage is full: refused before routing or reading
                    self.service.check_image_room(1)
                except ServiceError as exc:
                    await self._refuse(sending, exc.status, exc.code, exc.message,
                                       tuple((k.lower().encode(), v.encode()) for k, v in exc.headers.items()))
                    return
            encoding = headers.get(b"content-encoding", b"identity").lower()
            if encoding not in (b"identity", b""):
                await self._refuse(sending, 415, "unsupported_encoding",
                                   "compressed request bodies are not accepted")
                return
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            self.metrics.request(f"{scope.get('method', '')} {endpoint}", status[0], time.perf_counter() - started)


async def _body(request: Request, limit: int) -> bytes:
    """The body, read up to `limit` bytes (413 past it, also without a Content-Length)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ServiceError(413, "body_too_large", f"the body is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _json(request: Request, service: Service) -> dict[str, Any]:
    body = await _body(request, service.config.max_body_bytes)
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ServiceError(400, "bad_json", f"the body is not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ServiceError(400, "bad_request", "the body must be a JSON object")
    return value


def _flag(body: dict[str, Any], name: str, default: bool = False) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise ServiceError(400, "bad_request", f"{name} must be true or false")
    return value


def _int(body: dict[str, Any], name: str, default: int | None, lo: int, hi: int) -> int | None:
    value = body.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ServiceError(400, "bad_request", f"{name} must be an integer in [{lo}, {hi}]")
    return value


def _vector(row: np.ndarray, fmt: str) -> Any:
    return b64(np.ascontiguousarray(row, "<f4").tobytes()) if fmt == "base64" else row.tolist()


def _format(body: dict[str, Any]) -> str:
    fmt: str = body.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        raise ServiceError(400, "bad_request", "encoding_format must be \"float\" or \"base64\"")
    return fmt


def _ms(seconds: float) -> str:
    return f"{1000 * seconds:.3f}"


_EMBEDDINGS_ITEMS: dict[str, Any] = {
    "type": "array", "items": {"oneOf": [{"type": "array", "items": {"type": "number"}},
                                         {"type": "string", "format": "byte"}]},
    "description": "embeddings of the dictionary's dimension (lists of numbers, or base64 of little-endian float32)"}
_ENCODE_SCHEMA: dict[str, Any] = {"requestBody": {"content": {
    "application/json": {"schema": {"type": "object", "properties": {
        "embeddings": _EMBEDDINGS_ITEMS,
        "images": {"type": "array", "items": {"type": "string"},
                   "description": "base64 images or data URIs (JPEG, PNG, WebP...)"},
        "collection": {"type": "string", "description": "code with this collection's dictionary"},
        "return_cosine": {"type": "boolean"}, "return_embedding": {"type": "boolean"},
        "encoding_format": {"enum": ["float", "base64"]}}}},
    "image/*": {"schema": {"type": "string", "format": "binary"}}}}}
_DECODE_SCHEMA = {"requestBody": {"content": {"application/json": {"schema": {"type": "object", "required": ["codes"],
    "properties": {"codes": {"type": "array", "items": {"type": "string", "format": "byte"}},
                   "collection": {"type": "string"}, "encoding_format": {"enum": ["float", "base64"]}}}}}}}
_EMBEDDINGS_SCHEMA = {"requestBody": {"content": {"application/json": {"schema": {
    "type": "object", "required": ["input"], "properties": {
        "input": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
                  "description": "image data URIs (data:image/png;base64,...) or texts (with --text-model)"},
        "model": {"type": "string"}, "encoding_format": {"enum": ["float", "base64"]},
        "return_codes": {"type": "boolean", "description": "extension: each item's smic code and bits too"},
        "collection": {"type": "string"}}}}}}}
_ITEMS_SCHEMA = {"requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {
    "embeddings": _EMBEDDINGS_ITEMS,
    "images": {"type": "array", "items": {"type": "string"}},
    "ids": {"type": "array", "items": {"type": "string"}, "description": "default: the next positions"}}}},
    "image/*": {"schema": {"type": "string", "format": "binary"}}}}}
_SEARCH_SCHEMA = {"requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {
    "embedding": {"type": "array", "items": {"type": "number"}}, "image": {"type": "string"},
    "text": {"type": "string"}, "k": {"type": "integer", "default": 10}, "nprobe": {"type": "integer"}}}}}}}


def create_app(config: ServeConfig, *, service: Service | None = None) -> FastAPI:
    """The FastAPI app of a service built from `config`. Its lifespan starts the service
    (load, warm up: ``/readyz`` turns 200) and, on shutdown, drains it (``/readyz`` 503,
    queued work finishes) and stops its threads."""
    metrics = Metrics()
    service = service or Service(config, metrics)
    service.metrics = metrics
    metrics.track_depth("coder", lambda: service.coder.depth)
    metrics.ready.set_function(lambda: 1.0 if service.ready and not service.draining else 0.0)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        if service.image_model is not None:
            image_model = service.image_model
            metrics.track_depth("image_model", lambda: image_model.depth)
        try:
            yield
        finally:
            await service.drain()
            service.close()

    from ..version import __version__

    app = FastAPI(title="smic serve", version=__version__, lifespan=lifespan,
                  description="Images or embeddings in, SMIC codes out; collections appended durably.")
    app.state.service = service
    app.state.metrics = metrics

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(ServiceError(exc.status_code, code, str(exc.detail), dict(exc.headers or {})))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(ServiceError(422, "bad_request", str(exc.errors())[:1000]))

    async def items_of(request: Request, body: dict[str, Any] | None, dim: int
                       ) -> tuple[np.ndarray, list[int] | None, dict[str, float]]:
        """Unit rows from a raw image body, or a JSON body's embeddings or images."""
        timing: dict[str, float] = {}
        if body is None:  # one raw image
            service.check_image_room(1)  # before the upload is read
            data = await _body(request, config.max_body_bytes)
            if not data:
                raise ServiceError(400, "bad_request", "empty body")
            started = time.perf_counter()
            rows, pixels = await service.embed_images([("body", data)])
            timing["inference"] = time.perf_counter() - started
        elif "embeddings" in body and "images" in body:
            raise ServiceError(400, "bad_request", "give embeddings or images, not both")
        elif "embeddings" in body:
            values = body["embeddings"]
            if isinstance(values, list):
                service._check_items(len(values))
            rows, pixels = embedding_rows(values, dim), None
        elif "images" in body:
            images = body["images"]
            if not isinstance(images, list) or not images:
                raise ServiceError(400, "bad_request", "images must be a non-empty list of base64 strings")
            service._check_items(len(images))
            blobs = [(f"images[{i}]", b64decode(v, f"images[{i}]")) for i, v in enumerate(images)]
            started = time.perf_counter()
            rows, pixels = await service.embed_images(blobs)
            timing["inference"] = time.perf_counter() - started
        else:
            raise ServiceError(400, "bad_request", "the body needs \"embeddings\" or \"images\"")
        if rows.shape[1] != dim:
            raise ServiceError(400, "bad_dimension", f"the model gives dimension {rows.shape[1]}, the dictionary {dim}")
        return rows, pixels, timing

    def is_image(request: Request) -> bool:
        kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if kind.startswith(_IMAGE_TYPES):
            return True
        if kind not in ("application/json", ""):
            raise ServiceError(415, "unsupported_media_type", f"send application/json or an image, not {kind}")
        return False

    # ------------------------------------------------------------------ coding
    @app.post("/v1/encode", openapi_extra=_ENCODE_SCHEMA, summary="images or embeddings -> codes")
    async def encode(request: Request) -> Response:
        """Code one raw image body, or a JSON batch of base64 images or embeddings: each item's
        code (base64), its bits and, on request, its decoded cosine to the input and the
        decoded embedding."""
        body = None if is_image(request) else await _json(request, service)
        params = body or {}
        collection = params.get("collection", request.query_params.get("collection"))
        # the served dictionary is at hand; a collection's may need its file read (off the loop)
        dictionary = service.dictionary_for(None) if collection is None else await service.read(
            service.dictionary_for, collection)
        rows, _, timing = await items_of(request, body, dictionary.dim)
        started = time.perf_counter()
        coded = await service.code(dictionary, rows)
        timing["coding"] = time.perf_counter() - started
        fmt = _format(params)
        want_cosine = _flag(params, "return_cosine") or request.query_params.get("return_cosine") == "true"
        want_embedding = _flag(params, "return_embedding")
        items = []
        for code, cosine in coded:
            item: dict[str, Any] = {"code": b64(code), "bits": 8 * len(code)}
            if want_cosine:
                item["cosine"] = cosine
            if want_embedding:
                item["embedding"] = _vector(dictionary.decode(code), fmt)
            items.append(item)
        return JSONResponse({"dictionary": dictionary.hash, "dim": dictionary.dim, "items": items},
                            headers=_timing_headers(timing))

    @app.post("/v1/decode", openapi_extra=_DECODE_SCHEMA, summary="codes -> embeddings")
    async def decode(request: Request) -> Response:
        """Decode base64 codes (made by /v1/encode with the same dictionary) to unit embeddings."""
        body = await _json(request, service)
        codes = body.get("codes")
        if not isinstance(codes, list) or not codes:
            raise ServiceError(400, "bad_request", "codes must be a non-empty list of base64 strings")
        service._check_items(len(codes))
        dictionary = await service.read(service.dictionary_for, body.get("collection"))
        raw = [b64decode(c, f"codes[{i}]") for i, c in enumerate(codes)]
        fmt = _format(body)
        rows = service.decode(dictionary, raw)
        return JSONResponse({"dictionary": dictionary.hash, "dim": dictionary.dim,
                             "embeddings": [_vector(row, fmt) for row in rows]})

    @app.post("/v1/embeddings", openapi_extra=_EMBEDDINGS_SCHEMA, summary="OpenAI-shaped embeddings")
    async def embeddings(request: Request) -> Response:
        """OpenAI's ``/v1/embeddings`` shape: ``input`` holds image data URIs (or texts, with a
        text model); ``return_codes: true`` (an extension) adds each item's smic code and bits."""
        body = await _json(request, service)
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) for i in inputs):
            raise ServiceError(400, "bad_request", "input must be a string or a non-empty list of strings "
                                                   "(image data URIs, or texts)")
        service._check_items(len(inputs))
        fmt = _format(body)
        images = [i for i, v in enumerate(inputs) if v.startswith("data:")]
        texts = [i for i, v in enumerate(inputs) if not v.startswith("data:")]
        rows: np.ndarray | None = None
        dim = None
        if images:
            blobs = [(f"input[{i}]", b64decode(inputs[i], f"input[{i}]")) for i in images]
            found, _ = await service.embed_images(blobs)
            rows = np.empty((len(inputs), found.shape[1]), np.float32)
            rows[images] = found
            dim = found.shape[1]
        if texts:
            found = await service.embed_texts([inputs[i] for i in texts])
            if rows is None:
                rows = np.empty((len(inputs), found.shape[1]), np.float32)
            elif found.shape[1] != dim:
                raise ServiceError(400, "bad_request", "the text and image towers give different dimensions")
            rows[texts] = found
        assert rows is not None
        data = [{"object": "embedding", "index": i, "embedding": _vector(row, fmt)} for i, row in enumerate(rows)]
        if _flag(body, "return_codes"):
            dictionary = await service.read(service.dictionary_for, body.get("collection"))
            coded = await service.code(dictionary, rows)
            for entry, (code, cosine) in zip(data, coded):
                entry["smic_code"] = b64(code)
                entry["smic_bits"] = 8 * len(code)
                entry["smic_cosine"] = cosine
        return JSONResponse({"object": "list", "data": data, "model": service.model_name or body.get("model"),
                             "usage": {"prompt_tokens": 0, "total_tokens": 0}})

    # ------------------------------------------------------------------ collections
    @app.get("/v1/collections", summary="the served collections")
    async def collections() -> Response:
        return JSONResponse({"collections": service.collection_names()})

    @app.get("/v1/collections/{name}", summary="one collection's info (rates from the bytes on disk)")
    async def collection_info(name: str) -> Response:
        return JSONResponse(await service.read(service.info, name))

    @app.post("/v1/collections/{name}/items", openapi_extra=_ITEMS_SCHEMA, summary="encode and append durably")
    async def append(name: str, request: Request) -> Response:
        """Encode and append items (a raw image body with ``?id=``, or JSON embeddings or images
        with optional ``ids``). The reply comes once the items are on disk (fsync'd): each
        item's id, code and bits. A collection that does not exist is created (with the
        server's --dictionary)."""
        body = None if is_image(request) else await _json(request, service)
        served = await service.read(service._open, name, True)
        dim = served.collection.dim if served.collection is not None else (
            service.dictionary.dim if service.dictionary is not None else 0)
        if body is None:
            ids: Any = [request.query_params["id"]] if "id" in request.query_params else None
        else:
            ids = body.get("ids")
            if ids is not None and not isinstance(ids, list):
                raise ServiceError(400, "bad_ids", "ids must be a list of strings")
        if served.collection is None and service.dictionary is None:
            raise ServiceError(404, "no_such_collection", f"no collection {name!r}")
        rows, pixels, timing = await items_of(request, body, dim)
        started = time.perf_counter()
        new_ids, codes = await service.append(name, rows, ids, pixels)
        timing["append"] = time.perf_counter() - started
        return JSONResponse({"collection": name, "items": [
            {"id": i, "code": b64(c), "bits": 8 * len(c)} for i, c in zip(new_ids, codes)]},
            headers=_timing_headers(timing))

    @app.get("/v1/collections/{name}/items/{item_id}", summary="one item's code and decoded embedding")
    async def get_item(name: str, item_id: str, encoding_format: str = "float") -> Response:
        fmt = _format({"encoding_format": encoding_format})
        code, embedding = await service.read(service.get_item, name, item_id)
        return JSONResponse({"collection": name, "id": item_id, "code": b64(code), "bits": 8 * len(code),
                             "embedding": _vector(embedding, fmt)})

    @app.post("/v1/collections/{name}/search", openapi_extra=_SEARCH_SCHEMA, summary="search the codes")
    async def search(name: str, request: Request) -> Response:
        """Cosine top-k over the collection's codes (compressed-domain search) for one query:
        an ``embedding``, an ``image`` (base64 / data URI) or a ``text`` (with a text model)."""
        body = await _json(request, service)
        served = await service.read(service._open, name)
        dim = served.collection.dim
        given = [key for key in ("embedding", "image", "text") if key in body]
        if len(given) != 1:
            raise ServiceError(400, "bad_request", "give one query: embedding, image or text")
        k = _int(body, "k", 10, 1, 10_000)
        nprobe = _int(body, "nprobe", None, 1, 1 << 30)
        if given[0] == "embedding":
            query = embedding_rows([body["embedding"]], dim, "embedding")
        elif given[0] == "image":
            query, _ = await service.embed_images([("image", b64decode(body["image"], "image"))])
        else:
            if not isinstance(body["text"], str) or not body["text"]:
                raise ServiceError(400, "bad_request", "text must be a non-empty string")
            query = await service.embed_texts([body["text"]])
        if query.shape[1] != dim:
            raise ServiceError(400, "bad_dimension", f"the query has dimension {query.shape[1]}, the collection {dim}")
        results = await service.read(service.search, name, query, k, nprobe)
        return JSONResponse({"collection": name, "results": [
            {"id": r["id"], "score": r["score"]} for r in results[0]]})

    # ------------------------------------------------------------------ operations
    @app.get("/healthz", summary="the process is alive")
    async def healthz() -> Response:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", summary="200 once loaded and warmed; 503 before and while draining")
    async def readyz() -> Response:
        if service.draining:
            return JSONResponse({"status": "draining"}, status_code=503)
        if not service.ready:
            return JSONResponse({"status": "starting"}, status_code=503)
        return JSONResponse({"status": "ready", "model": service.model_name,
                             "dictionary": None if service.dictionary is None else service.dictionary.hash})

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics_endpoint() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(_Gate, service=service, metrics=metrics)
    return app


def _timing_headers(timing: dict[str, float]) -> dict[str, str]:
    return {f"x-{name}-time": _ms(seconds) for name, seconds in timing.items()}


async def wait_ready(service: Service, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not service.ready and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return service.ready
