"""Pure logic of the benchmarks: percentiles, the arrival trace and the dispatcher simulation."""
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.stats import mean_length, pct, poisson_trace, simulate, summarize  # noqa: E402


def test_pct_interpolates_between_ranks():
    assert pct([1, 2, 3, 4], 50) == 2.5
    assert pct([5, 1, 4, 2, 3], 95) == pytest.approx(4.8)
    assert pct([10], 99) == 10
    assert pct([3, 1, 2], 0) == 1 and pct([3, 1, 2], 100) == 3
    assert math.isnan(pct([], 50))
    with pytest.raises(ValueError):
        pct([1], 101)


def test_summarize():
    s = summarize([float(x) for x in range(1, 101)])
    assert s["n"] == 100 and s["mean"] == 50.5 and s["max"] == 100
    assert s["p50"] == pytest.approx(50.5) and s["p95"] == pytest.approx(95.05) and s["p99"] == pytest.approx(99.01)


def test_jsq_hand_checked_two_single_slot_servers():
    # t=0: r0 -> s0 (tie, lowest index), r1 -> s1, r2 -> s0 (tie 1:1) queued behind r0;
    # t=1: r3 -> s1 (1 < 2), queued behind r1 (ends 2) -> runs 2..3; r2 runs 4..5.
    lat = simulate([0, 0, 0, 1], [4, 2, 1, 1], servers=2, slots=1, policy="jsq")
    assert lat == [4, 2, 5, 2]


def test_jsq_beats_round_robin_when_one_server_is_stuck():
    # r0 is long on s0; round robin still sends r2 to s0 where it waits, JSQ sends it to s1.
    arrivals, services = [0, 0, 1, 2], [10, 1, 1, 1]
    assert simulate(arrivals, services, 2, 1, "rr") == [10, 1, 10, 1]
    assert simulate(arrivals, services, 2, 1, "jsq") == [10, 1, 1, 1]


def test_batch_slots_and_fifo_queue():
    # one server with two slots: r2 waits for the first free slot (r1 ends at 1)
    assert simulate([0, 0, 0], [3, 1, 1], servers=1, slots=2) == [3, 1, 2]


def test_completion_at_arrival_instant_frees_the_slot_first():
    assert simulate([0, 2], [2, 1], servers=1, slots=1) == [2, 1]


def test_explicit_assignment_and_unsorted_input():
    # given out of arrival order; r1 (t=0) and r0 (t=1) both pinned to server 1
    assert simulate([1, 0], [1, 3], servers=2, slots=1, assign=[1, 1]) == [3, 3]


def test_simulate_rejects_bad_input():
    with pytest.raises(ValueError):
        simulate([0], [1, 2], 1, 1)
    with pytest.raises(ValueError):
        simulate([0], [1], 1, 1, policy="random")


def test_poisson_trace_is_reproducible_and_has_the_rate():
    a = poisson_trace(10, 200, seed=3)
    assert a == poisson_trace(10, 200, seed=3) and a != poisson_trace(10, 200, seed=4)
    assert all(x.t < y.t for x, y in zip(a, a[1:])) and a[-1].t < 200
    assert 1800 < len(a) < 2200  # 2000 expected, sd ~45
    assert abs(sum(x.max_tokens for x in a) / len(a) - mean_length()) < 8
    assert poisson_trace(0, 10, 1) == []
