"""Local fan-out: the handlers of this node's sockets, by topic. Every broker delivers through one."""

from __future__ import annotations

from collections.abc import Callable

from server.bus.base import Delivery, Handler


class Hub:
    def __init__(self) -> None:
        self._handlers: dict[str, set[Handler]] = {}
        self.resync_callbacks: list[Callable[[], None]] = []

    def add(self, topic: str, handler: Handler) -> bool:
        """Add a handler; True when it is the topic's first on this node."""
        handlers = self._handlers.setdefault(topic, set())
        handlers.add(handler)
        return len(handlers) == 1

    def remove(self, topic: str, handler: Handler) -> bool:
        """Remove a handler; True when it was the topic's last on this node."""
        handlers = self._handlers.get(topic)
        if handlers is None:
            return False
        handlers.discard(handler)
        if handlers:
            return False
        del self._handlers[topic]
        return True

    def dispatch(self, delivery: Delivery) -> None:
        for handler in tuple(self._handlers.get(delivery.topic, ())):
            handler(delivery)

    def topics(self) -> list[str]:
        return list(self._handlers)

    def resync(self) -> None:
        """Tell every handler (and resync callback) that deliveries may have been missed."""
        for topic, handlers in list(self._handlers.items()):
            marker = Delivery.resync(topic)
            for handler in tuple(handlers):
                handler(marker)
        for callback in self.resync_callbacks:
            callback()
