"""uvicorn's HTTP/1.1 protocol, plus a deadline for the request head.

uvicorn closes a keep-alive connection that stays idle after an answer, but not one that never
finishes a request head: a client that connects and sends nothing, or half a header, would hold
its socket (and a place under --limit-concurrency) for ever. Here a connection that has not
sent a whole request head within `timeout_keep_alive` seconds of connecting or of starting one is
closed. The body has its own deadline (guard.BodyDeadline).
"""

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


class HeadDeadlineProtocol(H11Protocol):
    def connection_made(self, transport):
        super().connection_made(transport)
        self._head_timer = None
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:  # a request head has begun (or nothing yet): it must finish
            self._arm_head_timer()
        else:
            self._disarm_head_timer()

    def connection_lost(self, exc):
        self._disarm_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self):
        if self._head_timer is None and not self.transport.is_closing():
            self._head_timer = self.loop.call_later(self.timeout_keep_alive, self._head_overdue)

    def _disarm_head_timer(self):
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_overdue(self):
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()
