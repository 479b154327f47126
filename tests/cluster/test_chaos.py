"""The chaos scenario, short: three nodes and Redis (append-only) under routing load, one fault of each
kind (kill -9 and restart a node, restart Redis, freeze a node past the node timeout). Nothing may be
lost, no invariant broken, no seq skipped or repeated, no two agents told at once that the same
engagement is theirs, every fault recovered from, and no socket closed but those the fault itself took
down. The long run is `python -m loadtest chaos` (docs/redis.md)."""

from __future__ import annotations

import json
from pathlib import Path

from loadtest.__main__ import main

RUN = ["--agents", "12", "--rate", "3", "--aht", "1", "--duration", "20", "--fault-every", "6"]


def test_kill_restart_redis_and_freeze_nodes_under_load_and_lose_nothing(tmp_path: Path):
    out = tmp_path / "chaos.json"
    args = ["chaos", *RUN, "--workers", "1", "--settle", "20", "--seed", "7", "--workdir", str(tmp_path / "run")]
    assert main([*args, "--json", str(out)]) == 0
    report = json.loads(out.read_text())

    faults = report["faults"]
    assert sorted(f["kind"] for f in faults) == ["kill", "pause", "redis"]
    assert report["faults_injected"] == report["faults_recovered"] == 3, faults
    for fault in faults:
        assert fault["recovered"] and fault["recovery_s"] > 0, fault
        assert fault["collateral_closes"] == 0 and fault["wrongly_written_off"] == [], fault
        if fault["kind"] != "redis":
            assert fault["written_off_after_s"] is not None, fault
    pause = next(f for f in faults if f["kind"] == "pause")
    assert pause["left_open"] == 0 and pause["fenced"] == pause["held_through"], pause
    assert report["stray_fencing"] == 0

    assert report["lost"] == 0 and report["lost_engagements"] == []
    assert report["violations"] == [] and report["invariant_violations"] == 0
    assert report["double_assignments_seen_by_agents"] == 0, report["double_assignments"]
    assert report["agents"]["snapshots_seen"] > 0
    seq = report["seq"]
    assert report["seq_gaps"] == seq["gaps"] == seq["duplicates"] == seq["backwards"] == 0, seq["problems"]
    assert seq["stale_resumes"] == 0 and seq["events"] > 0
    assert report["ghost_sessions"] == {} and report["agents"]["crashed"] == []

    e = report["engagements"]
    assert e["created"] > 30 and e["unanswered"] == 0
    assert set(e["by_queue"]) == {"voice", "chat", "email", "sales"}
    assert e["created"] == e["completed"] + e["abandoned"] + sum(e["still_open"].values())
    assert e["completed"] == e["closed"] + e["resolved"] and e["closed"] > 0 and e["resolved"] > 0
    # the agents worked the queues empty in the settling time
    assert sum(e["still_open"].values()) == 0, e

    resumes = report["resumes"]
    assert resumes["first_sign_ins"] == report["agents"]["signed_in"] == 12
    assert resumes["resumed"] > 0 and resumes["fresh"] == 0  # the append-only file kept every event log
    assert report["connections"]["opened"] == resumes["first_sign_ins"] + resumes["resumed"] + resumes["fresh"]
