# The sender: while connected, one CALL at a time in priority order
# (checklist §1): BootNotification until Accepted; then the messages
# TriggerMessage asked for; after a boot the statuses of all connectors
# (E3.22); the transaction messages of the persistent queue, in order, before
# the other StatusNotifications; the lower-priority queue; Heartbeat when
# idle for HeartbeatInterval.
import asyncio
import time
from mpocpp.util import clock
from mpocpp.util import log
from mpocpp.protocol.rpc import CallError, CallTimeout, Offline

_TAG = "sender"


class Sender:
    def __init__(self, cfg, rpc, registration, outbox, queue, wake, on_registered, on_delivered):
        self._cfg = cfg
        self._rpc = rpc
        self._reg = registration
        self._outbox = outbox
        self._queue = queue  # messages.MessageQueue
        self._wake = wake  # asyncio.Event: something to send
        self._on_registered = on_registered  # callable(): first Accepted since power-up
        self._on_delivered = on_delivered  # callable(action, payload, response)
        self._registered = False
        self._last_call_ms = time.ticks_ms()
        self._boot_due = 0

    # --- CALLs ---
    async def call(self, action, payload, on_result=None):
        # Any CALL (the sender's own, or one made on the link's behalf).
        self._last_call_ms = time.ticks_ms()
        try:
            return await self._rpc.call(action, payload, self._cfg.get("MessageTimeout"),
                                        on_result)
        finally:
            self._last_call_ms = time.ticks_ms()

    async def call_now(self, action, payload):
        # An immediate CALL (Authorize, a job's status): Offline unless
        # connected and registered; CallError / CallTimeout on failure.
        if not self._reg.accepted:
            raise Offline
        return await self.call(action, payload)

    def boot_now(self):
        # TriggerMessage(BootNotification) while Pending: send it at once.
        self._boot_due = time.ticks_ms()
        self._wake.set()

    # --- the loop, run by the link while connected ---
    async def run(self):
        if self._reg.status == "Accepted":
            self._outbox.reconnected(clock.iso())  # no new BootNotification
        try:
            while True:
                if self._reg.status != "Accepted":
                    await self._boot()
                elif not await self._send_next():
                    await self._idle()
        except Offline:
            pass

    async def _boot(self):
        reg = self._reg
        st = await reg.boot(self.call)
        if st == "Accepted":
            reg.end_silence()
            if not self._registered:
                self._registered = True
                self._on_registered()
            else:
                self._outbox.reconnected(clock.iso())
            return
        wait = reg.interval if st is not None and reg.interval > 0 else \
            self._cfg.settings.get("bootRetryS", 30)
        if st == "Rejected":
            # Silent for the interval: no CALLs, no answers (OCPP 1.6 §4.2).
            try:
                await asyncio.sleep(wait)
            finally:
                reg.end_silence()
            return
        # Pending (or no answer): answer the CSMS, send only what
        # TriggerMessage asks, retry the BootNotification.
        await self._boot_wait(wait)

    async def _boot_wait(self, seconds):
        self._boot_due = time.ticks_add(time.ticks_ms(), int(seconds * 1000))
        while True:
            while await self._send_triggered():  # allowed while Pending
                pass
            left = time.ticks_diff(self._boot_due, time.ticks_ms())
            if left <= 0:
                return
            await self._sleep(left)

    async def _send_triggered(self):
        t = self._outbox.triggered
        if not t:
            return False
        m = t.pop(0)
        if m.action == "Heartbeat":
            await self._reg.heartbeat(self.call)  # its currentTime sets the clock too
            return True
        try:
            await self.call(m.action, m.payload)
        except (CallError, CallTimeout):
            pass
        return True

    async def _send_next(self):
        # One CALL in priority order; False when there is nothing to send.
        ob = self._outbox
        if ob.triggered:
            return await self._send_triggered()
        q = self._queue
        m = q.peek(time.ticks_ms())
        if ob.statuses and (ob.first or m is None or not m.txn):
            p = ob.statuses[0]
            try:
                await self.call("StatusNotification", p)
            except (CallError, CallTimeout):
                pass
            if ob.statuses and ob.statuses[0] is p:
                ob.statuses.pop(0)
            return True
        ob.first = False
        if m is None:
            return False
        try:
            res = await self.call(m.action, m.payload)
        except (CallError, CallTimeout):
            q.failed(m.qid, time.ticks_ms())
            return True
        q.delivered(m.qid, res)
        try:
            self._on_delivered(m.action, m.payload, res)
        except Exception as e:
            log.exc(_TAG, "after %s", e, m.action)
        return True

    async def _idle(self):
        # Wait for queued work, a retry coming due or the next Heartbeat.
        hb = self._cfg.get("HeartbeatInterval")
        wait = self._queue.due_in_ms(time.ticks_ms())
        if hb > 0:
            left = hb * 1000 - time.ticks_diff(time.ticks_ms(), self._last_call_ms)
            if left <= 0:
                await self._reg.heartbeat(self.call)
                return
            if wait is None or left < wait:
                wait = left
        await self._sleep(60000 if wait is None else wait)

    async def _sleep(self, ms):
        self._wake.clear()
        try:
            await asyncio.wait_for_ms(self._wake.wait(), max(ms, 10))
        except asyncio.TimeoutError:
            pass
