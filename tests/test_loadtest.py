"""Smoke runs of the load-test scenarios: seconds, tiny numbers, and a report that adds up (never speed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtest.__main__ import main

OPERATOR = {"SWITCHBOARD_SECRET": "the-operators-own-secret-0123456789abcdef", "SWITCHBOARD_API_KEY": "ops-key"}
"""What an operator's shell may export: the load tests' nodes and tokens must not pick it up."""


def test_routing_smoke_run_reports_consistent_figures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name, value in OPERATOR.items():
        monkeypatch.setenv(name, value)
    report_path, records_path = tmp_path / "routing.json", tmp_path / "records.jsonl"
    args = ["routing", "--agents", "4", "--rate", "8", "--aht", "0.2", "--duration", "2", "--workers", "1"]
    assert main([*args, "--manual", "--json", str(report_path), "--records", str(records_path)]) == 0
    report = json.loads(report_path.read_text())
    counts = report["engagements"]
    assert counts["created"] > 0 and counts["created"] == counts["offered"] == counts["completed"]
    latency = report["ring_latency"]
    assert 0 <= latency["p50_ms"] <= latency["p95_ms"] <= latency["p99_ms"] <= latency["max_ms"]
    assert report["erlang_c"]["offered_load_erlangs"] > 0 and 0 <= report["erlang_c"]["p_wait"] <= 1
    assert report["wait"]["ideal_fifo_mean_ms"] >= 0 and report["load_generator_cpu_s"] > 0
    assert report["server_cpu_s"] > 0 and report["machine"]["cpus"] >= 1
    records = [json.loads(line) for line in records_path.read_text().splitlines()]
    assert len(records) == counts["created"]
    assert all(r["created"] <= r["offered"] <= r["freed"] for r in records)
    assert report_path.with_suffix(".png").stat().st_size > 1000


def test_search_smoke_run_reports_every_measurement(tmp_path: Path):
    out = tmp_path / "search.json"
    assert main(["search", "--fragments", "2000", "--rounds", "5", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    for part, names in (("function", ["cold", "rare", "common", "naive_rare"]), ("socket", ["rare", "common"])):
        for name in names:
            assert report[part][name]["count"] > 0, (part, name)
    assert report["ratio_rare_vs_naive_p50"] > 1


def test_fanout_smoke_run_compares_with_both_peers_across_two_nodes(tmp_path: Path):
    out = tmp_path / "fanout.json"
    args = ["fanout", "--nodes", "2", "--clients", "12", "--duration", "1", "--workers", "1", "--queue-size", "5"]
    assert main([*args, "--peer", "socketio", "--peer", "websockets", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"switchboard", "socketio", "websockets"}
    for name, figures in report["results"].items():
        assert figures["errors"] == {} and figures["sent"] == figures["acked"] > 0, name
        assert figures["delivered"] == figures["acked"] and figures["lost"] == 0, name
        assert 0 < figures["delivered_in_window"] <= figures["delivered"] == figures["latency"]["count"], name
        assert figures["delivered_per_s"] == round(figures["delivered_in_window"] / 1, 1), name
        assert 0 <= figures["p50_ms"] <= figures["p99_ms"] <= figures["latency"]["max_ms"], name
        assert figures["server_processes"] == 2 and figures["server_cpu_pct"] > 0, name
        assert figures["load_generator_cpu_pct"] > 0, name
    assert report["delivered_vs_socketio"] > 0 and report["delivered_vs_websockets"] > 0
    for png in ("fanout.png", "fanout.socketio.png", "fanout.websockets.png"):
        assert (tmp_path / png).stat().st_size > 1000


def test_connections_smoke_run_counts_every_socket(tmp_path: Path):
    out = tmp_path / "connections.json"
    assert main(["connections", "--clients", "30", "--hold", "0.5", "--workers", "2", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["connected"] == report["open_at_end"] == 30 and report["failed"] == 0
    assert report["connect_latency"]["count"] == 30
    assert report["connect_latency"]["p50_ms"] <= report["connect_latency"]["p99_ms"]
    assert report["connect_rate_per_s"] > 0 and report["time_to_all_welcomed_s"] > 0
    assert report["server_rss_after_bytes"] > 0 and isinstance(report["rss_per_connection_bytes"], int)
    assert report["load_generator_cpu_s"] > 0


def test_storm_smoke_run_resumes_everyone_without_losing_an_event(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name, value in OPERATOR.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "storm.json"
    assert main(["storm", "--clients", "24", "--nodes", "2", "--missed", "3", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["resumed"] == 24 and report["not_resumed"] == report["failed"] == report["timed_out"] == 0
    assert report["events_lost"] == 0 and report["events_duplicated"] == 0
    assert report["events_in_gaps"] == report["events_missed_expected"] == 24 * 3 == report["supervisor"]["ok"]
    assert 0 < report["time_to_all_resumed_s"] <= report["time_to_all_caught_up_s"]
    assert report["resume_latency"]["count"] == report["caught_up_latency"]["count"] == 24
    assert report["time_to_all_disconnected_s"] >= 0
