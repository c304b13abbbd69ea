"""bench/pipeline.py's parsing and summaries on synthetic input (the bench itself starts a stack: not run here)."""

import json

import pytest

from bench import pipeline


def stages_line(image, **stages):
    record = {"image": image, **stages}
    return f"[2026-12-02 14:00:00,000: INFO/ForkPoolWorker-1] stages {json.dumps(record)}"


def test_parse_stages_keeps_only_the_tasks_records():
    lines = [
        "[2026-12-02 14:00:00,000: INFO/MainProcess] Task thumbnails.tasks.make_renditions[x] received",
        stages_line("a", get=10.0, task=100.0, done_at=5.0),
        "some other line with stages but no json",
        stages_line("b", get=20.0, task=200.0, done_at=6.0),
        '[...] stages {"image": "c", "get": 1',  # a line being written: skipped
    ]
    records = pipeline.parse_stages(lines)
    assert [r["image"] for r in records] == ["a", "b"]
    assert records[1]["get"] == 20.0


def test_summarize_gives_p50_p95_and_count_per_stage():
    records = [{"image": str(i), "get": float(i), "task": 10.0 * i} for i in range(1, 101)]
    records.append({"image": "no-get", "task": 5.0})
    summary = pipeline.summarize(records, stages=("receive", "get", "task"))
    assert "receive" not in summary  # no record has it
    p50, p95, n = summary["get"]
    assert (p50, p95, n) == (50.5, 95.0, 100)
    assert summary["task"][2] == 101


def test_pct_is_nearest_rank():
    assert pipeline.pct([3, 1, 2], 0.5) == 2
    assert pipeline.pct([5], 0.95) == 5
    assert pipeline.pct(range(1, 21), 0.95) == 19


def test_cpu_seconds_reads_utime_and_stime_even_with_spaces_in_the_name():
    # pid (comm) state ppid ... field 14 utime = 250, field 15 stime = 50
    fields = ["S"] + ["0"] * 10 + ["250", "50"] + ["0"] * 30
    stat = "1234 (moto server (x)) " + " ".join(fields)
    assert pipeline.cpu_seconds(stat, ticks=100) == pytest.approx(3.0)


def test_drain_rate_and_the_last_line():
    assert pipeline.drain_rate(10, 100.0, [101.0, 102.0, 105.0]) == pytest.approx(2.0)
    assert pipeline.ratio_line(4.0, 5.0) == "pipeline/engine throughput ratio: 0.80"


def test_stage_table_has_a_row_per_stage_and_the_ack():
    rows = pipeline.stage_table({"get": (10.0, 20.0, 5), "task": (100.0, 150.0, 5)}, ack=(4.0, 9.0, 20))
    assert len(rows) == 4
    assert "get original" in rows[1] and rows[1].split()[-3:] == ["10.0", "20.0", "5"]
    assert "DeleteMessage" in rows[3]
