"""Transcript search on a long call: how fast `search` answers on a transcript of N fragments.

Measured twice: the search function alone (cold: a transcript the node never searched; then warm),
and end to end, a `search` request over a real socket to a real server, reply included. "rare"
queries hit 10 fragments (a detail said once in a while); "common" ones hit the 500-hit cap.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import httpx

from clients.agent import AgentClient
from loadtest.stats import percentiles
from protocol.model import Fragment
from server.app import create_app
from server.auth import issue
from server.config import from_mapping
from server.search import Searcher, fold, words
from server.wsprotocol import LeanWebSocketProtocol

WORDS = [
    "bonjour",
    "commande",
    "livraison",
    "remboursement",
    "colis",
    "délai",
    "adresse",
    "facture",
    "numéro",
    "suivi",
    "crème",
    "brûlée",
    "hello",
    "order",
    "delivery",
    "refund",
    "parcel",
    "delay",
    "address",
    "invoice",
    "tracking",
    "number",
    "straße",
    "café",
    "naïve",
    "je",
    "voudrais",
    "savoir",
    "où",
    "en",
    "est",
    "ma",
    "commande",
    "le",
    "livreur",
    "n'est",
    "pas",
    "passé",
    "merci",
    "beaucoup",
]
RARE = "Le numéro de suivi XK-99 est introuvable"  # said once in every 1,000 fragments
RARE_QUERIES = ["xk-99 INTROUVABLE", "numero de suivi xk-99", "introuvable"]
COMMON_QUERIES = ["remboursement", "CREME brulee", "livraison delai", "straße"]
SECRET = "loadtest-secret-0123456789-0123456789-abc"


def transcript(n: int, rng: random.Random) -> list[Fragment]:
    return [
        Fragment(
            id=f"f{i}",
            speaker="consumer" if i % 2 else "agent",
            text=RARE if i % 1000 == 999 else " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 18))),
            ts=1795000000.0 + i,
        )
        for i in range(n)
    ]


def bench_function(fragments: list[Fragment], rounds: int) -> dict[str, Any]:
    cold = []
    for query in RARE_QUERIES + COMMON_QUERIES:
        started = time.perf_counter()
        Searcher().search("e", fragments, query)
        cold.append(time.perf_counter() - started)
    searcher = Searcher()
    searcher.search("e", fragments, "warm-up")
    result = {"cold": percentiles(cold)}
    naive = []  # the peer: what a straightforward implementation does, folding every fragment each time
    for i in range(min(rounds, 20)):
        needles = words(RARE_QUERIES[i % len(RARE_QUERIES)])
        started = time.perf_counter()
        [f for f in fragments if all(n in fold(f.text) for n in needles)]
        naive.append(time.perf_counter() - started)
    result["naive_rare"] = percentiles(naive)
    for name, queries in (("rare", RARE_QUERIES), ("common", COMMON_QUERIES)):
        samples = []
        for i in range(rounds):
            started = time.perf_counter()
            searcher.search("e", fragments, queries[i % len(queries)])
            samples.append(time.perf_counter() - started)
        result[name] = percentiles(samples)
    return result


async def bench_socket(fragments: list[Fragment], rounds: int) -> dict[str, Any]:
    import uvicorn

    config = from_mapping(
        {
            # the searches come back to back: the per-socket rate limit would measure itself, not search
            "server": {
                "secret": SECRET,
                "api_keys": ["k"],
                "max_body_bytes": 64 << 20,
                "rate_per_s": 1_000_000.0,
                "rate_burst": 1_000_000,
            },
            "queues": [{"id": "calls", "channel": "voice", "transcription": True}],
            "agents": [{"id": "ann", "queues": ["calls"]}],
        }
    )
    app = create_app(config)
    server = uvicorn.Server(
        uvicorn.Config(app, port=0, log_level="warning", ws=LeanWebSocketProtocol, ws_max_size=64 << 20)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    base = f"127.0.0.1:{port}"
    try:
        async with (
            httpx.AsyncClient(base_url=f"http://{base}", headers={"Authorization": "Bearer k"}, timeout=60) as api,
            AgentClient.connect(f"ws://{base}", issue(SECRET, "ann"), request_timeout=60) as ann,
        ):
            await ann.set_status("ready")
            eid = (await api.post("/v1/engagements", json={"queue": "calls"})).json()["id"]
            await ann.accept((await ann.next_event("ring")).offer)
            for start in range(0, len(fragments), 1000):
                batch = [{"speaker": f.speaker, "text": f.text, "ts": f.ts} for f in fragments[start : start + 1000]]
                await api.post(f"/v1/engagements/{eid}/transcript", json={"fragments": batch})
            result = {}
            for name, queries in (("rare", RARE_QUERIES), ("common", COMMON_QUERIES)):
                samples = []
                for i in range(rounds):
                    started = time.perf_counter()
                    await ann.search(eid, queries[i % len(queries)])
                    samples.append(time.perf_counter() - started)
                result[name] = percentiles(samples)
            return result
    finally:
        server.should_exit = True
        await task


def run(fragments: int, rounds: int, seed: int = 7) -> dict[str, Any]:
    data = transcript(fragments, random.Random(seed))
    result = {"fragments": fragments, "function": bench_function(data, rounds)}
    result["socket"] = asyncio.run(bench_socket(data, rounds))
    return result
