"""smic serve (issue 29): the batcher, the HTTP app in-process (starlette's TestClient runs its
lifespan), and real uvicorn subprocesses for SIGKILL durability and SIGTERM draining.

Embedding paths need no CLIP model; the image paths use the tiny random CLIP (skipped without
torch / open_clip). Every server binds 127.0.0.1 on a free port and every loop is bounded."""
from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("prometheus_client")
pytest.importorskip("uvicorn")

import smic_fast as smic
from smic_fast.serve import ServeConfig, create_app
from smic_fast.serve.batcher import Batcher, QueueFull, QueueTimeout
from smic_fast.serve.service import ServiceError, open_image

from starlette.testclient import TestClient

DIM = 48


@pytest.fixture(scope="module")
def dictionary_file(tmp_path_factory) -> Path:
    E = np.random.default_rng(0).standard_normal((500, DIM)).astype(np.float32)
    path = tmp_path_factory.mktemp("serve") / "shared.smicd"
    smic.Dictionary.fit(E, n_atoms=24).save(path)
    return path


@pytest.fixture
def served(tmp_path, dictionary_file):
    folder = tmp_path / "collections"
    folder.mkdir()
    return folder


def _app(dictionary_file, folder, **kw):
    return create_app(ServeConfig(dictionary=dictionary_file, collections=folder, **kw))


def _rows(n, seed=1):
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
    return total


# ------------------------------------------------------------------------ the batcher
def test_a_request_sent_after_the_last_result_is_not_taken_for_load():
    """The worker marks a batch done before its clients see their results: a lone client's next
    request, sent while the worker still reports the batch (here a slow metrics callback),
    runs at once instead of waiting out max_wait_ms as if it had queued behind the batch."""
    batcher = Batcher("t", lambda values: [v + 1 for v in values], max_batch_size=4, max_wait_ms=5000,
                      max_queue=10, on_batch=lambda stats: time.sleep(0.2))
    try:
        async def sequential():
            times = []
            for i in range(3):
                started = time.perf_counter()
                assert await batcher.submit([i]) == [i + 1]
                times.append(time.perf_counter() - started)
            return times

        assert max(asyncio.run(sequential())) < 2.5
    finally:
        batcher.close()


def test_batches_never_exceed_the_limit_and_a_lone_request_is_not_delayed():
    sizes: list[int] = []

    def work(values):
        sizes.append(len(values))
        time.sleep(0.005)
        return [v * 2 for v in values]

    # A long window: a lone request that waited for it would take 5 s; one run at once takes
    # milliseconds, so the bound below holds on a loaded machine too (no timing race).
    batcher = Batcher("t", work, max_batch_size=4, max_wait_ms=5000, max_queue=1000)
    try:
        async def lone():
            started = time.perf_counter()
            assert await batcher.submit([21]) == [42]
            return time.perf_counter() - started

        # an idle worker runs a lone request at once, whatever max_wait_ms says
        assert max(asyncio.run(lone()) for _ in range(3)) < 2.5

        async def crowd():
            results = await asyncio.gather(*(batcher.submit(list(range(i, i + 3))) for i in range(0, 60, 3)))
            return [x for r in results for x in r]

        sizes.clear()
        assert asyncio.run(crowd()) == [2 * i for i in range(60)]
        assert max(sizes) <= 4 and sum(sizes) == 60
        assert max(sizes) > 1  # requests queued behind a batch were batched together
    finally:
        batcher.close()


def test_full_queue_refuses_at_once_and_cancelled_items_are_dropped():
    gate = threading.Event()
    ran: list[int] = []

    def work(values):
        gate.wait(5)
        ran.extend(values)
        return values

    batcher = Batcher("t", work, max_batch_size=2, max_queue=4)
    try:
        async def scenario():
            first = asyncio.ensure_future(batcher.submit([0]))  # taken by the worker, which blocks
            for _ in range(1000):
                await asyncio.sleep(0.005)
                if batcher.depth == 0 and not batcher.idle:
                    break
            queued = asyncio.ensure_future(batcher.submit([1, 2, 3, 4]))
            await asyncio.sleep(0.01)
            assert batcher.depth == 4
            started = time.perf_counter()
            with pytest.raises(QueueFull) as info:
                await batcher.submit([5])
            refused_in = time.perf_counter() - started
            queued.cancel()  # the client went away: its items must not run
            await asyncio.sleep(0.01)
            gate.set()
            assert await first == [0]
            assert await batcher.submit([6]) == [6]  # no hang after the cancellation
            return refused_in, info.value.retry_after_s

        refused_in, retry = asyncio.run(scenario())
        assert refused_in < 0.05 and retry > 0
        assert ran == [0, 6]
    finally:
        gate.set()
        batcher.close()


def test_queue_deadline():
    gate = threading.Event()
    batcher = Batcher("t", lambda v: (gate.wait(5), v)[1], max_batch_size=1, queue_timeout_s=0.05)
    try:
        async def scenario():
            first = asyncio.ensure_future(batcher.submit([1]))
            for _ in range(1000):
                await asyncio.sleep(0.005)
                if batcher.depth == 0 and not batcher.idle:
                    break
            second = asyncio.ensure_future(batcher.submit([2]))
            await asyncio.sleep(0.1)
            gate.set()
            assert await first == [1]
            with pytest.raises(QueueTimeout):
                await second

        asyncio.run(scenario())
    finally:
        gate.set()
        batcher.close()


# ------------------------------------------------------------------------ coding over HTTP
def test_encode_and_decode_match_the_dictionary(dictionary_file, served):
    D = smic.Dictionary.load(dictionary_file)
    E = _rows(5)
    with TestClient(_app(dictionary_file, served)) as client:
        reply = client.post("/v1/encode", json={"embeddings": E.tolist(), "return_cosine": True})
        assert reply.status_code == 200, reply.text
        assert float(reply.headers["x-coding-time"]) >= 0
        items = reply.json()["items"]
        codes = [base64.b64decode(item["code"]) for item in items]
        assert codes == [D.encode(x) for x in E]  # the batch path writes what encode writes
        assert [item["bits"] for item in items] == [8 * len(c) for c in codes]
        for x, code, item in zip(E, codes, items):
            expected = float(D.decode(code) @ (x / np.linalg.norm(x)))
            assert item["cosine"] == pytest.approx(expected, abs=1e-5)
        # base64 float32 in, base64 float32 out
        packed = [base64.b64encode(x.astype("<f4").tobytes()).decode() for x in E[:2]]
        again = client.post("/v1/encode", json={"embeddings": packed}).json()["items"]
        assert [base64.b64decode(i["code"]) for i in again] == codes[:2]
        decoded = client.post("/v1/decode", json={"codes": [i["code"] for i in items]}).json()
        assert np.array_equal(np.asarray(decoded["embeddings"], np.float32), np.stack([D.decode(c) for c in codes]))
        assert client.get("/openapi.json").json()["paths"]["/v1/encode"]["post"]


def test_bad_requests_get_json_errors_and_leave_others_alone(dictionary_file, served):
    D = smic.Dictionary.load(dictionary_file)
    x = _rows(1)[0]
    with TestClient(_app(dictionary_file, served, max_items=8)) as client:
        def encode(body, **kw):
            return client.post("/v1/encode", content=body if isinstance(body, bytes) else json.dumps(body).encode(),
                               headers={"content-type": "application/json"}, **kw)

        good = encode({"embeddings": [x.tolist()]})
        cases = {
            b'{"embeddings": [[NaN' + b', 1.0' * (DIM - 1) + b']]}': (400, "not_finite"),
            json.dumps({"embeddings": [[1.0] * (DIM - 1)]}).encode(): (400, "bad_dimension"),
            json.dumps({"embeddings": [["a"] * DIM]}).encode(): (400, "bad_request"),
            json.dumps({"embeddings": [[0.0] * DIM]}).encode(): (400, "zero_vector"),
            json.dumps({"embeddings": [x.tolist()] * 9}).encode(): (413, "too_many_items"),
            b"{not json": (400, "bad_json"),
            b"[1, 2]": (400, "bad_request"),
            json.dumps({"codes": ["!!"]}).encode(): (400, "bad_request"),
        }
        for body, (status, code) in cases.items():
            reply = encode(body)
            assert reply.status_code == status, (body[:40], reply.text)
            assert reply.json()["error"]["code"] == code
        assert client.post("/v1/decode", json={"codes": ["AAAA"]}).status_code == 400
        assert client.post("/v1/encode", content=b"x", headers={"content-type": "text/plain"}).status_code == 415
        missing = client.get("/no/such/route")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        after = encode({"embeddings": [x.tolist()]})
        assert after.json()["items"] == good.json()["items"]
        assert base64.b64decode(after.json()["items"][0]["code"]) == D.encode(x)


def test_body_limit(dictionary_file, served):
    with TestClient(_app(dictionary_file, served, max_body_bytes=1000)) as client:
        body = json.dumps({"embeddings": _rows(3).tolist()}).encode()
        assert len(body) > 1000
        reply = client.post("/v1/encode", content=body, headers={"content-type": "application/json"})
        assert reply.status_code == 413 and reply.json()["error"]["code"] == "body_too_large"

        def chunks():  # no Content-Length: counted while read
            for start in range(0, len(body), 100):
                yield body[start:start + 100]

        reply = client.post("/v1/encode", content=chunks(), headers={"content-type": "application/json"})
        assert reply.status_code == 413


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (a decompression bomb's first bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_decompression_bombs_are_refused_from_the_header():
    from smic_fast.encode.images import Preprocess

    for width, height, limit in ((100_000, 100_000, 40_000_000), (3000, 3000, 1_000_000)):
        started = time.perf_counter()
        with pytest.raises(ServiceError) as info:
            open_image(_png_header(width, height), "bomb.png", limit, Preprocess(image_size=32), None)
        assert info.value.status == 413 and time.perf_counter() - started < 0.5
    with pytest.raises(ServiceError) as info:
        open_image(b"not an image", "x", 1000, Preprocess(image_size=32), None)
    assert info.value.status == 400


def test_readyz_before_start_and_while_draining(dictionary_file, served):
    app = _app(dictionary_file, served)
    cold = TestClient(app)  # no lifespan: the service has not loaded
    assert cold.get("/readyz").status_code == 503
    assert cold.get("/healthz").status_code == 200
    with TestClient(app) as client:
        assert client.get("/readyz").status_code == 200
        app.state.service.draining = True
        reply = client.get("/readyz")
        assert reply.status_code == 503 and reply.json()["status"] == "draining"
        refused = client.post("/v1/encode", json={"embeddings": _rows(1).tolist()})
        assert refused.status_code == 503 and refused.headers["retry-after"]
        assert _metric(client.get("/metrics").text, "smic_ready") == 0


def test_token_auth(dictionary_file, served, caplog):
    token = "s3cret-token-value"
    with TestClient(_app(dictionary_file, served, token=token)) as client:
        body = {"embeddings": _rows(1).tolist()}
        assert client.post("/v1/encode", json=body).status_code == 401
        wrong = client.post("/v1/encode", json=body, headers={"Authorization": "Bearer s3cret-token-valuX"})
        assert wrong.status_code == 401 and token not in wrong.text
        assert client.get("/metrics").status_code == 401
        assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200
        ok = client.post("/v1/encode", json=body, headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
    assert token not in caplog.text


def test_overload_answers_429_with_retry_after(dictionary_file, served):
    app = _app(dictionary_file, served, max_queue=2, max_batch_size=1)
    with TestClient(app) as client:
        service = app.state.service
        gate = threading.Event()
        original = service.coder.work
        service.coder.work = lambda values: (gate.wait(10), original(values))[1]
        statuses: list[int] = []

        def one():
            statuses.append(client.post("/v1/encode", json={"embeddings": _rows(1).tolist()}).status_code)

        threads = [threading.Thread(target=one) for _ in range(3)]  # one runs, two queue
        for k, t in enumerate(threads):
            t.start()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and (service.coder.idle if k == 0 else service.coder.depth < k):
                time.sleep(0.002)
        assert service.coder.depth == 2
        started = time.perf_counter()
        reply = client.post("/v1/encode", json={"embeddings": _rows(1).tolist()})
        elapsed = time.perf_counter() - started
        gate.set()
        for t in threads:
            t.join(10)
        assert reply.status_code == 429 and int(reply.headers["retry-after"]) >= 1
        assert reply.json()["error"]["code"] == "overloaded"
        assert elapsed < 0.5  # answered at once, not after the queue drained
        assert statuses == [200, 200, 200]
        text = client.get("/metrics").text
        assert _metric(text, "smic_requests_total", code="429") == 1
        assert _metric(text, "smic_requests_total", code="200", endpoint="POST /v1/encode") == 3


# ------------------------------------------------------------------------ collections
def test_append_get_search_and_group_commit(dictionary_file, served):
    D = smic.Dictionary.load(dictionary_file)
    E = _rows(40, seed=7)
    app = _app(dictionary_file, served)
    with TestClient(app) as client:
        first = client.post("/v1/collections/photos/items", json={"embeddings": E[:2].tolist(), "ids": ["a", "b"]})
        assert first.status_code == 200, first.text
        service = app.state.service

        async def many():  # 30 concurrent one-item appends, through the service
            unit = E / np.linalg.norm(E, axis=1, keepdims=True)
            return await asyncio.gather(*(service.append("photos", unit[i:i + 1], [f"i{i}"], None)
                                          for i in range(2, 32)))

        results = client.portal.call(many)
        assert [ids for ids, _ in results] == [[f"i{i}"] for i in range(2, 32)]
        text = client.get("/metrics").text
        commits = _metric(text, "smic_commit_requests_count")
        assert _metric(text, "smic_appended_items_total") == 32
        assert commits < 31  # concurrent appends were committed together
        # a clash fails alone; ids are assigned when not given
        clash = client.post("/v1/collections/photos/items", json={"embeddings": E[:1].tolist(), "ids": ["a"]})
        assert clash.status_code == 409 and clash.json()["error"]["code"] == "duplicate_id"
        nul = client.post("/v1/collections/photos/items", json={"embeddings": E[:1].tolist(), "ids": ["c\u0000d"]})
        assert nul.status_code == 400 and nul.json()["error"]["code"] == "bad_ids"  # C ends ids at a NUL
        assigned = client.post("/v1/collections/photos/items", json={"embeddings": E[32:34].tolist()}).json()
        assert [i["id"] for i in assigned["items"]] == ["32", "33"]
        item = client.get("/v1/collections/photos/items/i5").json()
        assert base64.b64decode(item["code"]) == results[3][1][0]
        assert np.array_equal(np.asarray(item["embedding"], np.float32), D.decode(results[3][1][0]))
        hits = client.post("/v1/collections/photos/search", json={"embedding": E[5].tolist(), "k": 3}).json()
        assert hits["results"][0]["id"] == "i5"
        assert client.get("/v1/collections").json()["collections"] == ["photos"]
        assert client.get("/v1/collections/photos").json()["items"] == 34
        assert client.get("/v1/collections/photos/items/nope").status_code == 404
        assert client.get("/v1/collections/other/items/a").status_code == 404
    col = smic.open(served / "photos.smic", dictionary=D)
    assert len(col) == 34 and col.ids[:2] == ["a", "b"]
    assert np.array_equal(col["i5"], D.decode(results[3][1][0]))


def test_collection_names_stay_in_the_folder(dictionary_file, served):
    with TestClient(_app(dictionary_file, served)) as client:
        body = {"embeddings": _rows(1).tolist()}
        for name in ("..", ".hidden", "..%2F..%2Fescape", "a%2Fb", "x" * 200, "%00"):
            reply = client.post(f"/v1/collections/{name}/items", json=body)
            assert reply.status_code in (400, 404), (name, reply.status_code)
        assert sorted(p.name for p in served.parent.rglob("*.smic")) == []


def test_stream_of_small_appends_is_repacked(dictionary_file, served):
    D = smic.Dictionary.load(dictionary_file)
    E = _rows(400, seed=9)
    app = _app(dictionary_file, served, repack_overhead=0.1)
    with TestClient(app) as client:
        codes = {}
        for start in range(0, 400, 10):
            reply = client.post("/v1/collections/s/items", json={"embeddings": E[start:start + 10].tolist()})
            for item in reply.json()["items"]:
                codes[item["id"]] = base64.b64decode(item["code"])
        assert _metric(client.get("/metrics").text, "smic_repacks_total") >= 1
    col = smic.open(served / "s.smic", dictionary=D)
    assert len(col) == 400 and len(col._batch_sizes()) < 40
    one_batch = smic.compress(E, served / "one.smic", dictionary=D)["bits_per_item"]
    assert col.info()["bits_per_item"] <= 1.25 * one_batch  # 40 batches unrepacked: ~3x
    for item_id, code in codes.items():
        assert np.array_equal(col[item_id], D.decode(code))


# ------------------------------------------------------------------------ a real server
def _start(args, env=None):
    process = subprocess.Popen([sys.executable, "-m", "smic_fast", "serve", "--port", "0", *map(str, args)],
                               stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        found = re.search(r"ready on (http://\S+)", line)
        if found:
            return process, found.group(1)
        if not line and process.poll() is not None:
            break
    process.kill()
    raise AssertionError(f"smic serve did not start: {process.stderr.read()}")


def _appender(url, prefix, acked, stop):
    import httpx

    with httpx.Client(base_url=url, timeout=10) as http:
        n = 0
        while not stop.is_set() and n < 2000:
            row = np.random.default_rng(hash(prefix) % 2**32 + n).standard_normal(DIM)
            item_id = f"{prefix}-{n}"
            try:
                reply = http.post("/v1/collections/live/items", json={"embeddings": [row.tolist()], "ids": [item_id]})
            except httpx.HTTPError:
                return
            if reply.status_code != 200:
                return
            acked[item_id] = base64.b64decode(reply.json()["items"][0]["code"])
            n += 1


def test_sigkill_loses_no_acknowledged_append(dictionary_file, served):
    D = smic.Dictionary.load(dictionary_file)
    acked: dict[str, bytes] = {}
    rng = np.random.default_rng(5)
    for round_ in range(3):
        process, url = _start(["--dictionary", dictionary_file, "--collections", served])
        stop = threading.Event()
        threads = [threading.Thread(target=_appender, args=(url, f"r{round_}c{c}", acked, stop)) for c in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.3 + 0.5 * rng.random())
        process.kill()  # SIGKILL, mid-append
        process.wait(10)
        stop.set()
        for t in threads:
            t.join(15)
        process.stderr.close()
    col = smic.open(served / "live.smic", dictionary=D)
    ids = col.ids
    assert len(ids) == len(set(ids))  # nothing duplicated
    assert len(acked) > 20
    for item_id, code in acked.items():  # every acknowledged item, with its acknowledged code
        assert np.array_equal(col[item_id], D.decode(code))
        assert bytes(D.encode_items(col.item_symbols(item_id), 1)[0]) == code


def test_sigterm_drains_and_exits_0(dictionary_file, served):
    import httpx

    D = smic.Dictionary.load(dictionary_file)
    started = time.monotonic()
    process, url = _start(["--dictionary", dictionary_file, "--collections", served, "--drain-delay", "1"])
    assert time.monotonic() - started < 15
    acked: dict[str, bytes] = {}
    stop = threading.Event()
    threads = [threading.Thread(target=_appender, args=(url, f"c{c}", acked, stop)) for c in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    with httpx.Client(base_url=url, timeout=5) as http:
        assert http.get("/readyz").status_code == 503
        assert http.post("/v1/encode", json={"embeddings": _rows(1).tolist()}).status_code == 503
    assert process.wait(30) == 0
    stop.set()
    for t in threads:
        t.join(15)
    process.stderr.close()
    col = smic.open(served / "live.smic", dictionary=D)
    assert len(acked) > 0 and all(np.array_equal(col[i], D.decode(c)) for i, c in acked.items())


# ------------------------------------------------------------------------ images (tiny CLIP)
@pytest.fixture(scope="module")
def image_server(tiny_clip_home, tmp_path_factory):
    from smic_fast.encode.clip_onnx import ClipEncoder

    encoder = ClipEncoder("tiny", cache=tiny_clip_home)
    E = np.random.default_rng(0).standard_normal((300, encoder.dim)).astype(np.float32)
    folder = tmp_path_factory.mktemp("serve-images")
    smic.Dictionary.fit(E, n_atoms=16).save(folder / "tiny.smicd")
    (folder / "collections").mkdir()
    return encoder, folder


def _png(seed: int, size: int = 80) -> bytes:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def test_image_paths_with_the_tiny_model(image_server, tiny_clip_home):
    from smic_fast.encode.text_tower import TextEncoder

    encoder, folder = image_server
    D = smic.Dictionary.load(folder / "tiny.smicd")
    config = ServeConfig(dictionary=folder / "tiny.smicd", collections=folder / "collections",
                         model=str(encoder.path), text_model="tiny", cache=str(tiny_clip_home), max_batch_size=4,
                         max_pixels=1_000_000)
    started = time.perf_counter()
    with TestClient(create_app(config)) as client:
        assert time.perf_counter() - started < 5  # start to ready, warm-up included
        assert client.get("/readyz").status_code == 200
        images = [_png(i) for i in range(3)]
        from smic_fast.encode.images import decode_image

        expected = encoder.encode_images([decode_image(b, "x")[0] for b in images])
        raw = client.post("/v1/encode", content=images[0], headers={"content-type": "image/png"})
        assert raw.status_code == 200, raw.text
        assert base64.b64decode(raw.json()["items"][0]["code"]) == D.encode(expected[0])
        batch = client.post("/v1/encode", json={"images": [base64.b64encode(b).decode() for b in images]}).json()
        assert [base64.b64decode(i["code"]) for i in batch["items"]] == [D.encode(e) for e in expected]
        # OpenAI's shape, as the openai package sends it
        uris = [f"data:image/png;base64,{base64.b64encode(b).decode()}" for b in images]
        reply = client.post("/v1/embeddings", json={"input": uris, "model": "tiny", "encoding_format": "float",
                                                    "return_codes": True}).json()
        assert reply["object"] == "list" and [d["index"] for d in reply["data"]] == [0, 1, 2]
        got = np.asarray([d["embedding"] for d in reply["data"]], np.float32)
        assert np.allclose(got, expected, atol=1e-5)
        assert base64.b64decode(reply["data"][1]["smic_code"]) == D.encode(expected[1])
        texts = client.post("/v1/embeddings", json={"input": ["a cat", uris[0]], "encoding_format": "base64"}).json()
        text_row = np.frombuffer(base64.b64decode(texts["data"][0]["embedding"]), "<f4")
        assert np.allclose(text_row, TextEncoder("tiny", cache=tiny_clip_home).encode(["a cat"])[0], atol=1e-5)
        assert np.allclose(np.frombuffer(base64.b64decode(texts["data"][1]["embedding"]), "<f4"), expected[0],
                           atol=1e-5)
        bomb = client.post("/v1/encode", content=_png_header(5000, 5000), headers={"content-type": "image/png"})
        assert bomb.status_code == 413
        appended = client.post("/v1/collections/pics/items?id=first", content=images[2],
                               headers={"content-type": "image/png"})
        assert appended.json()["items"][0]["id"] == "first"
        hits = client.post("/v1/collections/pics/search", json={"image": base64.b64encode(images[2]).decode()})
        assert hits.json()["results"][0]["id"] == "first"
        by_text = client.post("/v1/collections/pics/search", json={"text": "a photo", "k": 1})
        assert by_text.status_code == 200 and by_text.json()["results"][0]["id"] == "first"
        text = client.get("/metrics").text
        assert _metric(text, "smic_batch_size_count", stage="image_model") >= 3
        assert _metric(text, "smic_items_total", stage="image_model") >= 7


# ------------------------------------------------------------------------ client, CLI, docs
def test_python_client(dictionary_file, served):
    from smic_fast.serve.client import Client, ServeError

    D = smic.Dictionary.load(dictionary_file)
    E = _rows(6, seed=11)
    with TestClient(_app(dictionary_file, served, token="t0k")) as http:
        with Client(token="t0k", http=http) as client:
            assert client.healthy() and client.ready()
            items = client.encode(E, return_cosine=True)
            assert [i.code for i in items] == [D.encode(x) for x in E]
            assert all(0 < i.cosine <= 1 for i in items)
            assert np.array_equal(client.decode([i.code for i in items]), np.stack([D.decode(i.code) for i in items]))
            added = client.append("c", E[:3], ids=["x", "y", "z"])
            assert [a.id for a in added] == ["x", "y", "z"]
            item = client.get("c", "y")
            assert item.code == added[1].code and np.array_equal(item.embedding, D.decode(added[1].code))
            assert client.search("c", embedding=E[2], k=1)[0].id == "z"
            assert client.collections() == ["c"]
            with pytest.raises(ServeError) as info:
                client.append("c", E[:1], ids=["x"])
            assert info.value.status == 409 and info.value.code == "duplicate_id"
        with Client(http=http) as anonymous:
            with pytest.raises(ServeError) as info:
                anonymous.encode(E[:1])
            assert info.value.status == 401


def test_smic_encode_against_a_server(dictionary_file, served, tmp_path, capsys):
    from smic_fast.cli import main

    D = smic.Dictionary.load(dictionary_file)
    E = _rows(5, seed=13)
    np.save(tmp_path / "e.npy", E)
    process, url = _start(["--dictionary", dictionary_file, "--collections", served])
    try:
        assert main(["encode", "--server", url, str(tmp_path / "e.npy"), "--json", "--batch", "2"]) == 0
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [base64.b64decode(r["code"]) for r in rows] == [D.encode(x) for x in E]
        assert main(["encode", "--server", url, str(tmp_path / "e.npy"), "--collection", "k", "--append"]) == 0
        assert len(capsys.readouterr().out.splitlines()) == 5
        assert main(["encode", "--server", url, str(tmp_path / "e.npy"), "--append"]) == 2
    finally:
        process.terminate()
        assert process.wait(30) == 0
        process.stderr.close()
    assert len(smic.open(served / "k.smic", dictionary=D)) == 5


def test_every_flag_is_documented():
    import argparse

    from smic_fast.cli import setup_args

    text = (Path(__file__).parent.parent / "docs" / "serve.md").read_text(encoding="utf-8")
    sub = next(a for a in setup_args()._actions if isinstance(a, argparse._SubParsersAction))
    for name in ("serve", "encode"):
        flags = {s for action in sub.choices[name]._actions for s in action.option_strings if s.startswith("--")}
        missing = sorted(f for f in flags - {"--help"} if f"`{f}" not in text)
        assert not missing, f"smic {name}: {missing} not in docs/serve.md"
    for endpoint in ("/v1/encode", "/v1/decode", "/v1/embeddings", "/v1/collections/photos/items",
                     "/v1/collections/photos/search", "/healthz", "/readyz", "/metrics"):
        assert f"http://127.0.0.1:8000{endpoint}" in text, endpoint  # a curl example each


def test_appends_past_the_queue_are_refused(dictionary_file, served):
    app = _app(dictionary_file, served, max_queue=4)
    with TestClient(app) as client:
        service = app.state.service
        unit = _rows(3) / np.linalg.norm(_rows(3), axis=1, keepdims=True)

        async def flood():
            return await asyncio.gather(*(service.append("q", unit, None, None) for _ in range(4)),
                                        return_exceptions=True)

        results = client.portal.call(flood)
        refused = [r for r in results if isinstance(r, ServiceError)]
        assert refused and all(r.status == 429 and r.headers["Retry-After"] for r in refused)
        assert sum(not isinstance(r, BaseException) for r in results) >= 1


def test_warm_sizes_cover_one_and_the_largest_batch():
    from smic_fast.serve.service import warm_sizes

    assert warm_sizes(1) == [1]
    assert warm_sizes(5) == [1, 2, 4, 5]
    assert warm_sizes(32) == [1, 2, 4, 8, 16, 32]


def test_without_models_images_and_texts_are_refused_clearly(dictionary_file, served):
    with TestClient(_app(dictionary_file, served)) as client:
        uri = "data:image/png;base64," + base64.b64encode(_png_header(4, 4)).decode()
        for body, code in (({"input": [uri]}, "no_image_model"), ({"input": "a cat"}, "no_text_model"),
                           ({"input": []}, "bad_request"), ({"input": [1, 2]}, "bad_request")):
            reply = client.post("/v1/embeddings", json=body)
            assert reply.status_code == 400 and reply.json()["error"]["code"] == code, (body, reply.text)
        raw = client.post("/v1/encode", content=b"\xff\xd8", headers={"content-type": "image/jpeg"})
        assert raw.status_code == 400 and raw.json()["error"]["code"] == "no_image_model"


def test_http_lone_requests_do_not_wait_and_batches_respect_the_limit(dictionary_file, served):
    app = _app(dictionary_file, served, max_batch_size=4, max_wait_ms=400)
    with TestClient(app) as client:
        for x in _rows(3, seed=17):  # one at a time: each finds the coder idle
            started = time.perf_counter()
            assert client.post("/v1/encode", json={"embeddings": [x.tolist()]}).status_code == 200
            assert time.perf_counter() - started < 0.25
        service = app.state.service
        D = service.dictionary
        unit = _rows(40, seed=19)
        unit /= np.linalg.norm(unit, axis=1, keepdims=True)

        async def crowd():
            return await asyncio.gather(*(service.code(D, unit[i:i + 5]) for i in range(0, 40, 5)))

        before = _metric(client.get("/metrics").text, "smic_batch_size_count", stage="coder")
        coded = [c for part in client.portal.call(crowd) for c, _ in part]
        assert coded == [D.encode(x) for x in unit]
        text = client.get("/metrics").text
        batches = _metric(text, "smic_batch_size_count", stage="coder")
        within = _metric(text, "smic_batch_size_bucket", stage="coder", le="4.0")
        assert batches > 0 and within == batches  # no batch over --max-batch-size
        assert 10 <= batches - before < 40  # 40 items: at least 10 batches of 4, fewer than 40 of one


@pytest.mark.parametrize("module", ["fastapi", "uvicorn", "prometheus_client"])
def test_serve_names_its_extra(module, dictionary_file):
    from test_extras import assert_names_extra, smic_without

    result = smic_without([module], "serve", "--dictionary", dictionary_file, "--port", "0", timeout=60)
    assert_names_extra(result, "serve", "serve", module)
    result = smic_without(["httpx"], "encode", "--server", "http://127.0.0.1:9", "x.npy", timeout=60)
    assert_names_extra(result, "encode", "serve", "httpx")
