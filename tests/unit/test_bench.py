"""The benchmark's percentiles: nearest rank, so p99 of 10 samples is the largest."""

from __future__ import annotations

import pytest

from bench.__main__ import percentile


@pytest.mark.parametrize(("n", "percent", "expected"), [
    (10, 99, 10),     # rank ceil(9.9) = 10: the largest sample
    (50, 99, 50),     # rank ceil(49.5) = 50
    (150, 99, 149),   # rank ceil(148.5) = 149
    (100, 99, 99),    # rank 99 exactly
    (300, 99, 297),
    (1, 99, 1),
    (10, 50, 5),      # rank 5: half the samples at or below it
    (11, 50, 6),
])
def test_nearest_rank_percentile(n: int, percent: int, expected: int) -> None:
    samples = [float(v) for v in range(1, n + 1)]  # sample value == its rank
    assert percentile(samples, percent) == expected
