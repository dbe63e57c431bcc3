# Small fakes for the collaborators of the OCPP model, shared by the
# MicroPython unit tests (mpt_*.py): the hardware a connector drives, the
# message queue, the authorization, the registration, a clock driver, and a
# temporary flash directory on the host filesystem. Everything else in the
# tests is the firmware's own code.
import asyncio
import os

from mpocpp.util import clock

T0 = 1767225600  # 2026-01-01T00:00:00Z
ISO0 = "2026-01-01T00:00:00Z"


# --- the heap ----------------------------------------------------------------

def fragmented_heap(size=200):
    # The heap filled with blocks of `size` bytes, every other one freed: no
    # free block much larger than that. -> what holds the rest (drop it and
    # collect to give the heap back).
    import gc
    kept = freed = None
    try:
        while True:  # chains, not lists: no large block to grow
            kept = (kept, bytearray(size))
            freed = (freed, bytearray(size))
    except MemoryError:
        pass
    freed = None
    gc.collect()
    return kept


# --- flash and clock ---------------------------------------------------------

def rmtree(p):
    try:
        names = os.listdir(p)
    except OSError:
        return
    for n in names:
        q = p + "/" + n
        try:
            os.remove(q)
        except OSError:
            rmtree(q)
    os.rmdir(p)


def tmpdir(tag="mpt"):
    # A fresh directory under /tmp (the unix port's filesystem is the host's).
    d = "/tmp/%s_%s" % (tag, "".join("%02x" % b for b in os.urandom(6)))
    rmtree(d)
    os.mkdir(d)
    return d


class ClockDriver:
    # The board's clock: .time() and .set(s).
    def __init__(self, t=T0):
        self.t = t
        self.sets = []

    def time(self):
        return self.t

    def set(self, s):
        self.t = s
        self.sets.append(s)


def init_clock(t=T0):
    d = ClockDriver(t)
    clock.init(d)
    return d


def config(d=None, keys=None, n=1, settings=None, limits=None):
    # The real Config over a temporary flash directory, provisioned with
    # `keys`; n connectors.
    from mpocpp.model.config import Config
    lim = {"NumberOfConnectors": n}
    if limits:
        lim.update(limits)
    cfg = Config(d or tmpdir("mpt_cfg"), lim)
    cfg.load({"identity": {"chargePointVendor": "OpenCharge", "chargePointModel": "MPY-AC22",
                           "chargePointSerialNumber": "SIM-0001"},
              "keys": keys or {}, "settings": settings or {}})
    return cfg


async def settle(n=10):
    # Let the tasks the code under test created run (swipes, lock moves).
    for _ in range(n):
        await asyncio.sleep_ms(0)


# --- hardware ----------------------------------------------------------------

class Pilot:
    # The control pilot: the EV state read back, the current offered.
    def __init__(self):
        self.state = "A"
        self.offered = 0
        self.max_amps = 32

    def read_state(self):
        return self.state

    def offer(self, amps):
        a = min(amps, self.max_amps)
        self.offered = a
        return a

    def stop(self):
        self.offered = 0


class Relay:
    def __init__(self):
        self.closed = False
        self.fault = None  # what check() reports (PowerSwitchFailure)
        self.closes = 0

    def close(self):
        self.closed = True
        self.closes += 1

    def open(self):
        self.closed = False

    def check(self):
        return self.fault


class Lock:
    def __init__(self, works=True):
        self.locked = False
        self.works = works
        self.moves = []

    async def lock(self):
        self.moves.append("lock")
        if self.works:
            self.locked = True
        return self.works

    async def unlock(self):
        self.moves.append("unlock")
        if self.works:
            self.locked = False
        return self.works


class Hw:
    # The board's driver bundle for one connector (boards/common/connectorhw.py).
    def __init__(self, lock=True, meter=None):
        self.pilot = Pilot()
        self.relay = Relay()
        self.lock = Lock() if lock else None
        self.meter = meter


class Meter:
    # metering.meter.Meter as the model sees it.
    def __init__(self):
        self.wh = {}
        self.offered = {}

    def reported_wh(self, cid):
        return self.wh.get(cid, 0)

    def set_offered(self, cid, amps):
        self.offered[cid] = amps


# --- protocol side -----------------------------------------------------------

class Pushed:
    def __init__(self, action, payload, txn, placeholder):
        self.action = action
        self.payload = payload
        self.txn = txn
        self.placeholder = placeholder


class Queue:
    # The persistent message queue as sessions use it: records the pushes.
    def __init__(self):
        self.pushed = []
        self.room = True  # can_start_transaction()
        self.map = {}  # placeholder -> transactionId
        self._ph = -1

    def push(self, action, payload, txn=True, placeholder=None):
        self.pushed.append(Pushed(action, payload, txn, placeholder))
        return len(self.pushed)

    def can_start_transaction(self):
        return self.room

    def new_placeholder(self):
        self._ph -= 1
        return self._ph

    def resolve(self, txid):
        return self.map.get(txid, txid)

    def has_start(self, ph):
        return ph in self.map or any(m.action == "StartTransaction" and m.placeholder == ph
                                     for m in self.pushed)

    def has_stop(self, txid, since=0):
        for m in self.pushed:
            if m.action == "StopTransaction" and \
                    self.resolve(m.payload["transactionId"]) == self.resolve(txid):
                return True
        return False

    def actions(self):
        return [m.action for m in self.pushed]

    def last(self, action):
        for m in reversed(self.pushed):
            if m.action == action:
                return m.payload
        return None

    def all(self, action):
        return [m.payload for m in self.pushed if m.action == action]


class Auth:
    # model.authorization.Authorization as sessions see it: canned answers
    # per idTag (default Invalid), the tags asked, in order.
    def __init__(self, answers=None):
        self.answers = answers or {}
        self.asked = []
        self.gate = None  # an asyncio.Event to hold the answer back
        self.parents = {}  # idTag -> parentIdTag in the local list or cache

    def parent_of(self, id_tag):
        return self.parents.get(id_tag)

    def mounted(self):
        return False  # (no store: nothing to let go)

    def release(self):
        pass

    async def authorize(self, id_tag):
        self.asked.append(id_tag)
        if self.gate is not None:
            await self.gate.wait()
        return dict(self.answers.get(id_tag, {"status": "Invalid"}))


class Registration:
    def __init__(self, status="Accepted", online=True):
        self.status = status
        self.online = online
        self.boots = 0

    @property
    def accepted(self):
        return self.online and self.status == "Accepted"


class Hooks:
    # Metering and smart charging as sessions see them (app.Charger's hooks).
    def __init__(self, data=None):
        self.started = []
        self.stopped = []
        self.data = data
        self.idles = 0  # every connector idle a while: what they made may go
        self.holding = False  # made for a transaction (MeterValues), until idle

    def tx_started(self, conn):
        self.started.append(conn.id)
        self.holding = True

    def tx_stopped(self, conn):
        self.stopped.append(conn.id)

    def tx_data(self, conn):
        return self.data

    def held(self):
        return self.holding

    def idle(self):
        self.idles += 1
        self.holding = False


class Recorder:
    # A callable that records its calls' first argument (or True).
    def __init__(self):
        self.calls = []

    def __call__(self, *args):
        self.calls.append(args[0] if args else True)


class Led:
    # The board's status LED: records what it was asked to flash.
    def __init__(self):
        self.flashes = Recorder()

    def flash(self, state, ms=1000):
        self.flashes(state)


# --- a connector set and the sessions over it --------------------------------

class Rig:
    # n connectors on fake hardware, the real Reservations, Availability and
    # Sessions (the first two have no state of their own: the tests' objects
    # and the session code's act on the same connectors and files), over a
    # temporary flash directory with the real Config.
    # make_auth(cfg): the authorization to use instead of the fake one;
    # queue: the (fake) queue a power cut left in flash, else a new one.
    def __init__(self, n=1, keys=None, answers=None, lock=True, d=None, meter=True,
                 max_amps=32, make_auth=None, queue=None):
        from mpocpp.model.connector import Connector
        from mpocpp.model.reservations import Reservations
        from mpocpp.model.availability import Availability
        from mpocpp.model.sessions import Sessions
        init_clock()
        self.dir = d or tmpdir("mpt_rig")
        cfg = self.cfg = config(self.dir, keys, n)
        self.reports = []  # StatusNotification payloads, in order
        self.meter = Meter() if meter else None
        self.hw = [None] + [Hw(lock) for _ in range(n)]
        self.cons = [Connector(i, self.hw[i], cfg, self.meter, max_amps, self.reports.append)
                     for i in range(n + 1)]
        self.queue = queue if queue is not None else Queue()
        self.auth = Auth(answers) if make_auth is None else make_auth(cfg)
        self.reservations = Reservations(self.cons)
        self.availability = Availability(self.dir, self.cons)
        self.hooks = Hooks()
        self.led = Led()
        self.refused = self.led.flashes  # a refused card flashes the LED "faulted"
        self.sessions = Sessions(cfg, self.cons, self.queue, self.auth, self.meter, self.hooks,
                                 self.led)

    def con(self, cid=1):
        return self.cons[cid]

    def ev(self, state, cid=1):
        # The EV (or its cable) changes the pilot state: an interrupt.
        self.hw[cid].pilot.state = state
        self.sessions.hw_event(self.cons[cid])

    def statuses(self, cid=1):
        return [p["status"] for p in self.reports if p["connectorId"] == cid]

    def clear(self):
        self.reports[:] = []

    async def swipe(self, tag):
        self.sessions.swipe(tag)
        await settle()

    async def start(self, tag="TAG1", cid=1, parent=None):
        # Plug and swipe: a transaction starts on connector cid; the EV draws.
        self.auth.answers.setdefault(tag, {"status": "Accepted"} if parent is None else
                                     {"status": "Accepted", "parentIdTag": parent})
        self.ev("B", cid)
        await self.swipe(tag)
        c = self.cons[cid]
        assert c.tx is not None, "no transaction started"
        self.ev("C", cid)
        assert c.status == "Charging", c.status
        return c
