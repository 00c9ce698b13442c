"""``smic serve``: an encoding service (images or embeddings in, SMIC codes out, collections
appended durably) on FastAPI + uvicorn, with Prometheus metrics and a Ray Serve deployment of
the same app. Needs the ``[serve]`` extra (the Ray deployment: ``[ray]`` too). docs/serve.md.

    from smic_fast.serve import ServeConfig, create_app
    app = create_app(ServeConfig(dictionary="shared.smicd", collections="collections/"))
"""
from __future__ import annotations

from .service import ServeConfig, Service, ServiceError

__all__ = ["ServeConfig", "Service", "ServiceError", "create_app"]


def create_app(config: ServeConfig, *, service: Service | None = None):  # type: ignore[no-untyped-def]
    """The FastAPI app (imported on use: FastAPI is the ``[serve]`` extra)."""
    from .app import create_app as build

    return build(config, service=service)
