"""Rate–fidelity evaluation: sweep smic-fast's settings and baseline codecs over one collection,
measure each point from the bytes it writes, and report (``smic eval``).

    from smic_fast.evaluation import run_sweep, write_report
    points = run_sweep(E, quick=True)          # list of Point (one per codec setting)
    write_report(points, "report/")           # index.html, PNGs, results.json, results.csv
    grid = regeneration_grid(points, E, generator, photos=paths)   # originals beside regenerations

Nothing here is imported by ``import smic_fast``; FAISS and matplotlib are imported only when a
PQ point or a plot is made (the ``[eval]`` extra).
"""
from __future__ import annotations

from .grid import RegenerationGrid, regeneration_grid
from .report import write_report
from .retrieval import recall_at_k
from .sweep import Point, SweepConfig, run_sweep

__all__ = ["Point", "RegenerationGrid", "SweepConfig", "recall_at_k", "regeneration_grid", "run_sweep",
           "write_report"]
