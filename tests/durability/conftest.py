"""Fixtures for durability tests: real layers on real files in a temporary data directory."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cosmictron.durability import (
    DurabilityConfig,
    FileStorage,
    PersistenceConfig,
    PersistenceLayer,
    Storage,
)
from cosmictron.testing import flip_byte, frame_spans

OpenLayer = Callable[..., PersistenceLayer]


@pytest.fixture
def data_dir(tmp_path: Any) -> str:
    return os.fspath(tmp_path / "data")


@pytest.fixture
def open_layer(data_dir: str) -> Iterator[OpenLayer]:
    """Open a layer on ``data_dir`` with DurabilityConfig overrides; closed at teardown.

    Each layer gets its own ``FileStorage``, so a test may patch one method of it.
    """
    opened: list[PersistenceLayer] = []

    def make(storage: Storage | None = None, **overrides: Any) -> PersistenceLayer:
        fields = {"fsync_policy": "never", **overrides}
        layer = PersistenceLayer(
            PersistenceConfig(data_dir),
            DurabilityConfig(**fields),
            storage=storage if storage is not None else FileStorage(),
        )
        opened.append(layer)
        return layer

    yield make
    for layer in opened:
        layer.close()


def recover_all(layer: PersistenceLayer) -> list[Any]:
    """Recover and return every replayed record, so the layer is ready to append."""
    return list(layer.recover().records)


def segment_files(data_dir: str) -> list[str]:
    log_dir = os.path.join(data_dir, "log")
    names = sorted(name for name in os.listdir(log_dir) if name.endswith(".log"))
    return [os.path.join(log_dir, name) for name in names]


def frame_positions(path: str) -> list[int]:
    """Byte offsets of every frame in a healthy segment."""
    return [position for position, _ in frame_spans(path)]


__all__ = ["flip_byte", "frame_positions", "recover_all", "segment_files"]
