"""Outbound webhooks: the agent's chat lines and email replies, posted to the queue's `webhook_url`.

Delivery is in the background, in order per node, with a few retries; a consumer channel that is
down never slows an agent. With `server.webhook_secret` each body is signed (HMAC-SHA256 in
`X-Switchboard-Signature: sha256=<hex>`), so the receiver can tell the post came from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging

import httpx
import msgspec

from protocol.model import Message
from server.config import QueueCfg

log = logging.getLogger("switchboard.webhooks")
ATTEMPTS = 4
BACKLOG = 10_000


class MessagePosted(msgspec.Struct, kw_only=True):
    event: str = "message"
    engagement: str
    queue: str
    message: Message


class Webhooks:
    def __init__(self, secret: str | None) -> None:
        self.secret = secret
        self._queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(maxsize=BACKLOG)
        self._worker: asyncio.Task[None] | None = None

    def message_sent(self, queue: QueueCfg, engagement_id: str, message: Message) -> None:
        if queue.webhook_url is None:
            return
        body = msgspec.json.encode(MessagePosted(engagement=engagement_id, queue=queue.id, message=message))
        try:
            self._queue.put_nowait((queue.webhook_url, body))
        except asyncio.QueueFull:
            log.error("webhook backlog full; message %s for %s not posted", message.id, queue.webhook_url)
            return
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._post_all(), name="switchboard-webhooks")

    async def _post_all(self) -> None:
        async with httpx.AsyncClient(timeout=5.0) as client:
            while not self._queue.empty():
                url, body = self._queue.get_nowait()
                await self._post(client, url, body)

    async def _post(self, client: httpx.AsyncClient, url: str, body: bytes) -> None:
        headers = {"content-type": "application/json"}
        if self.secret:
            digest = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
            headers["x-switchboard-signature"] = f"sha256={digest}"
        for attempt in range(ATTEMPTS):
            try:
                response = await client.post(url, content=body, headers=headers)
                if response.status_code < 500:
                    if response.status_code >= 400:
                        log.error("webhook %s refused a message: %s", url, response.status_code)
                    return
            except httpx.HTTPError as exc:
                log.warning("webhook %s failed (%s), attempt %d", url, type(exc).__name__, attempt + 1)
            await asyncio.sleep(0.2 * 2**attempt)
        log.error("webhook %s: gave up after %d attempts", url, ATTEMPTS)

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
