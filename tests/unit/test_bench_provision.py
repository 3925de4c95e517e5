"""bench/provision.py: slowest tasks and totals from ansible-runner events."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.provision import slowest_tasks, totals  # noqa: E402


def ev(event, task, host, start, end, uuid=None):
    return {"event": event, "event_data": {"task": task, "host": host, "play": "p", "task_uuid": uuid or task,
                                           "start": f"2026-01-01T00:00:{start:06.3f}",
                                           "end": f"2026-01-01T00:00:{end:06.3f}"}}


def test_slowest_tasks_span_first_start_to_last_end_across_hosts():
    events = [
        {"event": "playbook_on_task_start", "event_data": {"task": "a"}},
        ev("runner_on_ok", "a", "h1", 1.0, 2.0),
        ev("runner_on_ok", "a", "h2", 1.5, 4.0),
        ev("runner_on_skipped", "b", "h1", 4.0, 4.1),
        ev("runner_on_failed", "c", "h1", 5.0, 8.5),
        ev("runner_on_start", "c", "h1", 5.0, 30.0),  # not a result: ignored
    ]
    out = slowest_tasks(events, n=2)
    assert [(t["task"], t["hosts"]) for t in out] == [("c", 1), ("a", 2)]
    assert out[0]["seconds"] == pytest.approx(3.5) and out[1]["seconds"] == pytest.approx(3.0)
    assert slowest_tasks(events)[-1]["task"] == "b"


def test_totals_from_stats_event():
    events = [{"event": "playbook_on_stats", "event_data": {"ok": {"h1": 5, "h2": 4}, "changed": {"h1": 1},
                                                            "failures": {}, "dark": {}, "skipped": {"h2": 2}}}]
    assert totals(events) == {"ok": 9, "changed": 1, "failures": 0, "dark": 0, "skipped": 2}
    assert totals([])["changed"] == 0
