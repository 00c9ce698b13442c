"""Distributed compression on Ray Data against the single-process CLI, on the same photo files
and cores: images per second for 1 and 2 encoding actors, what the cluster costs per run
(start-up, memory per actor), and a check that every run's merged file is the single-process
file byte for byte (same shared dictionary).

    python benchmarks/bench_distributed.py [--photos 1200] [--shard-size 200] [--model tiny]

Needs the [ray] and [export] extras (the tiny CLIP model is exported here from
tests/data/tiny.json, random weights: nothing is downloaded). With --model NAME (an exported
pairing in $SMIC_HOME) the same run measures a real tower.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import parse_args

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "camera.png", "rocket.jpg", "moon.png")


def make_photos(folder: Path, n: int) -> None:
    import skimage

    data = Path(skimage.__file__).parent / "data"
    for i in range(n):
        name = PHOTOS[i % len(PHOTOS)]
        target = folder / f"{i // 500:03d}" / f"{i:06d}_{name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(data / name, target)


class ActorMemory:
    """Largest resident memory of any encoding actor process while a run lasts (psutil)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        import psutil

        while not self._stop.is_set():
            for p in psutil.process_iter(["cmdline", "memory_info"]):
                line = " ".join(p.info["cmdline"] or [])
                if "MapWorker" in line and "_EncodeActor" in line and p.info["memory_info"]:
                    self.peak = max(self.peak, p.info["memory_info"].rss)
            self._stop.wait(0.2)

    def __enter__(self) -> ActorMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def ray_processes_rss() -> int:
    """Resident memory of the cluster's own processes (gcs_server, raylet, workers idle)."""
    import psutil

    total = 0
    for p in psutil.process_iter(["name", "cmdline", "memory_info", "ppid"]):
        line = " ".join(p.info["cmdline"] or [])
        if any(k in line for k in ("gcs_server", "raylet", "ray::", "default_worker", "log_monitor",
                                   "dashboard", "runtime_env")) and p.pid != os.getpid():
            total += p.info["memory_info"].rss if p.info["memory_info"] else 0
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=1200)
    parser.add_argument("--shard-size", type=int, default=200)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parse_args(parser, None, quick={"photos": 60, "shard_size": 20, "batch_size": 8})

    work = Path(tempfile.mkdtemp(prefix="smic-bench-dist-"))
    try:
        if args.model == "tiny":
            from smic_fast.encode.clip_export import export_clip
            from smic_fast.encode.clip_models import register_model_config

            register_model_config(ROOT / "tests" / "data" / "tiny.json")
            os.environ["SMIC_HOME"] = str(work / "home")
            export_clip("tiny", cache=work / "home")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        photos = work / "photos"
        make_photos(photos, args.photos)

        import smic_fast as smic

        encoder = smic.ClipEncoder(args.model)
        sample = encoder.encode_paths(sorted(str(p) for p in photos.rglob("*"))[:200]).embeddings
        dictionary = work / "shared.smicd"
        smic.Dictionary.fit(sample, n_atoms=32).save(dictionary)

        smic_cli = [sys.executable, "-m", "smic_fast"]  # the `smic` command, in any environment
        single = work / "single.smic"
        start = time.perf_counter()
        subprocess.run([*smic_cli, "compress", str(photos), "-o", str(single), "--model", args.model,
                        "--dictionary", str(dictionary), "--batch-size", str(args.batch_size), "-q"], check=True,
                       stdout=subprocess.DEVNULL)
        single_s = time.perf_counter() - start
        print(f"machine: {os.cpu_count()} cores, {args.photos} photos ({args.model} model), shards of {args.shard_size}")
        print(f"{'run':<34}{'seconds':>9}{'images/s':>10}")
        print(f"{'single process (smic compress)':<34}{single_s:>9.2f}{args.photos / single_s:>10.1f}")

        import ray

        from smic_fast import distributed
        from smic_fast.store.manifest import merge

        before = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        startup = time.perf_counter() - before
        idle_rss = ray_processes_rss()
        peaks = {}
        for workers in (1, 2):
            out = work / f"ray{workers}.smic"
            with ActorMemory() as memory:
                start = time.perf_counter()
                summary = distributed.compress([str(photos)], out, model=args.model, dictionary=dictionary,
                                               workers=workers, shard_size=args.shard_size,
                                               batch_size=args.batch_size)
                seconds = time.perf_counter() - start
            peaks[workers] = memory.peak
            same = merge(out, work / f"merged{workers}.smic").read_bytes() == single.read_bytes()
            label = f"Ray, {workers} actor{'s' if workers > 1 else ''} ({summary['cpus_per_actor']:.2g} CPU each)"
            print(f"{label:<34}{seconds:>9.2f}{args.photos / seconds:>10.1f}   merged == single: {same}")
        ray.shutdown()
        print(f"cluster start-up (ray.init, local, {os.cpu_count()} CPUs): {startup:.1f} s")
        print(f"cluster processes, idle: {idle_rss / 2**20:.0f} MiB resident")
        for workers, peak in peaks.items():
            print(f"encoding actor, peak resident ({workers} actor run): {peak / 2**20:.0f} MiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
