"""The evaluation report: ``index.html`` (self-contained: the plots are embedded as base64 PNG
data URIs, no script, no network), the PNG plots themselves, ``results.json`` (every point, the
collection's description, the comparison at fixed fidelity) and ``results.csv`` (one row per
point). Plots use matplotlib's Agg backend (no display needed)."""
from __future__ import annotations

import base64
import csv
import html
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

from .sweep import METHODS, Point, Sweep, comparison_table, frontier

__all__ = ["write_report", "CSV_FIELDS"]

CSV_FIELDS = ("method", "settings", "items", "dim", "bits_per_item", "marginal_bits_per_item",
              "bits_per_pixel", "marginal_bits_per_pixel", "cosine_mean", "cosine_p5", "recall_at_10",
              "encode_s", "decode_s", "fit_s", "total_bytes", "item_bytes", "expected_bits_per_item")
_STYLE = {"smic": ("C0", "o"), "smic-shared": ("C1", "s"), "smic-1": ("C5", "P"), "paper": ("C2", "^"),
          "scalar": ("C3", "v"), "pq": ("C4", "D"), "kmeans": ("C6", "X"), "rq": ("C8", "*")}
_NAMES = {"smic": "smic-fast (own dictionary)", "smic-shared": "smic-fast (shared dictionary)",
          "smic-1": "smic-fast, one atom (low end)", "paper": "SMIC paper layout",
          "scalar": "scalar + range coder", "pq": "FAISS PQ", "kmeans": "FAISS spherical k-means",
          "rq": "FAISS residual quantisation"}


def _pyplot():
    from .._extras import require

    require("eval", "the report's plots", ("matplotlib",))
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def _by_method(points: Sequence[Point]) -> dict[str, list[Point]]:
    groups: dict[str, list[Point]] = {}
    for p in points:
        groups.setdefault(p.method, []).append(p)
    return dict(sorted(groups.items(), key=lambda kv: METHODS.index(kv[0]) if kv[0] in METHODS else 99))


def _curve_plot(plt, points: Sequence[Point], y: str, ylabel: str, path: Path, rate: str) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for method, group in _by_method(points).items():
        color, marker = _STYLE.get(method, ("k", "x"))
        ax.scatter([getattr(p, rate) for p in group], [getattr(p, y) for p in group], color=color,
                   marker=marker, alpha=0.35, s=18)
        front = frontier(group, rate, y)
        ax.plot([r for r, _ in front], [f for _, f in front], color=color, marker=marker,
                label=_NAMES.get(method, method))
    ax.set_xscale("log")
    ax.set_xlabel("bits per item" + (" (total, dictionary or codebook included)" if rate == "bits_per_item"
                                      else " (marginal)"))
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _histogram_plot(plt, item_bits: dict[str, list[float]], path: Path) -> bool:
    if not item_bits:
        return False
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for label, bits in item_bits.items():
        ax.hist(bits, bins=min(60, max(10, len(bits) // 20)), alpha=0.7, label=label)
    ax.set_xlabel("bits of one item (ideal code length under the stored tables)")
    ax.set_ylabel("items")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def _grid_plot(plt, grid: Sequence[tuple[str, Sequence]], path: Path) -> None:
    """Columns of images (PIL images or HxWx3 arrays), each titled: the originals first, then
    their regenerations at a few rates."""
    rows = max(len(images) for _, images in grid)
    fig, axes = plt.subplots(rows, len(grid), figsize=(2.2 * len(grid), 2.2 * rows), dpi=110, squeeze=False)
    for col, (title, images) in enumerate(grid):
        axes[0, col].set_title(title, fontsize=8)
        for row in range(rows):
            ax = axes[row, col]
            ax.axis("off")
            if row < len(images):
                ax.imshow(images[row])
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def _table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html(sweep: Sweep, images: dict[str, Path]) -> str:
    meta = sweep.meta
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>smic eval</title><style>"
        "body{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;font-size:90%;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}img{max-width:100%}"
        "</style></head><body>",
        "<h1>smic eval: rate versus fidelity</h1>",
        f"<p>{meta['items']} items of dimension {meta['dim']}; dictionary sizes K = {meta['n_atoms']}; "
        f"shared dictionary trained on {html.escape(str(meta['shared_dictionary_trained_on']))}; "
        f"{meta['seconds']} s on {html.escape(meta['machine'])}. Rates are counted from the coded bytes "
        "(total: everything a reader needs, the dictionary, table or codebook included; marginal: "
        "the items' own bytes). Fidelity is the cosine similarity between each original embedding "
        "and its reconstruction; recall@10 searches the reconstructions with the original queries.</p>",
    ]
    for level_rate, title in (("bits_per_item", "total"), ("marginal_bits_per_item", "marginal")):
        table = comparison_table(sweep.points, rate=level_rate)
        levels = sorted({lvl for row in table.values() for lvl in row}, key=float)
        parts.append(f"<h2>Bits per item ({title}) needed for a mean cosine of at least …</h2>")
        parts.append(_table(["method", *levels], [[_NAMES.get(m, m), *(row[lvl] for lvl in levels)]
                                                  for m, row in table.items()]))
    for name, caption in (("rate_cosine", "Mean cosine versus total rate"),
                          ("rate_cosine_marginal", "Mean cosine versus marginal rate"),
                          ("rate_recall", "Recall@10 versus total rate"),
                          ("bits_histogram", "Bits per item of one setting"),
                          ("regenerations", "Originals and their regenerations")):
        if name in images:
            data = base64.b64encode(images[name].read_bytes()).decode()
            parts.append(f"<h2>{caption}</h2><img alt='{name}' src='data:image/png;base64,{data}'>")
            if name == "regenerations" and isinstance(meta.get("grid"), dict):  # evaluation/grid.py's caption
                parts.append(f"<p>{html.escape(str(meta['grid'].get('caption', '')))}</p>")
    parts.append("<h2>Every point</h2>")
    parts.append(_table(["method", "settings", "bits/item", "marginal bits/item", "bits/pixel", "mean cos",
                         "p5 cos", "recall@10", "encode s", "decode s", "fit s"],
                        [[p.method, ", ".join(f"{k}={v}" for k, v in p.settings.items()), p.bits_per_item,
                          p.marginal_bits_per_item, p.bits_per_pixel, p.cosine_mean, p.cosine_p5,
                          p.recall_at_10, p.encode_s, p.decode_s, p.fit_s] for p in sweep.points]))
    parts.append("</body></html>")
    return "\n".join(parts)


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_report(sweep: Sweep, out: str | os.PathLike,
                 grid: Sequence[tuple[str, Sequence]] | None = None) -> dict[str, Path]:
    """Write the report files into folder `out` (created if needed); returns {name: path}.

    `grid`: optional columns (title, images) drawn side by side in ``regenerations.png``:
    the originals, then the images a generator rebuilt from their embeddings decoded at a few
    rates (the column titles say which); images are PIL images or HxWx3 arrays."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    plt = _pyplot()
    files: dict[str, Path] = {}
    images: dict[str, Path] = {}
    # recall@k with k = 10, or fewer when the collection has no 10 other items
    recall = f"recall@{sweep.meta.get('recall_k', 10)}"
    if sweep.points:
        for name, y, label, rate in (("rate_cosine", "cosine_mean", "mean cosine similarity", "bits_per_item"),
                                     ("rate_cosine_marginal", "cosine_mean", "mean cosine similarity",
                                      "marginal_bits_per_item"),
                                     ("rate_recall", "recall_at_10", recall, "bits_per_item")):
            images[name] = folder / f"{name}.png"
            _curve_plot(plt, sweep.points, y, label, images[name], rate)
    if _histogram_plot(plt, sweep.item_bits, folder / "bits_histogram.png"):
        images["bits_histogram"] = folder / "bits_histogram.png"
    if grid:
        if any(len(images) == 0 for _, images in grid):
            raise ValueError("every grid column needs at least one image")
        images["regenerations"] = folder / "regenerations.png"
        _grid_plot(plt, grid, images["regenerations"])
    files.update(images)
    files["results.json"] = folder / "results.json"
    files["results.json"].write_text(json.dumps(_json_safe(sweep.to_dict()), indent=1, allow_nan=False))
    files["results.csv"] = folder / "results.csv"
    with files["results.csv"].open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for p in sweep.points:
            row = p.to_dict()
            row["settings"] = json.dumps(row["settings"], sort_keys=True)
            writer.writerow({k: row[k] for k in CSV_FIELDS})
    files["index.html"] = folder / "index.html"
    files["index.html"].write_text(_html(sweep, images), encoding="utf-8")
    return files
