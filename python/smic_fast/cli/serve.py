"""``smic serve``: the encoding service on uvicorn (docs/serve.md)."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ._shared import EXIT_OK, EXIT_USAGE, CliError

NAME = "serve"
HELP = "serve encoding, decoding, appends and search over HTTP (the [serve] extra)"
EPILOG = ("Binds 127.0.0.1 unless --host says otherwise. SIGTERM (or Ctrl-C) drains: /readyz turns 503, "
          "new requests get 503, queued and in-flight ones finish, then the process exits 0. "
          "See docs/serve.md for the endpoints.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("what is served")
    g.add_argument("--collections", metavar="DIR", default=None,
                   help="folder of NAME.smic collections served under /v1/collections/NAME (new ones are created "
                        "there on append when --dictionary is given)")
    g.add_argument("--dictionary", metavar="FILE.smicd", default=None,
                   help="shared dictionary: codes /v1/encode requests and new collections")
    g.add_argument("--model", default=None,
                   help="CLIP image tower (a pairing name, open_clip architecture or .onnx path) for image inputs; "
                        "without it the service takes embeddings only")
    g.add_argument("--text-model", default=None, help="CLIP text tower (name or text.onnx), for text queries")
    g.add_argument("--model-name", default=None, help="the model name /v1/embeddings reports (default: --model)")
    g.add_argument("--providers", default="auto", help="ONNX Runtime providers for the image tower (default auto)")
    g = p.add_argument_group("network")
    g.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    g.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free port, printed)")
    g.add_argument("--token-file", metavar="FILE", default=None,
                   help="require 'Authorization: Bearer TOKEN' with the token in FILE (one line); /healthz and "
                        "/readyz stay open")
    g = p.add_argument_group("batching and overload")
    g.add_argument("--max-batch-size", type=int, default=32, help="most items per model or coder call (default 32)")
    g.add_argument("--max-wait-ms", type=float, default=0.0,
                   help="how long a batch formed under load may wait for more items (default 0); a request that "
                        "finds the worker idle never waits")
    g.add_argument("--max-queue", type=int, default=1024,
                   help="items queued per stage; past it requests get 429 with Retry-After (default 1024)")
    g.add_argument("--queue-timeout-ms", type=float, default=10_000.0,
                   help="an item queued longer than this is answered 503 (default 10000)")
    g.add_argument("--max-items", type=int, default=256, help="items per request (default 256; more: 413)")
    g.add_argument("--max-body-bytes", type=int, default=16 << 20, help="request body limit (default 16 MiB; 413)")
    g.add_argument("--max-pixels", type=int, default=40_000_000,
                   help="pixels per image, read from its header before decoding (default 40M; more: 413)")
    g.add_argument("--decode-workers", type=int, default=None,
                   help="image-decoding threads beside the model (default: a quarter of the cores, 1 to 4)")
    g.add_argument("--threads", type=int, default=None,
                   help="ONNX Runtime threads of the one model worker (at most the cores; default: the cores "
                        "the decoders leave)")
    g = p.add_argument_group("shutdown")
    g.add_argument("--timeout-graceful-shutdown", type=float, default=25.0,
                   help="seconds a drain waits for queued and in-flight work before exiting (default 25)")
    g.add_argument("--drain-delay", type=float, default=0.0,
                   help="after SIGTERM, keep answering /readyz 503 at least this long before exiting, so load "
                        "balancers see it (default 0)")


def config_from(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from ..serve.service import ServeConfig

    token = None
    if args.token_file is not None:
        try:
            token = Path(args.token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CliError(f"--token-file: {exc.strerror or exc}", EXIT_USAGE) from None
        if not token:
            raise CliError(f"--token-file {args.token_file} is empty", EXIT_USAGE)
    if args.collections is None and args.dictionary is None:
        raise CliError("give --collections DIR, --dictionary FILE.smicd, or both", EXIT_USAGE)
    try:
        return ServeConfig(
            collections=None if args.collections is None else Path(args.collections),
            dictionary=None if args.dictionary is None else Path(args.dictionary),
            model=args.model, text_model=args.text_model, model_name=args.model_name,
            max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms, max_queue=args.max_queue,
            queue_timeout_ms=args.queue_timeout_ms, max_body_bytes=args.max_body_bytes, max_items=args.max_items,
            max_pixels=args.max_pixels, decode_workers=args.decode_workers, threads=args.threads, token=token,
            providers=args.providers)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def run(args: argparse.Namespace) -> int:
    from .._extras import require

    require("serve", "smic serve")
    import signal
    import socket
    import time

    import uvicorn

    from ..serve.app import create_app

    config = config_from(args)
    app = create_app(config)
    service = app.state.service
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        raise CliError(f"cannot bind {args.host}:{args.port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    host, port = sock.getsockname()[:2]
    timeout = args.timeout_graceful_shutdown
    drain_delay = args.drain_delay

    class Server(uvicorn.Server):
        """uvicorn's server with a drain in front of its shutdown: the first SIGTERM/SIGINT marks
        the service draining (readyz 503, new requests 503); once its queues are empty (and
        --drain-delay has passed), uvicorn's own graceful shutdown finishes in-flight
        responses and the lifespan stops the workers. The signal is not re-raised: exit 0."""

        drain_started: float | None = None

        def handle_exit(self, sig: int, frame: object) -> None:  # type: ignore[override]
            if self.drain_started is None:
                self.drain_started = time.monotonic()
                service.draining = True
                print("smic serve: draining", file=sys.stderr, flush=True)
            elif sig == signal.SIGINT:
                self.force_exit = self.should_exit = True

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if not self.should_exit:
                print(f"smic serve: ready on http://{host}:{port}", file=sys.stderr, flush=True)

        async def on_tick(self, counter: int) -> bool:
            if self.drain_started is not None and not self.should_exit:
                waited = time.monotonic() - self.drain_started
                if waited >= drain_delay and (not service.busy() or waited > timeout):
                    self.should_exit = True
            return await super().on_tick(counter)

    server = Server(uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False,
                                   timeout_graceful_shutdown=max(1, int(timeout)), timeout_keep_alive=5))
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    server.run(sockets=[sock])
    if not server.started:
        return 1  # startup failed (the lifespan logged why)
    return EXIT_OK
