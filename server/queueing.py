"""Queueing formulas the simulator and the load tests compare measurements with: Erlang C and an ideal
FIFO multi-server queue. Pure functions of numbers, so every figure they give can be checked by hand.

Erlang C is computed through the Erlang B recursion, `B(k) = A·B(k-1) / (k + A·B(k-1))`, whose terms
stay between 0 and 1 at any load: summing the terms `A^k / k!` directly overflows a float (NaN)
above about 700 erlangs, which a large contact center reaches.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence


def erlang_b(servers: int, offered_load: float) -> float:
    """Probability that all `servers` are busy in a loss system offered `offered_load` erlangs."""
    if servers < 0 or offered_load < 0:
        raise ValueError(f"Expected servers >= 0 and offered_load >= 0, got {servers} and {offered_load}")
    b = 1.0
    for k in range(1, servers + 1):
        b = offered_load * b / (k + offered_load * b)
    return b


def erlang_c(servers: int, offered_load: float) -> float:
    """Probability that an arrival waits, for `servers` agents and `offered_load` erlangs; 1.0 when the
    load is at or above the number of servers (the queue grows without bound)."""
    if offered_load >= servers:
        return 1.0
    if offered_load <= 0:
        return 0.0
    b = erlang_b(servers, offered_load)
    return servers * b / (servers - offered_load * (1.0 - b))


def erlang_c_asa(servers: int, offered_load: float, mean_handle_s: float) -> float:
    """Mean wait over all arrivals (answered at once included), in seconds; infinite at or above capacity."""
    if offered_load >= servers:
        return math.inf
    return erlang_c(servers, offered_load) * mean_handle_s / (servers - offered_load)


def erlang_c_service_level(servers: int, offered_load: float, mean_handle_s: float, threshold_s: float) -> float:
    """Share of arrivals answered within `threshold_s` (waits are exponential past the chance of waiting)."""
    if offered_load >= servers:
        return 0.0
    if mean_handle_s <= 0:
        return 1.0
    p_wait = erlang_c(servers, offered_load)
    return 1.0 - p_wait * math.exp(-(servers - offered_load) * threshold_s / mean_handle_s)


def agents_for_service_level(offered_load: float, mean_handle_s: float, threshold_s: float, target: float) -> int:
    """The smallest number of agents whose Erlang C service level reaches `target` (0 < target < 1:
    with any load someone may always wait, so no number of agents answers everyone within a threshold)."""
    if not 0 < target < 1:
        raise ValueError(f"Expected 0 < target < 1, got {target}")
    if offered_load <= 0:
        return 0
    servers = max(1, math.floor(offered_load) + 1)
    # the service level rises with each agent; a few agents past the load suffice for any usual target
    while erlang_c_service_level(servers, offered_load, mean_handle_s, threshold_s) < target:
        servers += 1
    return servers


def fifo_replay(arrivals: Sequence[float], services: Sequence[float], servers: int) -> list[float]:
    """Waits under an ideal work-conserving FIFO router with `servers` agents, all free at the start:
    each arrival, in order of arrival (ties in the order given), takes the agent free soonest.
    Returns each arrival's wait, in the order given."""
    if servers < 1:
        raise ValueError(f"Expected at least one server, got {servers}")
    if len(arrivals) != len(services):
        raise ValueError(f"Expected as many services as arrivals, got {len(services)} and {len(arrivals)}")
    free = [0.0] * servers
    waits = [0.0] * len(arrivals)
    for i in sorted(range(len(arrivals)), key=arrivals.__getitem__):
        arrival = arrivals[i]
        start = max(arrival, free[0])
        waits[i] = start - arrival
        heapq.heapreplace(free, start + services[i])
    return waits


def fifo_reneging(
    arrivals: Sequence[float], services: Sequence[float], patience: Sequence[float | None], servers: int
) -> list[float | None]:
    """`fifo_replay` with impatient callers: an arrival whose wait would outlast its patience (None: no
    limit) leaves when its patience runs out, taking no agent. Returns each arrival's wait, in the
    order given, or None for those who left."""
    if servers < 1:
        raise ValueError(f"Expected at least one server, got {servers}")
    if not len(arrivals) == len(services) == len(patience):
        raise ValueError(
            f"Expected as many services and patiences as arrivals, got {len(services)}, {len(patience)} "
            f"and {len(arrivals)}"
        )
    free = [0.0] * servers
    waits: list[float | None] = [None] * len(arrivals)
    for i in sorted(range(len(arrivals)), key=arrivals.__getitem__):
        arrival, limit = arrivals[i], patience[i]
        start = max(arrival, free[0])
        if limit is not None and start - arrival > limit:
            continue
        waits[i] = start - arrival
        heapq.heapreplace(free, start + services[i])
    return waits
