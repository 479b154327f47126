"""Prometheus metrics of one node, served at `/metrics`: a ring's life, sockets, events, the store.

One registry per node (not the process-global one), so several apps in one process (tests) never
mix their figures. Counters are per node; sum them across nodes in Prometheus.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from protocol.frames import EngagementEvent, Event, Ring, RingCancelled
from server.stats import Figures

PLACED = ("offered", "assigned")


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self._requests: dict[tuple[str, str], int] = {}
        self._published: dict[str, int] = {}
        self._delivered = 0

        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(f"switchboard_{name}", doc, labels, registry=r)

        def gauge(name: str, doc: str, *labels: str) -> Gauge:
            return Gauge(f"switchboard_{name}", doc, labels, registry=r)

        self.connections = gauge("connections", "Open sockets on this node, by role", "role")
        self.rings = counter(
            "rings_total", "Rings by outcome: offered, then accepted, declined, timeout, abandoned or taken", "outcome"
        )
        self.ring_latency = Histogram(
            "switchboard_ring_latency_seconds",
            "From an engagement's creation to its first ring (or assignment, in auto and email queues)",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
            registry=r,
        )
        self.waiting = gauge("queue_waiting", "Engagements waiting in the queue", "queue")
        self.longest_wait = gauge("queue_longest_wait_seconds", "How long the oldest waiting one has waited", "queue")
        self.published = counter("events_published_total", "Events published by this node, by topic kind", "kind")
        self.delivered = counter("events_delivered_total", "Frames written to this node's sockets")
        self.requests = counter("requests_total", "Client requests, by frame type and result code", "frame", "result")
        self.resumes = counter("resumes_total", "Sign-ins with resume_from: resumed, or a fresh snapshot", "result")
        self.slow_consumers = counter("slow_consumer_disconnects_total", "Sockets closed because they did not read")
        self.store_errors = counter("store_errors_total", "Operations refused because the store was out of reach")
        self.broker_errors = counter(
            "broker_errors_total",
            "Failures of the event broker's connection, by operation: publish, subscribe, unsubscribe, "
            "or connection (the pub/sub connection was lost)",
            "operation",
        )

    # --- the hot path ----------------------------------------------------------------------------
    # A labelled Prometheus counter takes a lock and a label lookup per `inc`; frames sent, requests and
    # published events happen thousands of times a second, so they are tallied in plain ints here and
    # added to their counters when /metrics is read (`render`).

    def request(self, frame: str, result: str) -> None:
        """A client request answered (`result`: `ok` or the error code)."""
        key = (frame, result)
        self._requests[key] = self._requests.get(key, 0) + 1

    def sent(self, frames: int = 1) -> None:
        """Frames written to a socket."""
        self._delivered += frames

    def committed(self, events: Iterable[tuple[str, Event]], notices: Iterable[tuple[str, Event]]) -> None:
        """Count what a transaction sent: rings and their ends, first placements, published events."""
        agents = 0
        placed: set[str] = set()
        for _, event in events:
            agents += 1
            if isinstance(event, Ring):
                self.rings.labels("offered").inc()
                self._placement(event, placed)
            elif isinstance(event, RingCancelled):
                self.rings.labels(event.reason.value).inc()
            elif isinstance(event, EngagementEvent):
                history = event.engagement.history
                if history and history[-1].event == "accepted" and history[-1].offer:
                    self.rings.labels("accepted").inc()
                self._placement(event, placed)
        published = self._published
        if agents:
            published["agent"] = published.get("agent", 0) + agents
        for topic, _ in notices:
            kind = topic.split(":", 1)[0]
            published[kind] = published.get(kind, 0) + 1

    def _placement(self, event: Ring | EngagementEvent, placed: set[str]) -> None:
        eng = event.engagement
        placements = [h.at for h in eng.history if h.event in PLACED]
        if eng.id in placed or not placements or placements[-1] != placements[0]:
            return  # not this engagement's first ring or assignment
        placed.add(eng.id)
        self.ring_latency.observe(max(0.0, placements[0] - eng.created_at))

    def _flush(self) -> None:
        requests, self._requests = self._requests, {}
        for (frame, result), n in requests.items():
            self.requests.labels(frame, result).inc(n)
        published, self._published = self._published, {}
        for kind, n in published.items():
            self.published.labels(kind).inc(n)
        delivered, self._delivered = self._delivered, 0
        self.delivered.inc(delivered)

    def render(self, roles: Iterable[str], figures: dict[str, Figures]) -> bytes:
        self._flush()
        counts: dict[str, int] = {"agent": 0, "supervisor": 0, "consumer": 0, "ingest": 0}
        for role in roles:
            counts[role] = counts.get(role, 0) + 1
        for role, n in counts.items():
            self.connections.labels(role).set(n)
        for queue, f in figures.items():
            self.waiting.labels(queue).set(f.waiting)
            self.longest_wait.labels(queue).set(f.longest_wait_s)
        return generate_latest(self.registry)
