"""Load benchmark of ``smic serve`` on loopback: latency (p50/p99) and throughput for a lone
client and for concurrent clients, the effect of --max-wait-ms on a lone client, overload
(requests arriving at 4x the saturated throughput, and clients retrying refusals at once: past
the queue answered 429 at once, none lost), the server's memory over a long run,
and the image path beside the in-process encoder (what ``smic compress`` runs).

    .venv/bin/python benchmarks/bench_serve.py                      # embeddings only
    .venv/bin/python benchmarks/bench_serve.py --image-model tiny   # + images (exports the tiny
                                                                    #   random CLIP: needs torch)
    .venv/bin/python benchmarks/bench_serve.py --image-model ViT-B-32   # random weights, 224 px

The load generator is a minimal asyncio HTTP/1.1 client (keep-alive, pre-built requests) so
that its own cost stays small beside the server's: both share this machine's cores. Every run
is bounded (a number of requests or seconds); the server is a ``smic serve`` subprocess on
127.0.0.1, started fresh for each configuration.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import smic_fast as smic
from _common import clustered, parse_args

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ a lean HTTP client
class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
        body = await self.reader.readexactly(length)
        return status, body

    def close(self) -> None:
        self.writer.close()


def post(path: str, body: bytes, content_type: str = "application/json") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def run_clients(port: int, requests: list[bytes], clients: int, seconds: float | None = None
                      ) -> dict:
    """Send `requests` (cycled when `seconds` is given) from `clients` connections, each one
    request at a time. Returns latencies (s) by status and the wall time."""
    latencies: dict[int, list[float]] = {}
    errors = 0
    counter = iter(range(10**9))
    started = time.perf_counter()
    stop_at = None if seconds is None else started + seconds

    async def client() -> None:
        nonlocal errors
        conn = await Connection.open(port)
        try:
            while True:
                i = next(counter)
                if stop_at is None and i >= len(requests):
                    return
                if stop_at is not None and time.perf_counter() >= stop_at:
                    return
                t = time.perf_counter()
                try:
                    status, _ = await conn.request(requests[i % len(requests)])
                except (ConnectionError, asyncio.IncompleteReadError):
                    errors += 1
                    conn.close()
                    conn = await Connection.open(port)
                    continue
                latencies.setdefault(status, []).append(time.perf_counter() - t)
        finally:
            conn.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    return {"latencies": latencies, "wall": time.perf_counter() - started, "errors": errors}


async def run_open_loop(port: int, requests: list[bytes], rate: float, seconds: float,
                        max_connections: int = 256) -> dict:
    """Send requests (cycled) at `rate` per second for `seconds`, whatever the answers: an
    open-loop load, the arrival rate fixed rather than set by the replies. Each request goes out
    on an idle keep-alive connection (a new one while fewer than `max_connections` exist, else
    it waits for one), and its latency counts from its scheduled time, so time spent waiting on
    the client side is not hidden (no coordinated omission)."""
    latencies: dict[int, list[float]] = {}
    errors = 0
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    opened = 0
    started = time.perf_counter()

    async def one(i: int, due: float) -> None:
        nonlocal errors, opened
        if idle.empty() and opened < max_connections:
            opened += 1
            conn = await Connection.open(port)
        else:
            conn = await idle.get()
        try:
            status, _ = await conn.request(requests[i % len(requests)])
        except (ConnectionError, asyncio.IncompleteReadError):
            errors += 1
            conn.close()
            opened -= 1
            return
        latencies.setdefault(status, []).append(time.perf_counter() - due)
        idle.put_nowait(conn)

    tasks = []
    for i in range(int(rate * seconds)):
        due = started + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(i, due)))
    await asyncio.gather(*tasks)
    while not idle.empty():
        idle.get_nowait().close()
    return {"latencies": latencies, "wall": time.perf_counter() - started, "errors": errors,
            "offered_per_s": rate, "connections": opened}


def summary(result: dict, items_per_request: int = 1) -> dict:
    ok = np.asarray(result["latencies"].get(200, []))
    out = {"requests": int(sum(len(v) for v in result["latencies"].values())),
           **{key: round(result[key], 1) for key in ("offered_per_s", "connections") if key in result},
           "by_status": {k: len(v) for k, v in sorted(result["latencies"].items())},
           "errors": result["errors"], "wall_s": round(result["wall"], 2)}
    if len(ok):
        out.update(p50_ms=round(1e3 * np.percentile(ok, 50), 3), p99_ms=round(1e3 * np.percentile(ok, 99), 3),
                   items_per_s=round(items_per_request * len(ok) / result["wall"], 1))
    for status, values in result["latencies"].items():
        if status != 200:
            out[f"p99_ms_{status}"] = round(1e3 * np.percentile(values, 99), 3)
            out[f"max_ms_{status}"] = round(1e3 * max(values), 3)
    return out


# ------------------------------------------------------------------ the server
class Server:
    def __init__(self, args: list[str], env: dict | None = None) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "smic_fast", "serve", "--port", "0", *args],
                                        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                                        env=env or dict(os.environ))
        started = time.perf_counter()
        while True:
            line = self.process.stderr.readline()
            found = re.search(r"ready on http://127.0.0.1:(\d+)", line)
            if found:
                self.port = int(found.group(1))
                self.start_s = time.perf_counter() - started
                return
            if not line and self.process.poll() is not None:
                raise RuntimeError(f"smic serve failed: {self.process.stderr.read()}")

    def rss_mb(self) -> float:
        with open(f"/proc/{self.process.pid}/status") as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) / 1024

    def stop(self) -> int:
        self.process.terminate()
        code = self.process.wait(60)
        self.process.stderr.close()
        return code


def embedding_requests(E: np.ndarray, per_request: int = 1) -> list[bytes]:
    out = []
    for start in range(0, len(E) - per_request + 1, per_request):
        rows = [base64.b64encode(r.astype("<f4").tobytes()).decode() for r in E[start:start + per_request]]
        out.append(post("/v1/encode", json.dumps({"embeddings": rows}).encode()))
    return out


def report(name: str, figures: dict) -> None:
    print(f"{name:<44} {json.dumps(figures)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dim", type=int, default=512, help="embedding dimension (512: ViT-B-32)")
    parser.add_argument("--atoms", type=int, default=1024)
    parser.add_argument("--requests", type=int, default=3000, help="requests per latency run")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--long", type=int, default=30000, help="requests of the memory run")
    parser.add_argument("--overload-seconds", type=float, default=20.0)
    parser.add_argument("--image-model", default=None,
                        help="also the image path: 'tiny' (exported here, needs torch + open_clip), an open_clip "
                             "architecture exported with random weights (needs torch), or an .onnx path")
    parser.add_argument("--images", type=int, default=256, help="distinct test images")
    parser.add_argument("--skip-embeddings", action="store_true", help="only the image path")
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs of the durability run (0: none)")
    parser.add_argument("--only-durability", action="store_true", help="only the durability run")
    args = parse_args(parser, None, quick={
        "dim": 64, "atoms": 64, "requests": 100, "clients": 2, "long": 300, "overload_seconds": 2.0,
        "images": 8, "kills": 2})
    rng = np.random.default_rng(0)
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    print(f"# smic serve on loopback, {os.cpu_count()} cores; server and load generator share them", flush=True)
    if args.skip_embeddings:
        image_bench(args, work, rng)
        return

    # ---------------------------------------------------------------- embeddings
    E = clustered(rng, 20000, args.dim)
    dictionary = smic.Dictionary.fit(E[:10000], args.atoms)
    dictionary.save(work / "d.smicd")
    queries = E[10000:]
    t = time.perf_counter()
    for x in queries[:2000]:
        dictionary.encode(x)
    report("in-process Dictionary.encode (1 item)", {"us": round(1e6 * (time.perf_counter() - t) / 2000, 1)})
    if args.only_durability:
        durability(args, work, dictionary, queries)
        return
    base = ["--dictionary", work / "d.smicd", "--collections", work]
    base = [str(a) for a in base]
    one = embedding_requests(queries[:args.requests])
    for wait in ("0", "2"):
        server = Server(base + ["--max-wait-ms", wait])
        asyncio.run(run_clients(server.port, one[:200], 1))  # warm the connection path
        report(f"embeddings, 1 client, max-wait-ms {wait}", summary(asyncio.run(run_clients(server.port, one, 1))))
        if wait == "0":
            report("start to ready (s)", {"s": round(server.start_s, 2)})
            report(f"embeddings, {args.clients} clients", summary(asyncio.run(
                run_clients(server.port, one, args.clients))))
            batch = embedding_requests(queries[:args.requests * 2], 32)
            report(f"embeddings, 32 per request, {args.clients} clients", summary(asyncio.run(
                run_clients(server.port, batch, args.clients)), 32))
            rss0 = server.rss_mb()
            long = embedding_requests(queries, 1)
            cycled = [long[i % len(long)] for i in range(args.long)]
            result = summary(asyncio.run(run_clients(server.port, cycled, args.clients)))
            rss1 = server.rss_mb()
            result.update(rss_before_mb=round(rss0, 1), rss_after_mb=round(rss1, 1),
                          rss_growth_pct=round(100 * (rss1 - rss0) / rss0, 2))
            report(f"memory over {args.long} requests", result)
        report("exit code after SIGTERM", {"code": server.stop()})

    # appends: 8 clients, one item each, group-committed
    server = Server(base)
    appends = [post("/v1/collections/bench/items",
                    json.dumps({"embeddings": [base64.b64encode(r.astype("<f4").tobytes()).decode()]}).encode())
               for r in queries[:2000]]
    report(f"appends (1 item, fsync'd), {args.clients} clients", summary(asyncio.run(
        run_clients(server.port, appends, args.clients))))
    report("appends (1 item, fsync'd), 1 client", summary(asyncio.run(run_clients(server.port, appends[:300], 1))))
    info = smic.open(work / "bench.smic", dictionary=dictionary).info()
    one_batch = smic.compress(queries[:2300], work / "one.smic", dictionary=dictionary)
    report("collection after the append stream", {
        "items": info["items"], "bits_per_item": round(info["bits_per_item"], 2),
        "one_batch_bits_per_item": round(one_batch["bits_per_item"], 2)})
    server.stop()

    if args.kills:
        durability(args, work, dictionary, queries)
    if args.image_model:
        image_bench(args, work, rng)


def durability(args: argparse.Namespace, work: Path, dictionary: smic.Dictionary, rows: np.ndarray) -> None:
    """8 clients append one item at a time; the server is SIGKILLed at a random moment and
    restarted, `--kills` times; then every acknowledged item must be in the collection once,
    with the code it was acknowledged with."""
    rng = np.random.default_rng(1)
    folder = work / "durable"
    folder.mkdir()
    acked: dict[str, bytes] = {}
    sent = 0

    async def clients(port: int, round_: int, stop_at: float) -> None:
        nonlocal sent

        async def one(c: int) -> None:
            nonlocal sent
            conn = await Connection.open(port)
            n = 0
            try:
                while time.perf_counter() < stop_at + 5:
                    item_id = f"r{round_}-c{c}-{n}"
                    row = rows[(round_ * 7919 + c * 104729 + n) % len(rows)]
                    body = json.dumps({"embeddings": [base64.b64encode(row.astype("<f4").tobytes()).decode()],
                                       "ids": [item_id]}).encode()
                    sent += 1
                    status, reply = await conn.request(post("/v1/collections/durable/items", body))
                    if status == 200:
                        acked[item_id] = base64.b64decode(json.loads(reply)["items"][0]["code"])
                    n += 1
            except (ConnectionError, asyncio.IncompleteReadError, OSError):
                return
            finally:
                conn.close()

        await asyncio.gather(*(one(c) for c in range(args.clients)))

    started = time.perf_counter()
    for round_ in range(args.kills):
        server = Server(["--dictionary", str(work / "d.smicd"), "--collections", str(folder)])
        kill_at = time.perf_counter() + rng.uniform(0.2, 1.0)

        async def round_trip() -> None:
            task = asyncio.ensure_future(clients(server.port, round_, kill_at))
            await asyncio.sleep(max(0.0, kill_at - time.perf_counter()))
            server.process.kill()  # SIGKILL, mid-stream
            await task

        asyncio.run(round_trip())
        server.process.wait(10)
        server.process.stderr.close()
    col = smic.open(folder / "durable.smic", dictionary=dictionary)
    ids = col.ids
    missing = [i for i in acked if col._core.find(i) is None]
    wrong = [i for i, code in acked.items() if i not in missing
             and bytes(dictionary.encode_items(col.item_symbols(i), 1)[0]) != code]
    report(f"durability: {args.kills} SIGKILLs, {args.clients} clients appending", {
        "sent": sent, "acknowledged": len(acked), "stored": len(ids), "duplicates": len(ids) - len(set(ids)),
        "acknowledged_missing": len(missing), "code_mismatch": len(wrong),
        "seconds": round(time.perf_counter() - started, 1)})


def _export(model: str, home: Path) -> Path:
    if model.endswith(".onnx"):
        return Path(model)
    from smic_fast.encode.clip_export import export_clip

    if model == "tiny":
        from smic_fast.encode.clip_models import register_model_config
        register_model_config(ROOT / "tests" / "data" / "tiny.json")
        return export_clip("tiny", cache=home).path
    return export_clip(model, pretrained=None, cache=home).path


def image_bench(args: argparse.Namespace, work: Path, rng: np.random.Generator) -> None:
    from PIL import Image

    from smic_fast.encode.clip_onnx import ClipEncoder

    model = _export(args.image_model, work / "home")
    encoder = ClipEncoder(model, batch_size=32)
    folder = work / "images"
    folder.mkdir()
    blobs = []
    for i in range(args.images):
        pixels = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        image = Image.fromarray(pixels).resize((320, 240), Image.Resampling.BILINEAR)
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=90)
        blobs.append(out.getvalue())
        (folder / f"{i:05d}.jpg").write_bytes(out.getvalue())
    E = encoder.encode_paths(sorted(folder.glob("*.jpg"))).embeddings
    dictionary = smic.Dictionary.fit(np.concatenate([E, clustered(rng, 2000, E.shape[1])]), 256)
    dictionary.save(work / "img.smicd")
    # in-process: one image at a time, then the whole folder in batches (what smic compress runs)
    from smic_fast.encode.images import decode_image

    draft = encoder.preprocess.draft_size()
    times = []
    for blob in blobs[:100]:
        t = time.perf_counter()
        tensor = encoder.preprocess(decode_image(blob, "x", draft=draft)[0])
        dictionary.encode(encoder._run(tensor[None])[0])
        times.append(time.perf_counter() - t)
    report("in-process, 1 image", {"p50_ms": round(1e3 * np.percentile(times, 50), 3)})
    t = time.perf_counter()
    paths = sorted(folder.glob("*.jpg"))
    embedded = encoder.encode_paths(paths).embeddings
    smic.compress(embedded, work / "inproc.smic", dictionary=dictionary)
    report("in-process batch encode + compress", {"items_per_s": round(len(paths) / (time.perf_counter() - t), 1)})
    raw = [post("/v1/encode", blob, "image/jpeg") for blob in blobs]
    cycled = [raw[i % len(raw)] for i in range(max(args.requests // 4, len(raw)))]
    common = ["--dictionary", str(work / "img.smicd"), "--model", str(model), "--max-batch-size", "32"]
    for wait in ("0", "2"):
        server = Server(common + ["--max-wait-ms", wait])
        report(f"images, start to ready (max-wait-ms {wait})", {"s": round(server.start_s, 2)})
        asyncio.run(run_clients(server.port, raw[:20], 1))
        report(f"images, 1 client, max-wait-ms {wait}", summary(asyncio.run(run_clients(server.port, cycled[:400], 1))))
        if wait == "0":
            saturated = summary(asyncio.run(run_clients(server.port, cycled, args.clients)))
            report(f"images, {args.clients} clients", saturated)
        server.stop()
    # overload, the queue bounded at what saturation holds (one image per saturating client), for
    # a bounded time: first requests arriving at 4x the saturated throughput (open loop: the
    # issue's "4x saturation"), then 4x the saturating clients retrying at once, ignoring
    # Retry-After (a storm of refusals: far more than 4x the arrivals)
    server = Server(common + ["--max-queue", str(args.clients)])
    asyncio.run(run_clients(server.port, raw, args.clients * 4, seconds=2))  # warm: arenas, buffers
    rss0 = server.rss_mb()
    rate = 4 * saturated["items_per_s"]
    runs = ((f"{rate:.0f} requests/s (4x saturation)", run_open_loop(server.port, raw, rate, args.overload_seconds)),
            (f"{args.clients * 4} clients retrying at once",
             run_clients(server.port, raw, args.clients * 4, seconds=args.overload_seconds)))
    for label, load in runs:
        over = summary(asyncio.run(load))
        over["accepted_p99_over_saturated"] = round(over.get("p99_ms", float("nan")) / saturated["p99_ms"], 2)
        over["rss_growth_pct"] = round(100 * (server.rss_mb() - rss0) / rss0, 2)  # since before the first
        report(f"images, overload: {label}, max-queue {args.clients}, {args.overload_seconds:g} s", over)
    server.stop()


if __name__ == "__main__":
    main()
