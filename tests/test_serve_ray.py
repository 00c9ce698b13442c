"""smic serve on Ray Serve (issue 29): two replicas of the same app on a local cluster, their
appends through the one writer of the folder; a killed replica costs no acknowledged item.
Skipped without Ray Serve (``ray[serve]``)."""
from __future__ import annotations

import base64
import os
import socket

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("ray.serve")
pytest.importorskip("pytest_timeout")

import smic_fast as smic

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

DIM = 48


@pytest.fixture(scope="module")
def ray_serve_url():
    import ray
    from ray import serve

    saved = {k: os.environ.get(k) for k in ("RAY_USAGE_STATS_ENABLED", "RAY_AUTH_MODE")}
    os.environ.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=200 * 1024 * 1024)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()
    ray.shutdown()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_two_replicas_and_a_killed_one_lose_nothing(ray_serve_url, tmp_path):
    import httpx
    import ray
    from ray import serve

    from smic_fast.serve import ServeConfig
    from smic_fast.serve.ray import deployment

    rng = np.random.default_rng(0)
    D = smic.Dictionary.fit(rng.standard_normal((500, DIM)).astype(np.float32), n_atoms=24)
    D.save(tmp_path / "d.smicd")
    (tmp_path / "collections").mkdir()
    config = ServeConfig(dictionary=tmp_path / "d.smicd", collections=tmp_path / "collections", max_batch_size=8)
    serve.run(deployment(config, num_replicas=2), route_prefix="/", name="smic")
    acked: dict[str, bytes] = {}
    with httpx.Client(base_url=ray_serve_url, timeout=30) as http:
        assert http.get("/readyz").status_code == 200
        E = rng.standard_normal((3, DIM)).astype(np.float32)
        coded = http.post("/v1/encode", json={"embeddings": E.tolist()}).json()["items"]
        assert [base64.b64decode(i["code"]) for i in coded] == [D.encode(x) for x in E]

        def append(i: int) -> int:
            reply = http.post("/v1/collections/c/items",
                              json={"embeddings": rng.standard_normal((1, DIM)).tolist(), "ids": [f"a{i}"]})
            if reply.status_code == 200:
                acked[f"a{i}"] = base64.b64decode(reply.json()["items"][0]["code"])
            return reply.status_code

        assert all(append(i) == 200 for i in range(10))
        replicas = [a for a in ray.util.list_named_actors(all_namespaces=True) if "SERVE_REPLICA" in a["name"]]
        assert len(replicas) == 2
        ray.kill(ray.get_actor(replicas[0]["name"], namespace=replicas[0]["namespace"]), no_restart=True)
        statuses = [append(i) for i in range(10, 30)]
        assert statuses.count(200) >= 15  # the other replica (and the replacement) keep serving
        got = http.get("/v1/collections/c/items/a3").json()
        assert base64.b64decode(got["code"]) == acked["a3"]
        assert http.post("/v1/collections/c/search", json={"embedding": E[0].tolist(), "k": 2}).status_code == 200
    serve.delete("smic")
    col = smic.open(tmp_path / "collections" / "c.smic", dictionary=D)
    assert len(col.ids) == len(set(col.ids))
    for item_id, code in acked.items():  # every acknowledged item, once, with its code
        assert bytes(D.encode_items(col.item_symbols(item_id), 1)[0]) == code
