"""The evaluation report: ``index.html`` (self-contained: the plots are embedded as base64 PNG
data URIs, no script, no network), the PNG plots themselves, ``results.json`` (every point, the
collection's description, the comparison at fixed fidelity) and ``results.csv`` (one row per
point). Plots use matplotlib's Agg backend (no display needed).

With a held-out sweep (``run_sweep(..., holdout=...)``, ``smic eval --holdout``) the report leads
with the held-out items: marginal bits per item of every method on items its model never saw,
plotted with the Gaussian and Gaussian-mixture rate–distortion bounds of the training part
(bounds.py), then the in-collection view (total bits, the model included) as before;
``results_held_out.csv`` lists the held-out points."""
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
          "scalar": ("C3", "v"), "pq": ("C4", "D"), "kmeans": ("C6", "X"), "rq": ("C8", "*"),
          "opq": ("C9", "d"), "lsq": ("C7", "h"), "rabitq": ("olive", "<")}
_NAMES = {"smic": "smic-fast (own dictionary)", "smic-shared": "smic-fast (shared dictionary)",
          "smic-1": "smic-fast, one atom (low end)", "paper": "SMIC paper layout",
          "scalar": "scalar + range coder", "pq": "FAISS PQ", "kmeans": "FAISS spherical k-means",
          "rq": "FAISS residual quantisation", "opq": "FAISS OPQ", "lsq": "FAISS LSQ", "rabitq": "FAISS RaBitQ"}
_BOUNDS = (("gaussian", "Gaussian bound (training covariance)", "--"),
           ("mixture", "Gaussian-mixture bound ({n_classes} classes)", ":"))


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


def _curve_plot(plt, points: Sequence[Point], y: str, ylabel: str, path: Path, rate: str,
                bounds: dict | None = None, xlabel: str | None = None) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    rates = [getattr(p, rate) for p in points if getattr(p, rate) > 0]
    low_rate = min(rates, default=0.0) / 2  # the bounds drawn over the points' range, not beyond
    low_fidelity = min((getattr(p, y) for p in points), default=0.0) - 0.05
    for key, name, style in _BOUNDS if bounds else ():
        pairs = [(b, c) for c, b in zip(bounds["cosine"], bounds[key])
                 if b is not None and b > 0 and b >= low_rate and c >= low_fidelity]
        ax.plot([b for b, _ in pairs], [c for _, c in pairs], color="k", linestyle=style, linewidth=1.2,
                label=name.format(n_classes=bounds.get("n_classes", "")))
    for method, group in _by_method(points).items():
        color, marker = _STYLE.get(method, ("k", "x"))
        ax.scatter([getattr(p, rate) for p in group], [getattr(p, y) for p in group], color=color,
                   marker=marker, alpha=0.35, s=18)
        front = frontier(group, rate, y)
        ax.plot([r for r, _ in front], [f for _, f in front], color=color, marker=marker,
                label=_NAMES.get(method, method))
    ax.set_xscale("log")
    ax.set_xlabel(xlabel or "bits per item" + (" (total, dictionary or codebook included)"
                                                if rate == "bits_per_item" else " (marginal)"))
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
    held = meta.get("holdout") if sweep.held_out else None
    where = ""
    if held:
        where = " (in-collection: the training part)"
        parts += _held_out_html(sweep, images)
        parts.append(f"<h2>In the collection: the {held['train_items']} training items coded with models learned "
                     "on them</h2><p>What a collection coded with its own dictionary or codebook costs, the model "
                     "included in the total (as <code>smic compress</code> writes it).</p>")
    for level_rate, title in (("bits_per_item", "total"), ("marginal_bits_per_item", "marginal")):
        table = comparison_table(sweep.points, rate=level_rate)
        levels = sorted({lvl for row in table.values() for lvl in row}, key=float)
        parts.append(f"<h2>Bits per item ({title}){where} needed for a mean cosine of at least …</h2>")
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
    if held:
        parts.append("<h2>Every held-out point</h2>")
        parts.append(_table(["method", "settings", "marginal bits/item", "bits/pixel", "mean cos", "p5 cos",
                             "recall@10", "encode s", "decode s", "fit s"],
                            [[p.method, ", ".join(f"{k}={v}" for k, v in p.settings.items()),
                              p.marginal_bits_per_item, p.marginal_bits_per_pixel, p.cosine_mean, p.cosine_p5,
                              p.recall_at_10, p.encode_s, p.decode_s, p.fit_s] for p in sweep.held_out]))
    parts.append("</body></html>")
    return "\n".join(parts)


def bound_at(bounds: dict, key: str, level: float) -> float | None:
    """A bound's bits per item at a mean cosine among those it was computed at (else None)."""
    for c, b in zip(bounds.get("cosine", ()), bounds.get(key, ())):
        if abs(c - level) < 1e-9:
            return b
    return None


def _held_out_html(sweep: Sweep, images: dict[str, Path]) -> list[str]:
    held, bounds = sweep.meta["holdout"], sweep.meta.get("bounds") or {}
    table = comparison_table(sweep.held_out, rate="marginal_bits_per_item")
    levels = sorted({lvl for row in table.values() for lvl in row}, key=float)
    rows = [[_NAMES.get(m, m), *(row[lvl] for lvl in levels)] for m, row in table.items()]
    for key, name, _ in _BOUNDS if bounds else ():
        rows.append([name.format(n_classes=bounds.get("n_classes", "")),
                     *(bound_at(bounds, key, float(lvl)) for lvl in levels)])
    parts = [
        f"<h2>Held-out items: marginal bits per item needed for a mean cosine of at least …</h2>"
        f"<p>The input was split by a seeded permutation (seed {held['seed']}): {held['train_items']} items to "
        f"learn on, {held['held_out_items']} held out ({held['fraction']:g}). Every method learned its model on "
        "the training part only (smic's dictionaries and entropy-coding tables, the paper layout's, the "
        "scalar quantiser's table, every FAISS codebook) and coded the held-out items with it: the "
        "production case of a shared model coding new items. Rates are the held-out items' own bytes "
        "(for smic, its files with a shared dictionary: <code>smic-shared</code>); fidelity and recall are "
        "measured on those items only. The bounds are the rate–distortion functions of a Gaussian with the "
        "training part's covariance and of a Gaussian mixture fitted on it (reverse water-filling, "
        "distortion 2 (1 − cosine) per item; docs/evaluation.md): a reference a transform coder can "
        "approach, not a limit the codecs above are held to.</p>",
        _table(["method", *levels], rows),
    ]
    if "rate_cosine_held_out" in images:
        data = base64.b64encode(images["rate_cosine_held_out"].read_bytes()).decode()
        parts.append("<h2>Mean cosine versus marginal rate on held-out items</h2>"
                     f"<img alt='rate_cosine_held_out' src='data:image/png;base64,{data}'>")
    return parts


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
    if sweep.held_out:
        images["rate_cosine_held_out"] = folder / "rate_cosine_held_out.png"
        _curve_plot(plt, sweep.held_out, "cosine_mean", "mean cosine similarity (held-out items)",
                    images["rate_cosine_held_out"], "marginal_bits_per_item", bounds=sweep.meta.get("bounds"),
                    xlabel="marginal bits per held-out item (the model learned on the training part)")
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
    if sweep.held_out:
        files["results_held_out.csv"] = folder / "results_held_out.csv"
        with files["results_held_out.csv"].open("w", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=CSV_FIELDS)
            writer.writeheader()
            for p in sweep.held_out:
                row = p.to_dict()
                row["settings"] = json.dumps(row["settings"], sort_keys=True)
                writer.writerow({k: row[k] for k in CSV_FIELDS})
    files["index.html"] = folder / "index.html"
    files["index.html"].write_text(_html(sweep, images), encoding="utf-8")
    return files
