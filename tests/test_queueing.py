"""Erlang C and the ideal FIFO queue against values worked out independently: closed forms for small
systems, exact rational arithmetic, and a log-space sum for loads where floats overflow."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest

from server.queueing import (
    agents_for_service_level,
    erlang_b,
    erlang_c,
    erlang_c_asa,
    erlang_c_service_level,
    fifo_reneging,
    fifo_replay,
)


def exact_erlang_c(servers: int, load: int) -> Fraction:
    """Erlang C from its definition, in exact rationals (the textbook sum, no rounding at all)."""
    a = Fraction(load)
    term, total = Fraction(1), Fraction(1)
    for k in range(1, servers):
        term = term * a / k
        total += term
    last = term * a / servers * servers / (servers - a)
    return last / (total + last)


def log_space_erlang_c(servers: int, load: float) -> float:
    """Erlang C from its definition with every term in logarithms (log-sum-exp), exact enough at any load."""
    logs = [k * math.log(load) - math.lgamma(k + 1) for k in range(servers)]
    last = servers * math.log(load) - math.lgamma(servers + 1) + math.log(servers / (servers - load))
    top = max(*logs, last)
    total = sum(math.exp(x - top) for x in logs) + math.exp(last - top)
    return math.exp(last - top) / total


def test_one_agent_is_the_m_m_1_queue_where_the_chance_of_waiting_is_the_utilisation():
    for rho in (0.1, 0.5, 0.9, 0.99):
        assert erlang_c(1, rho) == pytest.approx(rho, rel=1e-12)
        assert erlang_c_asa(1, rho, 180.0) == pytest.approx(rho / (1 - rho) * 180.0, rel=1e-12)  # M/M/1 Wq


def test_two_and_three_agents_match_their_closed_forms():
    for a in (0.5, 1.0, 1.5, 1.9):
        assert erlang_c(2, a) == pytest.approx(a * a / (2 + a), rel=1e-12)  # M/M/2: 2r^2/(1+r) with r = A/2
    assert erlang_c(3, 2.0) == pytest.approx(4 / 9, rel=1e-12)


@pytest.mark.parametrize(("servers", "load"), [(10, 8), (55, 48), (120, 100), (800, 750)])
def test_erlang_c_equals_the_exact_rational_sum(servers, load):
    assert erlang_c(servers, load) == pytest.approx(float(exact_erlang_c(servers, load)), rel=1e-10)


@pytest.mark.parametrize(("servers", "load"), [(720, 700.0), (1000, 950.0), (5100, 5000.0), (6000, 5000.0)])
def test_erlang_c_stays_finite_and_correct_at_large_loads(servers, load):
    c = erlang_c(servers, load)
    assert math.isfinite(c) and 0.0 < c < 1.0
    assert c == pytest.approx(log_space_erlang_c(servers, load), rel=1e-9)


def test_at_or_above_capacity_everyone_waits_and_nobody_is_answered_in_time():
    for servers, load in ((1, 1.0), (10, 10.0), (10, 25.0), (5000, 5001.0)):
        assert erlang_c(servers, load) == 1.0
        assert erlang_c_asa(servers, load, 60.0) == math.inf
        assert erlang_c_service_level(servers, load, 60.0, 20.0) == 0.0


def test_no_load_means_no_wait():
    assert erlang_c(5, 0.0) == 0.0
    assert erlang_c_asa(5, 0.0, 60.0) == 0.0
    assert erlang_c_service_level(5, 0.0, 60.0, 20.0) == 1.0


def test_erlang_b_matches_its_definition():
    a = Fraction(7)
    terms = [Fraction(1)]
    for k in range(1, 11):
        terms.append(terms[-1] * a / k)
    assert erlang_b(10, 7.0) == pytest.approx(float(terms[-1] / sum(terms)), rel=1e-12)
    with pytest.raises(ValueError, match="servers >= 0"):
        erlang_b(-1, 1.0)


def test_service_level_and_asa_follow_the_exponential_wait_of_erlang_c():
    servers, load, handle, threshold = 10, 8.0, 180.0, 20.0
    c = float(exact_erlang_c(servers, 8))
    assert erlang_c_service_level(servers, load, handle, threshold) == pytest.approx(
        1 - c * math.exp(-(servers - load) * threshold / handle), rel=1e-12
    )
    assert erlang_c_asa(servers, load, handle) == pytest.approx(c * handle / (servers - load), rel=1e-12)
    assert erlang_c_service_level(servers, load, handle, 0.0) == pytest.approx(1 - c, rel=1e-12)


def test_agents_for_service_level_is_the_smallest_count_that_meets_it():
    for load, target in ((8.0, 0.8), (48.0, 0.8), (48.0, 0.95), (1000.0, 0.8), (0.3, 0.5)):
        n = agents_for_service_level(load, 240.0, 20.0, target)
        assert erlang_c_service_level(n, load, 240.0, 20.0) >= target
        assert n - 1 <= load or erlang_c_service_level(n - 1, load, 240.0, 20.0) < target
    assert agents_for_service_level(0.0, 240.0, 20.0, 0.8) == 0
    with pytest.raises(ValueError, match="0 < target < 1"):
        agents_for_service_level(5.0, 240.0, 20.0, 1.0)


def test_fifo_replay_by_hand():
    # two agents: the third caller waits for the first to finish (at 10), the fourth for the second (at 12)
    waits = fifo_replay([0.0, 1.0, 2.0, 3.0], [10.0, 11.0, 5.0, 1.0], 2)
    assert waits == [0.0, 0.0, 8.0, 9.0]


def test_fifo_replay_answers_in_the_order_given_and_takes_arrivals_in_time_order():
    arrivals, services = [3.0, 0.0, 2.0, 1.0], [1.0, 10.0, 5.0, 11.0]
    assert fifo_replay(arrivals, services, 2) == [9.0, 0.0, 8.0, 0.0]
    assert fifo_replay([5.0, 5.0], [4.0, 1.0], 1) == [0.0, 4.0]  # a tie goes in the order given


def test_fifo_replay_of_a_poisson_day_is_close_to_erlang_c():
    rng = random.Random(7)
    rate, handle, servers = 1.0, 8.0, 10
    arrivals, t = [], 0.0
    for _ in range(60_000):
        t += rng.expovariate(rate)
        arrivals.append(t)
    waits = fifo_replay(arrivals, [rng.expovariate(1 / handle) for _ in arrivals], servers)
    p_wait = sum(w > 0 for w in waits) / len(waits)
    assert p_wait == pytest.approx(erlang_c(servers, rate * handle), abs=0.03)
    assert sum(waits) / len(waits) == pytest.approx(erlang_c_asa(servers, rate * handle, handle), rel=0.15)


def test_impatient_callers_leave_without_taking_an_agent():
    # one agent busy until 100: the second leaves at 40, so the third is served at 100, the fourth at once
    waits = fifo_reneging([0.0, 10.0, 20.0, 200.0], [100.0, 5.0, 5.0, 5.0], [None, 30.0, 200.0, 1.0], 1)
    assert waits == [0.0, None, 80.0, 0.0]
    assert fifo_reneging([0.0, 1.0], [10.0, 1.0], [None, None], 1) == fifo_replay([0.0, 1.0], [10.0, 1.0], 1)
    with pytest.raises(ValueError, match="as many services and patiences"):
        fifo_reneging([0.0], [1.0], [], 1)


def test_fifo_replay_refuses_nonsense():
    with pytest.raises(ValueError, match="at least one server"):
        fifo_replay([0.0], [1.0], 0)
    with pytest.raises(ValueError, match="as many services"):
        fifo_replay([0.0, 1.0], [1.0], 1)
