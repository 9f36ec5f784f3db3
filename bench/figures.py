"""The arithmetic every benchmark reports with: percentiles, a latency distribution, ratios.

One definition of each, so that a p99 in one suite's JSON means what it means in another's
(nearest rank, never interpolated), and a ratio with a missing side is None, never an
error or a zero. Only the standard library: the server benchmark's load-generator process
imports this too.
"""

from __future__ import annotations


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of ``values`` (any order); None when empty.

    >>> percentile([3.0, 1.0, 2.0], 50)
    2.0
    >>> percentile([], 99) is None
    True
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def distribution(values: list[float]) -> dict[str, float | None]:
    """p50, p99, max and mean of ``values``, each None when there are none.

    >>> distribution([1.0, 3.0])
    {'p50': 1.0, 'p99': 3.0, 'max': 3.0, 'mean': 2.0}
    """
    return {
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
        "mean": sum(values) / len(values) if values else None,
    }


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b``, or None when ``a`` is missing or ``b`` is missing or zero.

    >>> ratio(6.0, 3.0), ratio(None, 3.0), ratio(1.0, 0.0)
    (2.0, None, None)
    """
    if a is None or not b:
        return None
    return a / b
