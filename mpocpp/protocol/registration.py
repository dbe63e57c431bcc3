# Registration with the central system (OCPP 1.6 §4.2, §4.6): the
# BootNotification and its answer (Accepted, Pending, Rejected), Heartbeat,
# and the clock set from their currentTime. The sender (queue/sender.py)
# decides when to call them; this object holds what they decided.
from mpocpp.util import clock
from mpocpp.util import log

from micropython import const

_TAG = "reg"
_JUMP_S = const(60)  # a clock change this large is a SettingSystemTime event


class Registration:
    def __init__(self, cfg, rpc, clock_trusted, firmware_version=None, on_clock_set=None):
        self._cfg = cfg
        self._rpc = rpc
        self._trusted = clock_trusted  # the board's RTC is set by other means
        self._fw = firmware_version  # the installed image that runs, if any
        # on_clock_set(before, after): the central system moved the clock by
        # _JUMP_S or more (unix seconds)
        self._on_clock_set = on_clock_set
        self.status = None  # None until the first BootNotification answer
        self.online = False  # the link is connected (set by the link)
        self.interval = 0

    @property
    def accepted(self):
        # Connected and registered: CALLs other than BootNotification may go.
        return self.online and self.status == "Accepted"

    def payload(self):
        p = {}
        for k, v in self._cfg.identity.items():
            if v:
                p[k] = v
        if "chargePointVendor" not in p:
            p["chargePointVendor"] = "Unknown"
        if "chargePointModel" not in p:
            p["chargePointModel"] = "Unknown"
        if self._fw:
            p["firmwareVersion"] = self._fw
        return p

    async def boot(self, call):
        # One BootNotification through call(action, payload, on_result) -> the
        # status (None when it failed: CALLERROR, timeout).
        from mpocpp.protocol.rpc import CallError, CallTimeout
        try:
            res = await call("BootNotification", self.payload(), self._answer)
        except (CallError, CallTimeout):
            return None
        self.interval = res["interval"]
        self.status = res["status"]
        self._set_clock(res.get("currentTime"))
        log.info(_TAG, "BootNotification %s, interval %d", self.status, self.interval)
        if self.status == "Accepted" and self.interval > 0:
            self._cfg.set("HeartbeatInterval", self.interval)
        return self.status

    def _answer(self, res):
        # As the answer is read: Rejected makes the charger silent before the
        # central system's next CALL is read (§4.2: no answers while Rejected).
        self._rpc.silent = res.get("status") == "Rejected"

    def end_silence(self):
        self._rpc.silent = False

    async def heartbeat(self, call):
        from mpocpp.protocol.rpc import CallError, CallTimeout
        try:
            res = await call("Heartbeat", {})
        except (CallError, CallTimeout):
            return
        self._set_clock(res.get("currentTime"))

    def _set_clock(self, ts):
        if not ts or self._trusted:
            return
        from mpocpp.util import timeparse
        try:
            t, ms = timeparse.parse_ms(ts)
        except ValueError:
            log.warn(_TAG, "bad currentTime %r", ts)
            return
        before = clock.now()
        clock.set_time(t, ms)
        clock.remember(self._cfg.dir + "/lasttime")
        if self._on_clock_set is not None and abs(t - before) >= _JUMP_S:
            self._on_clock_set(before, t)
