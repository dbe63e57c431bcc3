# Bench-control server of the simulated charger: line-delimited JSON over TCP
# on loopback, one request and one reply per line (see docs/bench-protocol.md).
#   > {"op":"plug_in","connector":1}
#   < {"ok":true}
import asyncio
import json
import gc
from mpocpp.util import log

_TAG = "bench"
_FAULTS = ("weld", "stuck_open", "lock_jam", "diode")


def _gen():
    yield


_GEN = type(_gen())  # an async op's coroutine


class BenchError(Exception):
    pass


def _connector(ch, req):
    cid = req.get("connector", 1)
    if not isinstance(cid, int) or cid < 1 or cid >= len(ch.connectors):
        raise BenchError("no connector %r" % (cid,))
    return ch.connectors[cid]


def _hw(ch, req):
    c = _connector(ch, req)
    if c.hw is None:
        raise BenchError("connector %d has no simulated hardware" % c.id)
    return c


class Bench:
    # ch: the firmware's composition root (mpocpp.app.Charger), which the
    # simulated board drives as the hardware and the people at a bench would.
    def __init__(self, ch, board):
        self.ch = ch
        self.board = board
        self._watching = False
        self._hog = None
        self._period = 100
        self._peak = 0
        self._samples = 0

    def handle(self, req):
        if not isinstance(req, dict) or not isinstance(req.get("op"), str):
            raise BenchError("request must be an object with an op")
        fn = getattr(self, "op_" + req["op"], None)
        if fn is None:
            raise BenchError("unknown op " + req["op"])
        return fn(req)

    # --- the EV and the cable ---
    def op_plug_in(self, req):
        c = _hw(self.ch, req)
        c.hw.sim.plug_in()
        self.ch.sessions.hw_event(c)

    def op_plug_out(self, req):
        c = _hw(self.ch, req)
        c.hw.sim.plug_out()
        self.ch.sessions.hw_event(c)

    def op_ev_state(self, req):
        c = _hw(self.ch, req)
        s = req.get("state")
        if s not in ("A", "B", "C", "D", "E", "F"):
            raise BenchError("state must be one of A-F")
        c.hw.sim.ev_state(s)
        if req.get("notify", True):
            self.ch.sessions.hw_event(c)
        # notify=false: only the supervisor's pilot polling sees it, as on a
        # board without a pilot interrupt (bench_session measures that path).

    def op_load(self, req):
        c = _hw(self.ch, req)
        amps = req.get("amps", [0, 0, 0])
        volts = req.get("volts", [230, 230, 230])
        if not isinstance(amps, list) or not isinstance(volts, list):
            raise BenchError("amps and volts are lists, one value per phase")
        for v in amps + volts:
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
                raise BenchError("amps/volts must be non-negative numbers")
        pf = req.get("pf")
        if pf is not None and (not isinstance(pf, (int, float)) or isinstance(pf, bool)
                               or not 0 < pf <= 1):
            raise BenchError("pf must be a number in (0, 1]")
        try:
            c.hw.sim.load(amps, volts, pf)
        except ValueError as e:
            raise BenchError(str(e))

    # --- the reader, the network, faults ---
    def op_swipe(self, req):
        tag = req.get("idTag")
        if not isinstance(tag, str) or not 0 < len(tag) <= 20:
            raise BenchError("idTag must be a string of 1-20 characters")
        self.ch.sessions.swipe(tag)

    def op_network(self, req):
        up = req.get("up")
        if not isinstance(up, bool):
            raise BenchError("up must be true or false")
        log.info(_TAG, "network " + ("up" if up else "down"))
        self.board.net.set_up(up)
        if not up:
            self.ch.link.abort()

    def op_dns(self, req):
        up = req.get("up")
        if not isinstance(up, bool):
            raise BenchError("up must be true or false")
        log.info(_TAG, "dns " + ("up" if up else "down"))
        self.board.net.dns_up = up
        return {"lookups": self.board.net.lookups}

    def op_raise_error(self, req):
        c = _connector(self.ch, req)
        code = req.get("code")
        if not isinstance(code, str):
            raise BenchError("code must be a ChargePointErrorCode")
        c.raise_fault(code, req.get("info"))

    def op_clear_error(self, req):
        c = _connector(self.ch, req)
        c.clear_fault()

    def op_inject(self, req):
        # A hardware defect in the simulation; the firmware has to find it
        # through its drivers (relay feedback, lock sense, pilot diode check).
        c = _hw(self.ch, req)
        kind = req.get("fault")
        on = req.get("on", True)
        if kind not in _FAULTS:
            raise BenchError("fault must be one of " + ", ".join(_FAULTS))
        if not isinstance(on, bool):
            raise BenchError("on must be true or false")
        log.info(_TAG, "connector %d: fault %s %s", c.id, kind, "on" if on else "off")
        c.hw.sim.inject(kind, on)
        self.ch.sessions.hw_event(c)

    def op_emergency_stop(self, req):
        on = req.get("on", True)
        if not isinstance(on, bool):
            raise BenchError("on must be true or false")
        log.warn(_TAG, "emergency stop " + ("pressed" if on else "released"))
        self.ch.sessions.emergency_stop(on)

    def op_tamper(self, req):
        # The enclosure's tamper switch: open (true) or shut (false).
        op = req.get("open", True)
        if not isinstance(op, bool):
            raise BenchError("open must be true or false")
        if self.board.tamper is None:
            raise BenchError("this board has no tamper switch")
        self.board.tamper.value(1 if op else 0)
        return {"open": op}

    def op_state(self, req):
        ch = self.ch
        led = self.board.led
        st = {"connectors": [self._connector_state(c) for c in ch.connectors[1:]],
              "status0": ch.connectors[0].status,
              "led": led.state if led else None,
              "connection": ch.link.state, "registration": ch.registration.status,
              "queue_depth": len(ch.queue),
              "heap": {"free": gc.mem_free(), "alloc": gc.mem_alloc() - self.board.rom_bytes},
              "boot": ch.ids.boot_count}
        if led is not None:
            st["led_rgb"] = list(led.rgb)
            st["led_intensity"] = led.percent
        return st

    def _connector_state(self, c):
        snap = c.hw.sim.snapshot() if c.hw is not None else {}
        m = self.ch.meter
        tx = c.tx
        r = c.reservation
        return {"id": c.id, "status": c.status, "errorCode": c.error_code,
                "relay": snap.get("relay", False), "locked": snap.get("locked", False),
                "duty": snap.get("duty", 100.0), "offered_amps": snap.get("offered_amps", 0),
                "pilot": snap.get("pilot", c.pilot), "amps": snap.get("amps"),
                "energy_wh": round(m.register_wh(c.id), 1) if m is not None else 0,
                "power_w": round(m.latest(c.id)["power_w"]) if m is not None else None,
                "transaction": None if tx is None else {
                    "id": self.ch.sessions.transaction_id(c),
                    "idTag": tx.id_tag, "meterStart": tx.meter_start},
                "operative": c.operative, "reservation": r.id if r is not None else None}

    def op_sign_certificate(self, req):
        # A new key pair and SignCertificate now, as ExtendedTriggerMessage
        # SignChargePointCertificate asks (whitepaper A02), or, renew=true,
        # the charger's own renewal check (A03).
        asyncio.create_task(self.ch.sign_certificate(req.get("renew") is True))
        return {"started": True}

    def op_ping(self, req):
        # data: which charger this is (a test harness checks the port is ours)
        return {"pong": True, "data": self.board.data_dir}

    def op_heap(self, req):
        # GC heap figures after a full collection (for benchmarks), and the
        # largest in use that heap_watch has seen since it started.
        gc.collect()
        import sys
        # (A ROMFS image read into the heap, as flash on a board, left out.)
        return {"free": gc.mem_free(), "alloc": gc.mem_alloc() - self.board.rom_bytes,
                "peak": self._peak, "samples": self._samples, "modules": sorted(sys.modules)}

    def op_heap_map(self, req):
        # MicroPython's map of the GC heap, one character a block, and its
        # qstr pools, printed to the simulator's console (its log): where the
        # free space is, what pins it (fragmentation), how many names are
        # interned (docs/benchmarks.md).
        import micropython
        gc.collect()
        micropython.mem_info(1)
        micropython.qstr_info(req.get("verbose", 0))
        return {"free": gc.mem_free(), "alloc": gc.mem_alloc() - self.board.rom_bytes}

    def op_hog(self, req):
        # Takes the heap until only `leave` bytes are free, in 256-byte blocks
        # (a heap both full and fragmented); leave=null gives it back. Running
        # out of heap is an input the firmware must survive.
        leave = req.get("leave")
        self._hog = None
        gc.collect()
        if leave is None:
            return {"free": gc.mem_free()}
        if not isinstance(leave, int) or leave < 1024:
            raise BenchError("leave must be an integer >= 1024, or null")
        chain = None  # a chain of (previous, block): no list to grow
        for size in (256, 32):
            try:
                while gc.mem_free() > leave:
                    chain = (chain, bytearray(size))
            except MemoryError:
                pass
        self._hog = chain
        return {"free": gc.mem_free()}

    def op_heap_watch(self, req):
        # Samples the heap in use, after a collection, every period_ms (for the
        # heap-budget scenario): a lower bound of the live peak, not counting
        # garbage that a collection would free.
        ms = req.get("period_ms", 100)
        if not isinstance(ms, int) or ms < 10:
            raise BenchError("period_ms must be an integer >= 10")
        self._period = ms
        self._peak = 0
        self._samples = 0
        if not self._watching:
            self._watching = True
            asyncio.create_task(self._watch())

    async def _watch(self):
        while True:
            gc.collect()
            a = gc.mem_alloc() - self.board.rom_bytes
            if a > self._peak:
                self._peak = a
            self._samples += 1
            await asyncio.sleep_ms(self._period)


async def _client(bench, reader, writer):
    while True:
        line = await reader.readline()
        if not line:
            break
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            res = bench.handle(req)
            if isinstance(res, _GEN):
                res = await res
            out = {"ok": True}
            if res:
                out.update(res)
        except BenchError as e:
            out = {"ok": False, "error": str(e)}
        except ValueError:
            out = {"ok": False, "error": "not JSON"}
        except Exception as e:
            log.exc(_TAG, "op failed", e)
            out = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
        writer.write(json.dumps(out).encode() + b"\n")
        await writer.drain()
    writer.close()


async def serve(ch, board, host, port):
    bench = Bench(ch, board)

    def cb(r, w):
        return _client(bench, r, w)

    await asyncio.start_server(cb, host, port)
    log.info(_TAG, "bench listening on %s:%d", host, port)
