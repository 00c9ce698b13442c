"""Compress a collection on a Ray cluster (``pip install "smic-fast[ray]"``): the same pipeline
as ``smic compress``, spread over machines, resumable, and exact.

    from smic_fast import distributed
    summary = distributed.compress(["photos/"], "photos.smic", model="fast")   # a local cluster
    summary = distributed.compress(["shards/{00000..00059}.tar"], "laion.smic",
                                   address="auto", dictionary="shared.smicd")

How it runs (one driver, the cluster's workers):

1. **Plan.** The inputs are listed on the driver and cut into shards: ``shard_size`` photos
   in id order, one webdataset tar, or one clip-retrieval part each. A tar's headers are
   scanned (no data read), so a truncated tar is reported, not read.
2. **Dictionary.** ``dictionary`` (a shared .smicd) is used as given; otherwise one is learned
   on the driver on a seeded sample (``sample_size`` photos encoded on the cluster first, or
   rows of the embedding parts), exactly as :meth:`Dictionary.fit` does. It is saved as
   ``OUT.smic.d/dictionary.smicd``; every shard stores only its hash.
3. **Encode.** Ray Data reads the files (``read_binary_files(include_paths=True)``, the
   original bytes) or the tars (``read_webdataset(decoder=None)``) and an actor pool decodes
   and encodes them (``map_batches`` with :class:`_EncodeActor`, one ONNX Runtime session per
   actor, a GPU per actor where the cluster has them). An unreadable image becomes a row with
   its reason, never a failed task. Actors ask for less CPU than the cluster has, so read
   tasks always find room (an actor pool holding every CPU starves the reads: a hang).
4. **Code.** As soon as a shard's rows are all in, a Ray task codes it with the dictionary and
   writes ``part-NNNNN.smic`` atomically; the driver then lists it in ``manifest.json`` with
   its size and CRC32 (:mod:`smic_fast.store.manifest`). Clip-retrieval parts skip step 3.
5. **Resume.** Started again with the same inputs and options, a run keeps the shards its
   manifest lists and does only the others; the result is byte for byte an uninterrupted
   run's. A worker that dies costs a retry of its batch (Ray Data restarts the actor).

``smic_fast.open`` reads the result as one collection; :func:`smic_fast.store.manifest.merge`
(``smic merge``) packs it into one .smic file identical to a single-process run's with the
same dictionary.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from .store.manifest import DICTIONARY, MANIFEST, Manifest, ShardRecord, crc32_of, shard_folder

__all__ = ["DEFAULT_SHARD_SIZE", "compress", "plan_shards"]

log = logging.getLogger("smic_fast")

DEFAULT_SHARD_SIZE = 10_000  # photos per shard: a few seconds of coding, a few KB on disk
FILES_PER_READ = 64  # photos per Ray Data read task
READ_RESERVE = 1.0  # CPUs left to Ray Data's read tasks and the shard writers
READ_CPUS = 0.5  # each read task's request: fits in what the actors leave, even on 1 CPU


# ---------------------------------------------------------------------------------- the plan
def plan_shards(inputs: Sequence[str], *, shard_size: int = DEFAULT_SHARD_SIZE, glob: str | None = None
                ) -> tuple[str, list[dict[str, Any]]]:
    """(kind, shards): how a run cuts `inputs` into units of work and of resumption. A shard is
    a dict: ``source`` (its name), and ``files`` + ``ids`` (photos), ``tar`` + ``samples``
    (webdataset; ``error`` for a damaged tar) or ``npy`` + ``parquet`` (clip-retrieval)."""
    from .sources.inputs import check_embedding_part, classify, find_embedding_parts, scan_tar, tar_paths
    from .sources.photos import find_photos

    kind = classify(inputs)
    if kind == "npy":
        raise ValueError("a distributed run takes photos, webdataset tars or clip-retrieval folders; .npy "
                         "embeddings are compressed in one process (smic compress without --ray)")
    shards: list[dict[str, Any]] = []
    if kind == "photos":
        photos = find_photos(inputs, glob)
        if not photos:
            raise ValueError(f"no files found in {', '.join(inputs)}" + (f" matching {glob!r}" if glob else ""))
        for start in range(0, len(photos), shard_size):
            part = photos[start:start + shard_size]
            shards.append({"source": f"photos {start}..{start + len(part) - 1}",
                           "files": [os.path.abspath(p.path) for p in part], "ids": [p.id for p in part]})
    elif kind == "webdataset":
        for path in tar_paths(inputs):
            scan = scan_tar(path)
            shards.append({"source": path, "tar": os.path.abspath(path), "samples": scan.samples,
                           "error": scan.error, "without_image": scan.without_image})
    else:
        if len(inputs) != 1:
            raise ValueError("give one clip-retrieval folder per run")
        for part in find_embedding_parts(inputs[0]):
            check_embedding_part(part)
            shards.append({"source": str(part.npy), "npy": str(part.npy.absolute()),
                           "parquet": str(part.parquet.absolute())})
    return kind, shards


def _fingerprint(kind: str, shards: list[dict[str, Any]], options: dict[str, Any]) -> dict[str, Any]:
    """What a resumed run must share with the first: the shards' contents and the options."""
    digest = hashlib.sha256(json.dumps(shards, sort_keys=True, default=str).encode()).hexdigest()
    return {"kind": kind, "shards_sha256": digest, "n_shards": len(shards), "options": options}


# ------------------------------------------------------------------------------- the workers
class _EncodeActor:
    """One per actor: an ONNX Runtime session, fed Ray Data batches of (name, bytes) rows;
    returns one row per input: its embedding, pixel count and error ("" when encoded)."""

    def __init__(self, model: str, providers: str, batch_size: int, int8: bool, home: str | None,
                 fault: str | None = None) -> None:
        if home:
            os.environ["SMIC_HOME"] = home
        from .encode.clip_onnx import ClipEncoder

        self.encoder = ClipEncoder(model, providers=providers, batch_size=batch_size, int8=int8, workers=1)
        self.fault = fault

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.fault and not os.path.exists(self.fault):  # test hook: die once, mid-run
            Path(self.fault).write_text("killed")
            os._exit(1)
        names = [str(n) for n in batch["name"]]
        blobs = list(zip(names, (bytes(b) if isinstance(b, (bytes, bytearray, memoryview, np.ndarray)) else b""
                                 for b in batch["bytes"])))
        encoded, embeddings, skipped, pixels = self.encoder.encode_blobs(blobs)
        row = {name: i for i, name in enumerate(encoded)}
        reasons = {s.path: s.reason for s in skipped}
        out = np.zeros((len(names), self.encoder.dim), np.float32)
        for i, name in enumerate(names):
            if name in row:
                out[i] = embeddings[row[name]]
        return {"name": np.array(names, dtype=object), "embedding": out,
                "pixels": np.array([pixels[row[n]] if n in row else 0 for n in names], np.int64),
                "error": np.array([reasons.get(n, "") if n not in row else "" for n in names], dtype=object)}


def _write_shard(folder: str, index: int, source: str, embeddings: np.ndarray | None, ids: list[str],
                 pixels: list[int], skipped: list[dict[str, str]], dictionary_path: str, model: str | None,
                 chunk_size: int, part: tuple[str, str] | None = None) -> dict[str, Any]:
    """Code one shard with the shared dictionary and write it atomically; its manifest record.
    With `part` (clip-retrieval .npy, .parquet) the rows are read here, memory-mapped."""
    from . import _core
    from .store.collection import Collection, compress
    from .coding.dictionary import Dictionary
    from .sources.inputs import EmbeddingPart, read_embedding_part
    from .store.manifest import item_norms, pairwise_sum

    if part is not None:
        embeddings, ids = read_embedding_part(EmbeddingPart(index, Path(part[0]), Path(part[1])))
    file = Path(folder) / f"part-{index:05d}.smic"
    record = ShardRecord(index=index, source=source, items=len(ids), skipped=skipped)
    if ids:
        dictionary = Dictionary.load(dictionary_path)
        compress(embeddings, file, ids=ids, pixels=pixels or None, dictionary=dictionary,
                 model=model, chunk_size=chunk_size, n_threads=1)
        record.file, record.bytes, record.crc32 = file.name, file.stat().st_size, crc32_of(file)
        norms = item_norms(embeddings)
        written = Collection(file, dictionary).header["mean_norm"]
        if float(pairwise_sum(norms)) / len(norms) != written:  # the merge would record another mean
            raise RuntimeError(f"{file}: item norms differ from the core's (mean {written})")
        buffer = io.BytesIO()
        np.save(buffer, norms)
        norms_file = file.with_name(file.stem + ".norms.npy")
        _core.atomic_write(str(norms_file), buffer.getvalue())
        record.norms_file, record.norms_crc32 = norms_file.name, crc32_of(norms_file)
        record.first_id, record.last_id = ids[0], ids[-1]
    return asdict(record)


# ---------------------------------------------------------------------------------- the run
def _require_ray():
    from ._extras import require

    require("ray", "a distributed run (smic compress --ray)")
    import ray

    return ray


def _connect(ray: Any, address: str | None, num_cpus: int | None) -> bool:
    """Connect to `address` (None: start a local cluster); True when this call started Ray."""
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    if address is None and num_cpus is not None:
        kwargs["num_cpus"] = num_cpus
    ray.init(address=address, **kwargs)
    return True


def _resources(ray: Any, workers: int | None, gpu: bool | None) -> tuple[int, float, float]:
    """(workers, CPUs per actor, GPUs per actor): actors together leave READ_RESERVE CPUs free."""
    total = ray.cluster_resources()
    cpus, gpus = float(total.get("CPU", 1)), float(total.get("GPU", 0))
    use_gpu = gpus >= 1 if gpu is None else gpu
    if workers is None:
        workers = int(gpus) if use_gpu else max(1, int(cpus - READ_RESERVE))
    free = max(cpus - READ_RESERVE, 0.25 * workers)
    return workers, min(1.0, free / workers), (1.0 if use_gpu else 0.0)


def _encode_rows(ray: Any, kind: str, shards: list[dict[str, Any]], actor_args: dict[str, Any], workers: int,
                 cpus: float, gpus: float, batch_size: int):
    """Ray Data: read the shards' images, encode on the actor pool; yields numpy batches of rows
    (name, embedding, pixels, error) in input order."""
    from ray.data import ActorPoolStrategy, DataContext

    with warnings.catch_warnings():
        # Ray 2.60's DataContext() assigns its own deprecated fields (use_push_based_shuffle,
        # use_polars) while initialising and warns about them: Ray's doing, not a deprecated
        # use of ours; every other Ray deprecation still reaches the caller (tests: errors).
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="ray.data.context")
        context = DataContext.get_current()
    context.execution_options.preserve_order = True  # shards complete in order: bounded buffers
    if kind == "photos":
        files = [f for s in shards for f in s["files"]]
        # Files grouped into read tasks of about FILES_PER_READ (one task per small file costs
        # more in scheduling than the read itself).
        ds = ray.data.read_binary_files(files, include_paths=True, num_cpus=READ_CPUS,
                                        override_num_blocks=max(1, -(-len(files) // FILES_PER_READ)))
        ds = ds.map_batches(lambda b: {"name": b["path"], "bytes": b["bytes"]}, batch_format="numpy")
    else:
        tars = [s["tar"] for s in shards]
        ds = ray.data.read_webdataset(tars, decoder=None, include_paths=True, num_cpus=READ_CPUS)
        ds = ds.map_batches(_webdataset_rows, batch_format="pyarrow")
    ds = ds.map_batches(_EncodeActor, fn_constructor_kwargs=actor_args, compute=ActorPoolStrategy(size=workers),
                        batch_size=batch_size, num_cpus=cpus, num_gpus=gpus, batch_format="numpy")
    yield from ds.iter_batches(batch_size=None, batch_format="numpy")


def _webdataset_rows(table: Any) -> dict[str, Any]:
    """A read_webdataset batch -> rows ``name`` = "TAR#KEY" and ``bytes`` of the sample's first
    image member (empty when it has none)."""
    from .sources.inputs import IMAGE_EXTENSIONS

    columns = [c for c in table.column_names if c.lower() in IMAGE_EXTENSIONS]
    keys = table.column("__key__").to_pylist()
    urls = table.column("path").to_pylist() if "path" in table.column_names else \
        table.column("__url__").to_pylist()
    data: list[bytes] = []
    for i in range(table.num_rows):
        value = b""
        for c in columns:  # pandas fills a sample's missing members with NaN
            cell = table.column(c)[i].as_py()
            if isinstance(cell, (bytes, bytearray)) and cell:
                value = bytes(cell)
                break
        data.append(value)
    names = np.array([f"{os.path.abspath(u)}#{k}" for u, k in zip(urls, keys)], dtype=object)
    return {"name": names, "bytes": np.array(data, dtype=object)}


def _expected(kind: str, shard: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(row name, item id, path shown in errors) of every row a shard's encoding yields."""
    if kind == "photos":
        return [(f, i, f) for f, i in zip(shard["files"], shard["ids"])]
    return [(f"{shard['tar']}#{key}", key, f"{shard['source']}#{member}") for key, member in shard["samples"]]


def compress(
    inputs: Sequence[str | os.PathLike], output: str | os.PathLike, *, address: str | None = None,
    model: str = "default", dictionary: str | os.PathLike | None = None, workers: int | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE, batch_size: int = 32, providers: str = "auto", int8: bool = False,
    gpu: bool | None = None, glob: str | None = None, n_atoms: int | None = None, n_nonzero: int | None = None,
    quality: str = "medium", step: float | None = None, precision: str = "float16", n_iter: int = 10,
    seed: int = 0, sample_size: int | None = None, chunk_size: int | None = None, force: bool = False,
    num_cpus: int | None = None, progress: Callable[[int, int], object] | None = None,
    _fault: str | None = None, _stop_after: int | None = None,
) -> dict[str, Any]:
    """Compress photos, webdataset tars or a clip-retrieval folder on Ray into the sharded
    collection ``OUT.smic.d/`` (shards, dictionary, manifest, errors file); see the module
    docstring for the steps. Returns a summary (items, skipped inputs with reasons, shards,
    seconds, images per second).

    Args:
        inputs: photo files and folders, tar files or brace patterns, or one clip-retrieval
            folder (one kind per run).
        output: ``OUT.smic``; the shards go to ``OUT.smic.d/``.
        address: a Ray cluster ("auto", "ray://host:10001", ...); None: the cluster this
            process is already connected to, or a new local one.
        model: CLIP image tower (a pairing, architecture or .onnx path), as ``smic compress``.
            For clip-retrieval folders: only the name recorded in the files.
        dictionary: a shared .smicd to code with (None: learn one on a sample).
        workers: encoding actors (default: one per GPU, else the cluster's CPUs less one).
        shard_size: photos per shard (tars and clip-retrieval parts are a shard each).
        batch_size: images per model call, and rows per actor call.
        providers, int8, glob: as ``smic compress``; gpu: request a GPU per actor (None: when
            the cluster has one).
        n_atoms, n_nonzero, quality, step, precision, n_iter, seed, sample_size: dictionary
            learning, as :meth:`smic_fast.Dictionary.fit` (sample_size None: 50,000).
        chunk_size: items per independently decodable chunk of each shard (default: as
            :func:`smic_fast.compress`, the quality preset's when learning, else 256).
        force: start over when OUT.smic.d holds a run with other inputs or options (default:
            refuse); a run with the same plan is always resumed.
        num_cpus: CPUs of a local cluster started here (None: all).
        progress: called with (shards done, shards planned) after each shard.
    """
    from .version import __version__
    from .store.collection import DEFAULT_CHUNK
    from .coding.dictionary import LEARN_SAMPLE, Dictionary, preset_chunk_size, preset_n_atoms

    ray = _require_ray()
    started = time.perf_counter()
    inputs = [os.fspath(p) for p in inputs]
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise ValueError(f"shard_size must be a positive integer, got {shard_size!r}")
    sample_size = LEARN_SAMPLE if sample_size is None else sample_size
    kind, shards = plan_shards(inputs, shard_size=shard_size, glob=glob)
    given = None if dictionary is None else Dictionary.load(dictionary)
    if chunk_size is None:  # as the single-process compress chooses, so a merge equals its file
        chunk_size = (preset_chunk_size(quality) if given is None else None) or DEFAULT_CHUNK
    options = {"model": model, "int8": int8, "shard_size": shard_size, "chunk_size": chunk_size,
               "dictionary": given.hash if given else {
                   "n_atoms": n_atoms, "n_nonzero": n_nonzero, "quality": quality, "step": step,
                   "precision": precision, "n_iter": n_iter, "seed": seed, "sample_size": sample_size}}
    plan = _fingerprint(kind, shards, options)
    folder = shard_folder(output)
    manifest = _resume(folder, plan, force)
    seconds: dict[str, float] = {"plan": time.perf_counter() - started}

    t = time.perf_counter()
    ours = _connect(ray, address, num_cpus)
    seconds["cluster start"] = time.perf_counter() - t
    try:
        n_workers, cpus, gpus = _resources(ray, workers, gpu)
        home = os.environ.get("SMIC_HOME")
        actor_args = {"model": model, "providers": providers, "batch_size": batch_size, "int8": int8, "home": home,
                      "fault": _fault}
        recorded_model = model
        if kind != "embeddings" and (model.endswith(".onnx") or os.sep in model or os.path.exists(model)):
            from .encode.clip_models import model_label
            from .encode.clip_onnx import ClipEncoder

            # An .onnx path is recorded by what its export metadata says (as in one process).
            recorded_model = model_label(model, ClipEncoder(model, providers="cpu", batch_size=1, workers=1).metadata)
        t = time.perf_counter()
        if manifest is None:
            folder.mkdir(parents=True, exist_ok=True)
            if given is None:
                given = _learn(ray, kind, shards, actor_args, n_workers, cpus, gpus, batch_size,
                               dict(n_atoms=n_atoms, n_nonzero=n_nonzero, quality=quality, step=step,
                                    precision=precision, n_iter=n_iter, seed=seed, sample_size=sample_size),
                               lambda n: preset_n_atoms(n, quality))  # K as compress() picks it
            given.save(folder / DICTIONARY)
            manifest = Manifest(folder=folder, plan=plan, n_shards=len(shards), dictionary_hash=given.hash,
                                model=recorded_model, writer=f"smic-fast {__version__}")
            manifest.save()
        else:
            manifest.dictionary()  # the saved dictionary is there and is the manifest's
        seconds["dictionary"] = time.perf_counter() - t
        dictionary_path = str(folder / DICTIONARY)
        t = time.perf_counter()
        pending = [i for i in range(len(shards)) if i not in manifest.done()]
        write = ray.remote(num_cpus=min(cpus, 0.5), max_retries=3)(_write_shard)
        committed = 0

        def commit(record: dict[str, Any]) -> None:
            nonlocal committed
            manifest.add(ShardRecord(**record))
            committed += 1
            if progress is not None:
                progress(len(manifest.shards), manifest.n_shards)
            if _stop_after is not None and committed >= _stop_after:
                raise KeyboardInterrupt(f"test hook: stopped after {committed} shards")

        common = (dictionary_path, recorded_model, chunk_size)
        in_flight: list[Any] = []

        def drain(block: bool) -> None:
            while in_flight:
                done, _ = ray.wait(in_flight, num_returns=1, timeout=None if block else 0)
                if not done:
                    return
                in_flight.remove(done[0])
                commit(ray.get(done[0]))

        if kind == "embeddings":
            for i in pending:
                s = shards[i]
                in_flight.append(write.remote(str(folder), i, s["source"], None, [], [], [], *common,
                                              (s["npy"], s["parquet"])))
            drain(True)
        else:
            for i in pending:  # damaged tars with no sample: nothing to encode
                if kind == "webdataset" and not shards[i]["samples"]:
                    commit(asdict(ShardRecord(index=i, source=shards[i]["source"], items=0,
                                              skipped=_shard_problems(shards[i]))))
            to_encode = [i for i in pending if i not in manifest.done()]
            if to_encode:
                _encode_and_write(ray, kind, shards, to_encode, actor_args, n_workers, cpus, gpus, batch_size,
                                  write, str(folder), common, in_flight, drain)
        seconds["encode and code"] = time.perf_counter() - t
        manifest.complete = len(manifest.shards) == manifest.n_shards
        manifest.save()
        errors = manifest.write_errors()
    finally:
        if ours:
            ray.shutdown()
    total = time.perf_counter() - started
    seconds["total"] = total
    inputs_seen = manifest.items + len(manifest.skipped)
    return {"command": "compress", "output": str(folder), "manifest": str(folder / MANIFEST), "kind": kind,
            "items": manifest.items, "skipped": manifest.skipped, "errors_file": str(errors),
            "shards": manifest.n_shards, "shards_resumed": manifest.n_shards - len(pending),
            "shard_bytes": sum(s.bytes for s in manifest.shards), "dictionary_hash": manifest.dictionary_hash,
            "model": manifest.model, "workers": n_workers, "cpus_per_actor": cpus, "gpus_per_actor": gpus,
            "seconds": seconds, "images_per_second": inputs_seen / total if total else None}


def _shard_problems(shard: dict[str, Any]) -> list[dict[str, str]]:
    """What a tar shard reports before any image is read: its damage, samples without an image."""
    problems = [{"id": key, "path": f"{shard['source']}#{key}", "reason": "no image member in the sample"}
                for key in shard.get("without_image", [])]
    if shard.get("error"):
        problems.append({"id": "", "path": shard["source"], "reason": shard["error"]})
    return problems


def _encode_and_write(ray: Any, kind: str, shards: list[dict[str, Any]], pending: list[int],
                      actor_args: dict[str, Any], workers: int, cpus: float, gpus: float, batch_size: int,
                      write: Any, folder: str, common: tuple, in_flight: list[Any],
                      drain: Callable[[bool], None]) -> None:
    """Stream the pending shards through the actor pool; each shard, once all its rows are in,
    goes to a writer task (coded in parallel with the encoding of the next ones)."""
    owner: dict[str, tuple[int, int]] = {}  # row name -> (shard, position in it)
    buffers: dict[int, dict[str, Any]] = {}
    for i in pending:
        expected = _expected(kind, shards[i])
        buffers[i] = {"expected": expected, "rows": [None] * len(expected), "left": len(expected)}
        for position, (name, _, _) in enumerate(expected):
            owner[name] = (i, position)
    batches = _encode_rows(ray, kind, [shards[i] for i in pending], actor_args, workers, cpus, gpus, batch_size)
    with closing(batches):  # closed (and Ray Data's executor with it) on any exception
        for batch in batches:
            for name, embedding, pixels, error in zip(batch["name"], batch["embedding"], batch["pixels"],
                                                      batch["error"]):
                place = owner.get(str(name))
                if place is None or place[0] not in buffers:
                    continue  # a member the header scan did not count (a second image of a sample)
                i, position = place
                buffer = buffers[i]
                if buffer["rows"][position] is None:
                    buffer["left"] -= 1
                buffer["rows"][position] = (embedding, int(pixels), str(error))
                if buffer["left"] == 0:
                    in_flight.append(_submit(kind, shards[i], i, buffers.pop(i), write, folder, common))
            drain(False)
    for i, buffer in list(buffers.items()):  # rows Ray Data never produced (a member gone missing)
        for position, row in enumerate(buffer["rows"]):
            if row is None:
                buffer["rows"][position] = (None, 0, "not read (missing from the input)")
        in_flight.append(_submit(kind, shards[i], i, buffer, write, folder, common))
    drain(True)


def _submit(kind: str, shard: dict[str, Any], index: int, buffer: dict[str, Any], write: Any, folder: str,
            common: tuple) -> Any:
    ids, pixels, rows = [], [], []
    skipped = _shard_problems(shard) if kind == "webdataset" else []
    for (_, item_id, path), (embedding, pixel_count, error) in zip(buffer["expected"], buffer["rows"]):
        if error:
            skipped.append({"id": item_id, "path": path, "reason": error})
        else:
            ids.append(item_id)
            pixels.append(pixel_count)
            rows.append(embedding)
    embeddings = np.stack(rows) if rows else None
    return write.remote(folder, index, shard["source"], embeddings, ids, pixels, skipped, *common)


def _learn(ray: Any, kind: str, shards: list[dict[str, Any]], actor_args: dict[str, Any], workers: int,
           cpus: float, gpus: float, batch_size: int, params: dict[str, Any], n_atoms_for: Callable) -> Any:
    """A dictionary learned on a seeded sample: rows of the embedding parts, or photos encoded
    on the cluster (the same sample :meth:`Dictionary.fit` would draw from all the rows)."""
    from .coding.dictionary import Dictionary, learning_sample
    from .sources.inputs import EmbeddingPart, read_embedding_part

    sample_size = params.pop("sample_size")
    if kind == "embeddings":
        blocks = [read_embedding_part(EmbeddingPart(i, Path(s["npy"]), Path(s["parquet"])))[0]
                  for i, s in enumerate(shards)]
        return _fit(Dictionary, blocks, sample_size, params)
    names = [(s_index, row) for s_index, s in enumerate(shards) for row in range(len(_expected(kind, s)))]
    rows = learning_sample(len(names), sample_size, params["seed"])
    chosen = names if rows is None else [names[r] for r in rows]
    picked: dict[int, list[int]] = {}
    for s_index, row in chosen:
        picked.setdefault(s_index, []).append(row)
    if kind == "photos":
        sample_shards = [{"files": [shards[i]["files"][r] for r in rs], "ids": [shards[i]["ids"][r] for r in rs]}
                         for i, rs in picked.items()]
    else:  # whole tars are read (a tar is read start to end); the rows not sampled are dropped
        sample_shards = [shards[i] for i in picked]
    wanted = {_expected(kind, shards[i])[r][0] for i, rs in picked.items() for r in rs}
    parts = []
    batches = _encode_rows(ray, kind, sample_shards, actor_args, workers, cpus, gpus, batch_size)
    with closing(batches):
        for batch in batches:
            keep = [j for j, (n, e) in enumerate(zip(batch["name"], batch["error"])) if str(n) in wanted and not e]
            parts.append(batch["embedding"][keep])
    sample = np.concatenate(parts) if parts else np.zeros((0, 1), np.float32)
    if len(sample) == 0:
        raise ValueError("no image of the learning sample could be read: nothing to learn a dictionary on")
    params["n_atoms"] = min(params["n_atoms"] or n_atoms_for(len(names)), len(sample))
    return _fit(Dictionary, [sample], None, params)


def _fit(dictionary_class: Any, blocks: list[np.ndarray], sample_size: int | None, params: dict[str, Any]) -> Any:
    """The dictionary single-process ``compress`` learns from the same rows (rows normalised
    twice, as it does), so a clip-retrieval folder gets the very same dictionary either way."""
    params = dict(params)
    n_atoms, n_nonzero = params.pop("n_atoms"), params.pop("n_nonzero")
    return dictionary_class._fit(blocks, n_atoms, n_nonzero, rd_lambda=None, layout="smic", paper_bits=8,
                                 n_threads=None, progress=None, sample_size=sample_size, twice=True, **params)[0]


def _resume(folder: Path, plan: dict[str, Any], force: bool) -> Manifest | None:
    """The manifest of an earlier run of the same plan (its complete shards are kept), or None
    after clearing `folder` for a new run. ValueError for another plan's run without `force`."""
    path = folder / MANIFEST
    ours = (DICTIONARY, "part-", ".")  # a run killed before its first manifest: dictionary, temp files
    if folder.exists() and not path.is_file() and not force and \
            any(not p.name.startswith(ours) for p in folder.iterdir()):
        raise FileExistsError(f"{folder} exists and holds no {MANIFEST}; pass force to replace it")
    if path.is_file():
        manifest = Manifest.load(path)
        if manifest.plan == plan:
            listed = {f for s in manifest.shards for f in (s.file, s.norms_file) if f}
            for stray in folder.glob("part-*"):  # a shard written but never listed, a temp file
                if stray.name not in listed:
                    stray.unlink()
            for record in manifest.shards:
                manifest.check_shard(record)
            manifest.complete = False
            return manifest
        if not force:
            raise FileExistsError(f"{folder} holds a run of other inputs or options; pass force (--force) to "
                                  "start over, or another output")
    if folder.exists():
        shutil.rmtree(folder)
    return None
