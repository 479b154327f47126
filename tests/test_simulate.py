"""`switchboard simulate`: the real core on a virtual clock behaves as queueing theory says it must, and
the command reads traces strictly, finds staffing, and exports what a store recorded."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import msgspec
import pytest
from redis.asyncio import Redis

from loadtest.simulate import poisson_trace
from protocol.model import Acceptance
from server import cli, trace
from server.config import Config, Directory, QueueCfg
from server.core.tx import Changes
from server.core.views import engagement_view
from server.kpis import Ledger
from server.queueing import fifo_replay
from server.simulate import Simulation, SimulationError, simulate, staff, staffed, trace_center
from server.store.redis import RedisStore
from server.trace import TraceLine
from tests.redis_server import RedisServer
from tests.support import make_config, voice_queue


def replay(config: Config, lines: list[TraceLine], accept_s: float = 0.0) -> tuple[list[float | None], Any]:
    """Each line's wait in its queue, and the run."""
    run = Simulation(Directory(config), lines, accept_s).run()
    ledger = Ledger(run.engagements.values(), run.agents.values(), run.end)
    waits = {e: w for q in ledger.visits for e, (_, w) in ledger.waits(q).items()}
    return [waits[e] if e else None for e in run.ids], run


def one_queue(agents: int, **queue: Any) -> Config:
    base = make_config([voice_queue("q", **{"acceptance": "auto", "wrap_up_s": None, **queue})], [])
    return staffed(base, {"q": agents})


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_one_auto_queue_with_longest_idle_is_exactly_the_ideal_fifo_queue(seed):
    lines = poisson_trace(3000, rate=1 / 6, mean_handle_s=50.0, wrap_up_s=5.0, seed=seed)  # 9.2 erlangs on 10
    waits, _ = replay(one_queue(10), lines)
    ideal = fifo_replay([x.arrival_s for x in lines], [x.handle_s + (x.wrap_up_s or 0.0) for x in lines], 10)
    assert waits == ideal  # every engagement's wait, to the last bit
    assert sum(w > 0 for w in ideal) > 1000  # and the queue was busy enough for that to mean something


def test_rings_accepted_at_once_wait_as_long_as_auto_acceptance():
    lines = poisson_trace(1500, rate=1 / 6, mean_handle_s=50.0, seed=4)
    manual, _ = replay(one_queue(10, acceptance="manual", ring_timeout_s=30), lines)
    auto, _ = replay(one_queue(10), lines)
    assert manual == auto


def test_slow_accepts_add_to_every_wait_and_a_ring_timeout_is_refused():
    lines = [TraceLine(queue="q", arrival_s=float(i * 100), handle_s=10.0) for i in range(5)]
    waits, _ = replay(one_queue(2, acceptance="manual", ring_timeout_s=30), lines, accept_s=4.0)
    assert waits == [4.0] * 5
    with pytest.raises(SimulationError, match="ring_timeout_s"):
        simulate(one_queue(2, acceptance="manual", ring_timeout_s=30), lines, accept_s=30.0)


def test_poisson_traffic_waits_as_erlang_c_predicts():
    lines = poisson_trace(8000, rate=1.0, mean_handle_s=8.0, seed=11)  # 8 erlangs on 10 agents
    report = simulate(one_queue(10, service_level_threshold_s=2.0), lines, intervals=False)
    (q,) = report.queues
    assert q.erlang_c is not None and q.erlang_c.p_wait is not None and q.erlang_c.asa_s is not None
    assert q.erlang_c.offered_load_erlangs == pytest.approx(8.0, rel=0.05)
    assert q.simulated_p_wait == pytest.approx(q.erlang_c.p_wait, abs=0.05)
    assert q.simulated.asa_s == pytest.approx(q.erlang_c.asa_s, rel=0.4)  # other seeds gave 0.9-1.34x
    assert q.simulated.service_level == pytest.approx(q.erlang_c.service_level, abs=0.08)
    assert q.simulated.occupancy == pytest.approx(0.8, abs=0.05)


def test_impatient_consumers_abandon_and_the_patient_ones_are_answered():
    lines = [
        TraceLine(queue="q", arrival_s=0.0, handle_s=100.0),
        TraceLine(queue="q", arrival_s=10.0, handle_s=5.0, patience_s=30.0),  # leaves at 40
        TraceLine(queue="q", arrival_s=20.0, handle_s=5.0, patience_s=200.0),  # answered at 100
        TraceLine(queue="q", arrival_s=200.0, handle_s=5.0, patience_s=1.0),  # answered at once
    ]
    waits, run = replay(one_queue(1), lines)
    assert waits == [0.0, 30.0, 80.0, 0.0]
    assert [run.engagements[e].state.value for e in run.ids if e] == ["closed", "abandoned", "closed", "closed"]
    (q,) = simulate(one_queue(1), lines).queues
    assert (q.simulated.offered, q.simulated.answered, q.simulated.abandoned) == (4, 3, 1)
    assert q.simulated.abandonment_rate == pytest.approx(1 / 4)


def test_the_queue_s_own_limits_apply_a_full_queue_refuses_and_wrap_up_is_cut_short():
    lines = [TraceLine(queue="q", arrival_s=0.0, handle_s=10.0, wrap_up_s=500.0) for _ in range(3)]
    report = simulate(one_queue(1, max_waiting=1, wrap_up_s=60), lines)
    (q,) = report.queues
    assert q.refused == 1 and q.simulated.offered == 2
    assert q.simulated.aht_s == pytest.approx(70.0)  # 10 s talking, then the 60 s wrap-up limit
    assert q.simulated.asa_s == pytest.approx(35.0)  # the second waited for the first: 70 s


def test_overflow_moves_waiting_engagements_to_the_overflow_queue():
    config = make_config(
        [
            voice_queue("q", acceptance="auto", overflow={"after_s": 30, "queue": "spill"}),
            voice_queue("spill", acceptance="auto"),
        ],
        [],
    )
    lines = [TraceLine(queue="q", arrival_s=0.0, handle_s=100.0), TraceLine(queue="q", arrival_s=1.0, handle_s=10.0)]
    report = simulate(staffed(config, {"q": 1, "spill": 1}), lines)
    q, spill = report.queues
    assert (q.queue, q.simulated.offered, q.simulated.answered) == ("q", 2, 1)
    assert (spill.queue, spill.simulated.offered, spill.simulated.answered, spill.simulated.asa_s) == ("spill", 1, 1, 0)


def test_target_service_level_finds_the_smallest_staff_that_meets_it():
    # ten callers at once, each talking 100 s: N agents answer N of them at once and the rest after 100 s
    lines = [TraceLine(queue="q", arrival_s=0.0, handle_s=100.0) for _ in range(10)]
    found = staff(one_queue(1), lines, "q", 0.8)
    assert (found.agents, found.service_level, found.service_level_one_less) == (8, 0.8, 0.7)
    assert staff(one_queue(1), lines, "q", 0.75).agents == 8
    assert staff(one_queue(1), lines, "q", 0.05).agents == 1


@pytest.mark.parametrize(
    ("patience", "queue", "accept_s"),
    [(None, {}, 0.0), (30.0, {}, 0.0), (30.0, {"acceptance": "manual", "ring_timeout_s": 20, "wrap_up_s": 3}, 2.0)],
)
def test_target_service_level_on_poisson_traffic_is_confirmed_by_the_simulations_either_side(patience, queue, accept_s):
    lines = poisson_trace(2000, rate=0.5, mean_handle_s=20.0, wrap_up_s=2.0, mean_patience_s=patience, seed=5)
    found = staff(one_queue(1, **queue), lines, "q", 0.8, accept_s)
    assert found.agents is not None and found.erlang_c_agents is not None
    assert found.service_level is not None and found.service_level >= 0.8
    assert found.service_level_one_less is not None and found.service_level_one_less < 0.8
    assert abs(found.agents - found.erlang_c_agents) <= 3  # Erlang C knows no patience: close, not equal
    assert found.simulations == 2  # the ideal FIFO queue found it: the core agreed at once


def test_a_queue_nobody_serves_is_refused():
    lines = [TraceLine(queue="q", arrival_s=0.0, handle_s=1.0)]
    with pytest.raises(SimulationError, match="--agents q=N"):
        simulate(trace_center(lines), lines)
    with pytest.raises(SimulationError, match="no queue 'x'"):
        staffed(trace_center(lines), {"x": 3})


# --- the command ----------------------------------------------------------------------------------


def write_trace(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_the_command_prints_the_comparison_and_writes_the_report(tmp_path, capsys):
    lines = [
        {"queue": "sales", "arrival_s": 0, "handle_s": 60, "outcome": "answered", "wait_s": 0},
        {"queue": "sales", "arrival_s": 5, "handle_s": 60, "wrap_up_s": 10, "outcome": "answered", "wait_s": 30},
        {"queue": "sales", "arrival_s": 6, "handle_s": 60, "patience_s": 10, "outcome": "abandoned", "wait_s": 10},
        {"queue": "support", "arrival_s": 1000, "handle_s": 30},
    ]
    path = write_trace(tmp_path / "day.jsonl", lines)
    out = tmp_path / "report.json"
    args = ["simulate", "--trace", str(path), "--agents", "sales=1", "--agents", "support=2", "--json", str(out)]
    assert cli.main(args) == 0
    text = capsys.readouterr().out
    assert "queue sales: 1 agent," in text and "service level (20 s)" in text and "queue support: 2 agents" in text
    report = json.loads(out.read_text())
    sales, support = report["queues"]
    assert sales["simulated"]["offered"] == 3 and sales["simulated"]["answered"] == 2
    assert sales["simulated"]["abandoned"] == 1 and sales["simulated"]["asa_s"] == pytest.approx(55 / 2)
    assert sales["recorded"] | {"window_s": 0, "start": 0, "end": 0} == {
        "queue": "sales",
        "window_s": 0,
        "start": 0,
        "end": 0,
        "offered": 3,
        "answered": 2,
        "abandoned": 1,
        "service_level": pytest.approx(1 / 3),
        "service_level_threshold_s": 20.0,
        "asa_s": 15.0,
        "aht_s": 65.0,
        "abandonment_rate": pytest.approx(1 / 3),
        "longest_wait_s": None,
        "occupancy": None,
        "handled": 2,
        "max_wait_s": 30.0,
    }
    assert support["recorded"] is None and support["simulated"]["offered"] == 1
    contract = {"queue", "window_s", "offered", "answered", "abandoned", "service_level", "service_level_threshold_s"}
    contract |= {"asa_s", "aht_s", "abandonment_rate", "longest_wait_s", "occupancy"}
    assert contract <= set(sales["simulated"])
    assert len(sales["intervals"]) == math.ceil(report["duration_s"] / 900) and report["staffing"] is None
    assert {a["agent"] for a in report["agents"]} == {"sales-1", "support-1", "support-2"}


def test_the_command_staffs_for_each_queue_s_own_target(tmp_path, capsys):
    config = tmp_path / "center.toml"
    config.write_text('[[queues]]\nid = "q"\nchannel = "voice"\nacceptance = "auto"\nservice_level_target = 0.5\n')
    path = write_trace(tmp_path / "t.jsonl", [{"queue": "q", "arrival_s": 0, "handle_s": 100}] * 10)
    assert cli.main(["simulate", "--trace", str(path), "--config", str(config), "--target-service-level"]) == 0
    text = capsys.readouterr().out
    assert "queue q: 5 agents" in text and "50/20" in text
    assert cli.main(["simulate", "--trace", str(path), "--config", str(config), "--target-service-level", "0.9"]) == 0
    assert "queue q: 9 agents" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ('{"queue": "q", "arrival_s": 1, "handle_s": "long"}', "t.jsonl:2: handle_s: Expected `float`, got `str`"),
        ('{"queue": "q", "arrival_s": 1}', "t.jsonl:2: Object missing required field `handle_s`"),
        ('{"queue": "q", "arrival_s": -1, "handle_s": 1}', "t.jsonl:2: arrival_s: Expected `float` >= 0"),
        ('{"queue": "q", "arrival_s": 1, "handle_s": 1, "handel_s": 1}', "t.jsonl:2: Object contains unknown field"),
        ('{"queue": "q", "arrival_s": 1, "handle_s": 1, "wait_s": 3}', "t.jsonl:2: outcome: "),
        ('{"queue": "q", "arrival_s": 1, ', "t.jsonl:2: not valid JSON"),
        ('{"queue": "elsewhere", "arrival_s": 1, "handle_s": 1}', "t.jsonl:2: queue: no queue 'elsewhere'"),
    ],
)
def test_a_bad_trace_line_is_refused_with_its_number_and_field(tmp_path, capsys, line, says):
    config = tmp_path / "center.toml"
    config.write_text('[[queues]]\nid = "q"\nchannel = "voice"\n[[agents]]\nid = "ann"\nqueues = ["q"]\n')
    path = tmp_path / "t.jsonl"
    path.write_text('{"queue": "q", "arrival_s": 0, "handle_s": 1}\n' + line + "\n")
    assert cli.main(["simulate", "--trace", str(path), "--config", str(config)]) == 2
    assert says in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--agents", "nowhere=3"], "--agents: no queue 'nowhere'"),
        ([], "queue 'q' has no agents"),
        (["--config", "missing.toml"], "missing.toml: cannot read"),
    ],
)
def test_a_simulation_that_cannot_mean_anything_is_refused(tmp_path, capsys, argv, says):
    path = write_trace(tmp_path / "t.jsonl", [{"queue": "q", "arrival_s": 0, "handle_s": 1}])
    assert cli.main(["simulate", "--trace", str(path), *argv]) == 2
    assert says in capsys.readouterr().err


def test_bad_options_are_refused_by_the_parser(tmp_path, capsys):
    for argv in (["--agents", "q"], ["--target-service-level", "80"], ["--accept-s", "-1"]):
        with pytest.raises(SystemExit) as exited:
            cli.main(["simulate", "--trace", "t.jsonl", *argv])
        assert exited.value.code == 2
    assert "expected QUEUE=N" in capsys.readouterr().err


# --- exporting what a store recorded --------------------------------------------------------------


def recorded_day() -> tuple[list[TraceLine], Any, Config]:
    lines = poisson_trace(400, rate=1 / 10, mean_handle_s=40.0, wrap_up_s=5.0, mean_patience_s=30.0, seed=8)
    config = one_queue(5)
    _, run = replay(config, lines)
    return lines, run, config


def test_an_exported_trace_replayed_on_the_same_staff_gives_back_the_recorded_figures():
    lines, run, config = recorded_day()
    exported = trace.export(run.engagements.values())
    assert (exported.unfinished, exported.withdrawn, len(exported.lines)) == (0, 0, len(lines))
    first = min(x.arrival_s for x in lines)
    assert [x.arrival_s for x in exported.lines] == pytest.approx([x.arrival_s - first for x in lines])
    outcomes = {x.outcome for x in exported.lines}
    assert outcomes == {"answered", "abandoned"}
    (q,) = simulate(config, exported.lines).queues
    assert q.recorded is not None
    for name in ("offered", "answered", "abandoned", "service_level", "asa_s", "aht_s", "abandonment_rate"):
        assert getattr(q.simulated, name) == pytest.approx(getattr(q.recorded, name)), name


def test_export_leaves_out_what_is_not_over_and_reads_engagements_as_the_api_serves_them(tmp_path, capsys):
    _, run, config = recorded_day()
    directory = Directory(config)
    views = [engagement_view(directory, e) for e in run.engagements.values()]
    views[0].history = views[0].history[:1]  # as it stood when it had just been created
    source = tmp_path / "engagements.jsonl"
    source.write_bytes(b"".join(msgspec.json.encode(v) + b"\n" for v in views))
    out = tmp_path / "trace.jsonl"
    assert cli.main(["simulate", "--export-trace", str(out), "--engagements", str(source)]) == 0
    assert "399 engagements written; left out: 1 not over yet" in capsys.readouterr().err
    exported = trace.read(out)
    assert len(exported) == 399 and all(x.outcome in ("answered", "abandoned") for x in exported)


async def test_export_reads_the_records_a_redis_store_holds(shared_redis: RedisServer, tmp_path, capsys):
    _, run, _ = recorded_day()
    client = Redis.from_url(shared_redis.url)
    store = RedisStore(client, prefix="simexport")
    try:
        records = list(run.engagements.values())
        for i in range(0, len(records), 100):
            batch = {e.id: e for e in records[i : i + 100]}
            await store.transact(lambda snapshot, batch=batch: (None, Changes(engagements=batch)))
    finally:
        await store.close()
    out = tmp_path / "trace.jsonl"
    argv = ["simulate", "--export-trace", str(out), "--redis", shared_redis.url, "--redis-prefix", "simexport"]
    assert cli.main(argv) == 0
    assert trace.read(out) == trace.export(records).lines
    assert cli.main([*argv[:-1], "nothing-here"]) == 0  # another prefix: no engagements at all
    assert "0 engagements written" in capsys.readouterr().err


def test_export_without_a_source_is_refused(tmp_path, capsys):
    assert cli.main(["simulate", "--export-trace", str(tmp_path / "t.jsonl")]) == 2
    assert "--redis URL or --engagements FILE" in capsys.readouterr().err


def test_a_plan_is_a_valid_configuration_with_generated_agents():
    config = staffed(one_queue(0), {"q": 3})
    assert [a.id for a in config.agents] == ["q-1", "q-2", "q-3"]
    kept = make_config([voice_queue("q"), voice_queue("r")], [{"id": "ann", "queues": ["q", "r"]}])
    assert staffed(kept, {"q": 1}).agents[0].queues == ["r"]  # ann keeps her other queue
    assert trace_center([TraceLine(queue="x", arrival_s=0, handle_s=1)]).queues == [
        QueueCfg(id="x", channel="voice", acceptance=Acceptance.AUTO, wrap_up_s=None)
    ]
