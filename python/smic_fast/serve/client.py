"""A small client of ``smic serve`` (on httpx; the ``[serve]`` extra).

    from smic_fast.serve.client import Client

    with Client("http://127.0.0.1:8000") as client:
        items = client.encode(E)                       # (n, d) embeddings -> codes
        items = client.encode(images=["a.jpg"])        # image files (or bytes) -> codes
        E_hat = client.decode([item.code for item in items])
        added = client.append("photos", E, ids=["a", "b"])   # durable once this returns
        hits = client.search("photos", text="a red car", k=5)

Embeddings travel as base64 of little-endian float32 (exact and compact). A 429 (the server's
queue is full) is retried after its Retry-After, ``retries`` times; other errors raise
:class:`ServeError` with the server's status, code and message.
"""
from __future__ import annotations

import base64
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple, Union

import numpy as np

__all__ = ["Client", "Encoded", "Hit", "Item", "ServeError"]

ImageInput = Union[str, "os.PathLike[str]", bytes]


class ServeError(Exception):
    """The server refused a request: HTTP ``status``, its error ``code`` and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class Encoded(NamedTuple):
    """One coded item: its code bytes, their bits, the decoded cosine to the input (when
    asked for) and its id (appends)."""

    code: bytes
    bits: int
    cosine: float | None = None
    id: str | None = None


class Item(NamedTuple):
    """A stored item: id, code, bits and the decoded unit embedding."""

    id: str
    code: bytes
    bits: int
    embedding: np.ndarray


class Hit(NamedTuple):
    """A search result: the item's id and its cosine score."""

    id: str
    score: float


def _image_b64(image: ImageInput) -> str:
    data = image if isinstance(image, bytes) else Path(image).read_bytes()
    return base64.b64encode(data).decode("ascii")


def _rows_b64(embeddings: object) -> list[str]:
    rows = np.asarray(embeddings, dtype="<f4")
    if rows.ndim == 1:
        rows = rows[None, :]
    if rows.ndim != 2:
        raise ValueError(f"embeddings must be (n, d) or (d,), got shape {rows.shape}")
    return [base64.b64encode(np.ascontiguousarray(row).tobytes()).decode("ascii") for row in rows]


def _vector(value: Any) -> np.ndarray:
    if isinstance(value, str):
        return np.frombuffer(base64.b64decode(value), "<f4").astype(np.float32)
    return np.asarray(value, dtype=np.float32)


class Client:
    """A connection pool to one ``smic serve``.

    Args:
        base_url: the server, e.g. ``http://127.0.0.1:8000``.
        token: the bearer token (``smic serve --token-file``), or None.
        timeout: seconds per request.
        retries: how many times a 429 is retried (after the server's Retry-After).
        transport: an httpx transport; None for the network.
        http: an ``httpx.Client`` to send through instead (for instance starlette's
            ``TestClient`` of the app, in-process); `base_url`, `timeout` and `transport` are
            then its own, and closing this client leaves it open.
    """

    def __init__(self, base_url: str = "http://127.0.0.1:8000", *, token: str | None = None, timeout: float = 60.0,
                 retries: int = 3, transport: Any = None, http: Any = None) -> None:
        import httpx

        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.retries = retries
        self._owned = http is None
        self._http = http if http is not None else httpx.Client(base_url=base_url, timeout=timeout,
                                                                transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections (not those of a client given as `http`)."""
        if self._owned:
            self._http.close()

    # ---------------------------------------------------------------- plumbing
    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        for attempt in range(self.retries + 1):
            response = self._http.request(method, path, headers=self._headers, **kwargs)
            if response.status_code == 429 and attempt < self.retries:
                time.sleep(min(30.0, float(response.headers.get("retry-after", "1"))))
                continue
            break
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                raise ServeError(response.status_code, str(error["code"]), str(error["message"]))
            except (ValueError, KeyError, TypeError):
                raise ServeError(response.status_code, "http_error", response.text[:500]) from None
        return response.json()

    @staticmethod
    def _payload(embeddings: object | None, images: Sequence[ImageInput] | None) -> dict[str, Any]:
        if (embeddings is None) == (images is None):
            raise ValueError("give embeddings or images (one of the two)")
        if embeddings is not None:
            return {"embeddings": _rows_b64(embeddings)}
        return {"images": [_image_b64(image) for image in images or ()]}

    # ---------------------------------------------------------------- coding
    def encode(self, embeddings: object | None = None, *, images: Sequence[ImageInput] | None = None,
               collection: str | None = None, return_cosine: bool = False) -> list[Encoded]:
        """Code (n, d) embeddings, or image files / bytes, with the server's dictionary (or
        `collection`'s)."""
        body = self._payload(embeddings, images)
        body["return_cosine"] = return_cosine
        if collection is not None:
            body["collection"] = collection
        reply = self._request("POST", "/v1/encode", json=body)
        return [Encoded(base64.b64decode(i["code"]), int(i["bits"]), i.get("cosine")) for i in reply["items"]]

    def decode(self, codes: Sequence[bytes], *, collection: str | None = None) -> np.ndarray:
        """(n, d) float32 unit embeddings of codes made by :meth:`encode`."""
        body: dict[str, Any] = {"codes": [base64.b64encode(c).decode("ascii") for c in codes],
                                "encoding_format": "base64"}
        if collection is not None:
            body["collection"] = collection
        reply = self._request("POST", "/v1/decode", json=body)
        return np.stack([_vector(v) for v in reply["embeddings"]])

    def embeddings(self, inputs: Sequence[ImageInput], *, texts: Sequence[str] = ()) -> np.ndarray:
        """CLIP embeddings of images (and texts, with a server text model) through the
        OpenAI-shaped ``/v1/embeddings``: (n, d) float32, images first."""
        values = [f"data:application/octet-stream;base64,{_image_b64(i)}" for i in inputs] + list(texts)
        reply = self._request("POST", "/v1/embeddings", json={"input": values, "encoding_format": "base64"})
        return np.stack([_vector(d["embedding"]) for d in sorted(reply["data"], key=lambda d: d["index"])])

    # ---------------------------------------------------------------- collections
    def append(self, collection: str, embeddings: object | None = None, *,
               images: Sequence[ImageInput] | None = None, ids: Sequence[str] | None = None) -> list[Encoded]:
        """Encode and append to `collection`; returns once the items are durable, with each
        item's id and code as stored."""
        body = self._payload(embeddings, images)
        if ids is not None:
            body["ids"] = list(ids)
        reply = self._request("POST", f"/v1/collections/{collection}/items", json=body)
        return [Encoded(base64.b64decode(i["code"]), int(i["bits"]), None, i["id"]) for i in reply["items"]]

    def get(self, collection: str, item_id: str) -> Item:
        """One stored item: its code and decoded embedding."""
        from urllib.parse import quote

        reply = self._request("GET", f"/v1/collections/{collection}/items/{quote(item_id, safe='')}",
                              params={"encoding_format": "base64"})
        return Item(reply["id"], base64.b64decode(reply["code"]), int(reply["bits"]), _vector(reply["embedding"]))

    def search(self, collection: str, *, embedding: object | None = None, image: ImageInput | None = None,
               text: str | None = None, k: int = 10) -> list[Hit]:
        """Top-k items of `collection` for one query (an embedding, an image or a text)."""
        given = [v is not None for v in (embedding, image, text)]
        if sum(given) != 1:
            raise ValueError("give one query: embedding, image or text")
        body: dict[str, Any] = {"k": k}
        if embedding is not None:
            body["embedding"] = np.asarray(embedding, dtype=np.float64).ravel().tolist()
        elif image is not None:
            body["image"] = _image_b64(image)
        else:
            body["text"] = text
        reply = self._request("POST", f"/v1/collections/{collection}/search", json=body)
        return [Hit(r["id"], float(r["score"])) for r in reply["results"]]

    def collections(self) -> list[str]:
        """The served collections' names."""
        return list(self._request("GET", "/v1/collections")["collections"])

    # ---------------------------------------------------------------- operations
    def healthy(self) -> bool:
        """``GET /healthz`` answered 200."""
        return self._http.get("/healthz", headers=self._headers).status_code == 200

    def ready(self) -> bool:
        """``GET /readyz`` answered 200 (loaded, warmed, not draining)."""
        return self._http.get("/readyz", headers=self._headers).status_code == 200
