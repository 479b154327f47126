"""`simulate`: how fast `switchboard simulate` replays a day of traffic, and whether it is right.

A Poisson day (`engagements` arrivals spread over 24 h) with exponential talk times and uniform
wrap-ups, in one auto-accept longest-idle queue of `agents`: the case where the routing core must
behave as an ideal FIFO multi-server queue. Each round simulates the whole day through the core
(`server.simulate`) and times it; the report says whether every engagement's wait equalled the FIFO
replay's and how the chance of waiting compares with Erlang C.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from server.config import Directory
from server.kpis import Ledger
from server.queueing import erlang_c, erlang_c_asa, fifo_replay
from server.simulate import Simulation, staffed, trace_center
from server.trace import TraceLine

DAY_S = 24 * 3600.0


@dataclass
class Plan:
    engagements: int = 50_000
    agents: int = 200
    aht: float = 300.0
    wrap_up: float = 20.0
    rounds: int = 3
    seed: int = 1


def poisson_trace(
    count: int,
    rate: float,
    mean_handle_s: float,
    *,
    queue: str = "q",
    wrap_up_s: float = 0.0,
    mean_patience_s: float | None = None,
    seed: int = 1,
) -> list[TraceLine]:
    """`count` Poisson arrivals at `rate` per second, exponential talk times of mean `mean_handle_s`,
    wrap-ups uniform in [0, 2·`wrap_up_s`], and exponential patience of mean `mean_patience_s` if given."""
    rng = random.Random(seed)
    lines, t = [], 0.0
    for _ in range(count):
        t += rng.expovariate(rate)
        lines.append(
            TraceLine(
                queue=queue,
                arrival_s=t,
                handle_s=rng.expovariate(1 / mean_handle_s),
                wrap_up_s=rng.uniform(0, 2 * wrap_up_s) if wrap_up_s else None,
                patience_s=rng.expovariate(1 / mean_patience_s) if mean_patience_s else None,
            )
        )
    return lines


def run(plan: Plan) -> dict[str, Any]:
    lines = poisson_trace(plan.engagements, plan.engagements / DAY_S, plan.aht, wrap_up_s=plan.wrap_up, seed=plan.seed)
    directory = Directory(staffed(trace_center(lines), {"q": plan.agents}))
    walls = []
    for _ in range(plan.rounds):
        started = time.perf_counter()
        sim = Simulation(directory, lines).run()
        walls.append(time.perf_counter() - started)
    ledger = Ledger(sim.engagements.values(), sim.agents.values(), sim.end)
    waits = ledger.waits("q")
    simulated = [waits[e][1] if e is not None else None for e in sim.ids]
    services = [line.handle_s + (line.wrap_up_s or 0.0) for line in lines]
    ideal = fifo_replay([line.arrival_s for line in lines], services, plan.agents)
    load = plan.engagements / DAY_S * sum(services) / len(services)
    mean_handle = sum(services) / len(services)
    return {
        "plan": plan.__dict__,
        "wall_s": [round(w, 3) for w in walls],
        "engagements_per_s": round(plan.engagements / min(walls)),
        "transactions": sim.transactions,
        "transactions_per_s": round(sim.transactions / min(walls)),
        "waits_equal_fifo_replay": simulated == ideal,
        "offered_load_erlangs": round(load, 2),
        "p_wait": round(sum(1 for w in ideal if w > 0) / len(ideal), 4),
        "erlang_c_p_wait": round(erlang_c(plan.agents, load), 4),
        "asa_s": round(sum(ideal) / len(ideal), 3),
        "erlang_c_asa_s": round(erlang_c_asa(plan.agents, load, mean_handle), 3),
    }
