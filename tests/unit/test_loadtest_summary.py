"""loadtest/summary.py: the summary figures from locust's CSV rows, the markdown, the plot."""
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "loadtest"))

import summary  # noqa: E402

PCTS = ["50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%"]


def stat(name, n, f, p50, p95, p99, rps):
    row = {"Type": "POST" if name != "Aggregated" else "", "Name": name, "Request Count": str(n),
           "Failure Count": str(f), "Requests/s": str(rps), **{p: "N/A" for p in PCTS}}
    row.update({"50%": str(p50), "95%": str(p95), "99%": str(p99)})
    return row


def hist(ts, users, rps, fails, p50="N/A", p95="N/A", p99="N/A", name="Aggregated"):
    return {"Timestamp": str(ts), "User Count": str(users), "Name": name, "Requests/s": str(rps),
            "Failures/s": str(fails), "50%": p50, "95%": p95, "99%": p99}


STATS = [stat("text", 60, 0, 1200, 1300, 1400, 2.0), stat("image stream", 30, 3, 1250, 1500, 1900, 1.0),
         stat("video", 8, 2, 1300, 1600, 1600, 0.3), stat("video stream", 2, 0, 1300, 1400, 1400, 0.1),
         stat("Aggregated", 100, 5, 1200, 1500, 1800, 3.4)]
HISTORY = [hist(100, 0, 0, 0), hist(101, 5, 2.5, 0, "1200", "1300", "1300"),
           hist(102, 10, 4.25, 0.5, "1200", "1500", "1800"), hist(102, 10, 9.0, 0, name="text"),
           hist(103, 10, 3.9, 0.1, "1200", "1500", "1800")]
FAILURES = [{"Method": "POST", "Name": "image stream", "Error": "stream ended without [DONE]", "Occurrences": "3"},
            {"Method": "POST", "Name": "video", "Error": "HTTP 400: bad | video", "Occurrences": "2"}]
TTFT = [{"Name": "image stream", "TTFT seconds": str(x)} for x in (0.25, 0.30, 0.35, 0.40, 0.45)]


def test_compute_summary():
    s = summary.compute_summary(STATS, HISTORY, FAILURES, TTFT)
    assert s["requests"] == 100 and s["failures"] == 5
    assert s["success_rate"] == pytest.approx(0.95)
    assert s["max_rps"] == 4.25          # the Aggregated history's peak, not another row's
    assert s["p95_ms"] == 1500 and s["p99_ms"] == 1800
    assert s["video_requests"] == 10 and s["video_success_rate"] == pytest.approx(0.8)
    assert [e["count"] for e in s["errors"]] == [3, 2]
    assert s["ttft_n"] == 5 and s["ttft_p50_ms"] == pytest.approx(350) and s["ttft_p95_ms"] == pytest.approx(440)
    by = {t["name"]: t for t in s["per_type"]}
    assert by["image stream"]["success_rate"] == pytest.approx(0.9) and "Aggregated" not in by


def test_no_video_rows_means_no_video_rate():
    s = summary.compute_summary([STATS[0], stat("Aggregated", 60, 0, 1200, 1300, 1400, 2.0)], [], [])
    assert s["video_success_rate"] is None and s["success_rate"] == 1.0
    assert s["max_rps"] == 2.0  # no history: the run's average
    assert math.isnan(s["ttft_p50_ms"])


def test_missing_aggregated_row_is_an_error():
    with pytest.raises(ValueError):
        summary.compute_summary(STATS[:1], [], [])


def test_markdown_table_and_video_column():
    s = summary.compute_summary(STATS, HISTORY, FAILURES, TTFT)
    md = summary.render_markdown(s, {"url": "http://lb", "users": 10, "duration": "30s"})
    assert "| Max RPS | P95 (ms) | Success rate | Errors | Video success rate |" in md
    assert "| 4.25 | 1500 | 95.00 % | 5 | 80.00 % |" in md
    assert "HTTP 400: bad / video" in md  # a pipe in an error must not break the table
    assert "![latency and throughput](latency.png)" in md
    no_video = summary.compute_summary([STATS[0], stat("Aggregated", 60, 0, 1200, 1300, 1400, 2.0)], [], [])
    assert "Video success rate" not in summary.render_markdown(no_video, {})
    assert "n/a (no video requests)" in summary.render_markdown(no_video, {"video": True})


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    summary.plot(HISTORY, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError):
        summary.plot([], tmp_path / "q.png")


def test_main_writes_summary_files(tmp_path):
    pytest.importorskip("matplotlib")
    import csv

    def write(name, rows):
        with open(tmp_path / f"locust_{name}.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)

    write("stats", STATS)
    write("stats_history", [h for h in HISTORY])
    write("failures", FAILURES)
    assert summary.main(["--csv-prefix", str(tmp_path / "locust"), "--video"]) == 0
    for name in ("summary.md", "summary.json", "latency.png"):
        assert (tmp_path / name).stat().st_size > 0
