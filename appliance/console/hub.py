"""Live push to the open pages: events from the MQTT thread fanned out to each SSE stream."""
from __future__ import annotations

import asyncio

QUEUE_EVENTS = 2000  # a page this far behind is told to re-read the whole state instead


class Hub:
    """Thread-safe publish into per-connection asyncio queues on the server's event loop."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self._queues: set[asyncio.Queue] = set()

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind to the running server loop (at start-up)."""
        self.loop = loop

    def publish(self, event: dict) -> None:
        """Called from any thread (the MQTT network thread): deliver ``event`` to every stream."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._fanout, event)

    def _fanout(self, event: dict) -> None:
        for queue in self._queues:
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:  # this page fell behind: empty its queue, have it re-read everything
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait({"kind": "resync"})

    def subscribe(self) -> asyncio.Queue:
        """A queue of events for one SSE stream."""
        queue: asyncio.Queue = asyncio.Queue(QUEUE_EVENTS)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        """The stream ended."""
        self._queues.discard(queue)
