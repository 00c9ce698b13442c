"""CLIP's byte-level BPE tokenizer in pure Python (no torch): text labels to the token ids the
exported text tower takes.

The algorithm and vocabulary are those of open_clip's ``SimpleTokenizer`` (from OpenAI's CLIP,
MIT licence): clean the text (ftfy, HTML unescape, collapse whitespace, lower-case), split it
into words, numbers and punctuation, map bytes to printable characters, apply the BPE merges,
and frame the ids with ``<start_of_text>`` and ``<end_of_text>``, zero-padded or truncated to
the model's context length. The merges file (``bpe_simple_vocab_16e6.txt.gz``, shipped with
open_clip) is copied beside ``text.onnx`` when the text tower is exported, so labelling atoms
needs neither open_clip nor torch.

Two optional packages are used when installed (open_clip depends on both): ``ftfy`` to repair
mojibake, and ``regex`` for the Unicode letter/number classes of CLIP's split pattern. Without
``regex`` the standard ``re`` approximates ``\\p{L}`` by ``[^\\W\\d_]`` and ``\\p{N}`` by
``\\d``: identical for ordinary words, digits and punctuation (the test compares both with
open_clip on such labels).
"""
from __future__ import annotations

import gzip
import html
import os
from functools import lru_cache

import numpy as np

__all__ = ["ClipTokenizer", "VOCAB_FILE"]

VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
_N_MERGES = 49152 - 256 - 2  # the merges CLIP's vocabulary uses
_SOT, _EOT = "<start_of_text>", "<end_of_text>"


@lru_cache
def _bytes_to_unicode() -> dict[int, str]:
    """Every byte to a printable character (BPE works on strings without spaces or controls)."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def _split_pattern():
    special = f"{_SOT}|{_EOT}|'s|'t|'re|'ve|'m|'ll|'d|"
    try:
        import regex
        return regex.compile(special + r"[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+", regex.IGNORECASE)
    except ImportError:
        import re
        return re.compile(special + r"[^\W\d_]+|\d|(?:[^\s\w]|_)+", re.IGNORECASE)


def _clean(text: str) -> str:
    try:
        import ftfy
        text = ftfy.fix_text(text)
    except ImportError:
        pass
    text = html.unescape(html.unescape(text)).strip()
    return " ".join(text.split()).strip().lower()


class ClipTokenizer:
    """Texts to (n, context_length) int64 token ids, as open_clip's default tokenizer.

    Args:
        vocab_path: CLIP's gzipped BPE merges file (``bpe_simple_vocab_16e6.txt.gz``).
        context_length: tokens per text (77 for the released CLIP models).
    """

    def __init__(self, vocab_path: str | os.PathLike, context_length: int = 77) -> None:
        if isinstance(context_length, bool) or not isinstance(context_length, int) or context_length < 2:
            raise ValueError(f"context_length must be an integer >= 2, got {context_length!r}")
        try:
            with gzip.open(vocab_path) as stream:
                lines = stream.read().decode("utf-8").split("\n")
        except (OSError, EOFError, UnicodeDecodeError) as error:
            raise ValueError(f"{vocab_path}: not a readable CLIP BPE vocabulary ({error})") from error
        merges = [tuple(line.split()) for line in lines[1:_N_MERGES + 1]]
        if len(merges) != _N_MERGES or any(len(m) != 2 for m in merges):
            raise ValueError(f"{vocab_path}: expected {_N_MERGES} BPE merges, found a different file")
        self.byte_encoder = _bytes_to_unicode()
        vocab = list(self.byte_encoder.values())
        vocab += [v + "</w>" for v in vocab]
        vocab += ["".join(m) for m in merges] + [_SOT, _EOT]
        self.encoder = {token: i for i, token in enumerate(vocab)}
        self.bpe_ranks = {m: i for i, m in enumerate(merges)}
        self.sot, self.eot = self.encoder[_SOT], self.encoder[_EOT]
        self.context_length = context_length
        self._pattern = _split_pattern()
        self._cache: dict[str, list[str]] = {_SOT: [_SOT], _EOT: [_EOT]}

    def _bpe(self, token: str) -> list[str]:
        if token in self._cache:
            return self._cache[token]
        word = list(token[:-1]) + [token[-1] + "</w>"]
        while len(word) > 1:
            pairs = {(a, b) for a, b in zip(word, word[1:])}
            best = min(pairs, key=lambda pair: self.bpe_ranks.get(pair, float("inf")))
            if best not in self.bpe_ranks:
                break
            merged: list[str] = []
            i = 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        self._cache[token] = word
        return word

    def encode(self, text: str) -> list[int]:
        """Token ids of one text, without the start and end tokens."""
        ids: list[int] = []
        for piece in self._pattern.findall(_clean(text)):
            mapped = "".join(self.byte_encoder[b] for b in piece.encode("utf-8"))
            ids.extend(self.encoder[t] for t in self._bpe(mapped))
        return ids

    def __call__(self, texts: str | list[str]) -> np.ndarray:
        """(len(texts), context_length) int64 ids: start, text, end, zeros; too long texts are
        cut and keep the end token last."""
        if isinstance(texts, str):
            texts = [texts]
        out = np.zeros((len(texts), self.context_length), np.int64)
        for row, text in enumerate(texts):
            ids = [self.sot, *self.encode(text), self.eot][:self.context_length]
            ids[-1] = self.eot
            out[row, :len(ids)] = ids
        return out
