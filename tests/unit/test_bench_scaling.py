"""bench/scaling.py: pro-rata window throughput."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

pytest.importorskip("aiohttp")
pytest.importorskip("psutil")
from bench.loadgen import Result  # noqa: E402
from bench.scaling import window_throughput  # noqa: E402


def test_window_counts_partial_requests_pro_rata():
    rs = [Result(True, 200, 0.0, end=2.0),    # half inside [1, 3]
          Result(True, 200, 1.0, end=2.0),    # fully inside
          Result(True, 200, 2.5, end=3.5),    # half inside
          Result(False, 500, 1.0, end=2.0),   # failed: not counted
          Result(True, 200, 3.0, end=4.0)]    # outside
    assert window_throughput(rs, 1.0, 3.0) == pytest.approx((0.5 + 1 + 0.5) / 2)
