# The 1 Hz sampling task and the energy register (Energy.Active.Import.Register).
#
#   m = Meter(drivers, flash_dir, phases=3, nominal_volts=230, save_step_wh=100)
#   m.load(); asyncio.create_task(m.run(on_tick))
#
# drivers: {connector_id: driver}; driver.read() -> ((I1, I2, I3) A,
# (U1, U2, U3) V or None, degC or None), blocking about one mains cycle;
# driver.power_w: the active power (W) measured by the last read(), or None
# when the driver does not measure it: Power.Active.Import is then the sum
# of U x I (right at power factor 1).
# Connector 0 is the whole charge point: the sum of the connectors.
# Design, persistence policy and flash wear: docs/metering.md.
import time
import json
import binascii
import asyncio
from micropython import const

from mpocpp.util import log
from mpocpp.util import fsutil
from mpocpp.util import modules

_TAG = "meter"
_RESTORE = "mpocpp.metering.restore"
_TICK_MS = const(1000)
_MAX_GAP_MS = const(60000)  # longer gaps are not integrated: nothing known
_MAX_AMPS = 1000.0  # readings above these are sensor faults, never energy
_MAX_VOLTS = 1000.0
_MAX_WATTS = 3000000.0  # 3 x _MAX_AMPS x _MAX_VOLTS
_MWH = 7200000.0  # (W + W) * ms -> Wh for the trapezoid: 2 * 3600 * 1000
_VERSION = const(1)


class _Chan:
    # One connector's readings and register. The register is an integer Wh
    # plus a float fraction: single-precision floats (ESP32, RP2040) would
    # lose 1 Wh steps above 16.7 MWh and small increments much earlier.
    def __init__(self):
        self.amps = (0.0, 0.0, 0.0)
        self.volts = (0.0, 0.0, 0.0)
        self.temp = None
        self.power = 0.0
        self.offered = 0.0
        self.wh = 0  # whole Wh
        self.frac = 0.0  # 0 <= frac < 1 Wh
        self.saved = 0  # whole Wh at the last save
        self.last_ms = None  # ticks of the previous good sample
        self.failing = False


class Meter:
    def __init__(self, drivers, flash_dir, phases=3, nominal_volts=230,
                 save_step_wh=100, tick_ms=_TICK_MS, stats=None):
        if phases not in (1, 2, 3):
            raise ValueError("phases must be 1..3")
        self._drv = drivers
        self.ids = sorted(drivers)
        self.phases = phases
        self.nominal_volts = float(nominal_volts)
        self.save_step_wh = save_step_wh
        self.tick_ms = tick_ms
        self._dir = flash_dir
        self._ch = {}
        for cid in self.ids:
            self._ch[cid] = _Chan()
        nv = self.nominal_volts
        self._nominal = (nv, nv, nv)
        self._seq = 0  # save sequence: the two slots alternate
        self.saves = 0  # how many times the register was written to flash
        self.stats = stats  # tickstats.TickStats (benchmarks), or None

    # --- registers ---
    def register_wh(self, cid):
        # Energy.Active.Import.Register in Wh (float, monotonic).
        if cid == 0:
            s = 0.0
            for c in self._ch.values():
                s += c.wh + c.frac
            return s
        c = self._ch[cid]
        return c.wh + c.frac

    def whole_wh(self, cid):
        # The register as the whole Wh a message would carry (no save).
        if cid == 0:
            n = 0
            for c in self._ch.values():
                n += c.wh
            return n
        return self._ch[cid].wh

    def reported_wh(self, cid):
        # The register as whole Wh for a message (meterStart, meterStop,
        # MeterValues), persisted first if it moved since the last save: a
        # value the central system has seen is never lost to a power cut.
        n = self.whole_wh(cid)
        ch = self._ch.values() if cid == 0 else (self._ch[cid],)
        for c in ch:
            if c.wh != c.saved:
                self.save()
                break
        return n

    def set_offered(self, cid, amps):
        # What the pilot offers now (A); 0 when nothing is offered.
        c = self._ch.get(cid)
        if c is None:
            log.warn(_TAG, "set_offered: no connector %r", cid)
            return
        try:
            a = float(amps)
        except (TypeError, ValueError):
            log.warn(_TAG, "set_offered: bad amps %r", amps)
            return
        c.offered = a if a > 0 else 0.0

    def offered_w(self, cid):
        # Power.Offered: offered amps on every measured phase at its voltage.
        if cid == 0:
            s = 0.0
            for k in self.ids:
                s += self.offered_w(k)
            return s
        c = self._ch[cid]
        v = c.volts
        s = 0.0
        for i in range(self.phases):
            s += v[i]
        return c.offered * s

    def latest(self, cid):
        # The last readings of a connector, or of the whole charge point (0).
        if cid != 0:
            c = self._ch[cid]
            return {"amps": c.amps, "volts": c.volts, "power_w": c.power,
                    "temp": c.temp, "offered_a": c.offered,
                    "offered_w": self.offered_w(cid),
                    "energy_wh": c.wh + c.frac}
        a = [0.0, 0.0, 0.0]
        p = off = 0.0
        t = None
        volts = self._nominal
        for k in self.ids:
            c = self._ch[k]
            ca = c.amps
            for i in range(len(ca) if len(ca) < 3 else 3):
                a[i] += ca[i]
            p += c.power
            off += c.offered
            if c.temp is not None and (t is None or c.temp > t):
                t = c.temp
            if k == self.ids[0]:
                volts = c.volts  # one grid: the first connector sees it
        return {"amps": (a[0], a[1], a[2]), "volts": volts, "power_w": p,
                "temp": t, "offered_a": off, "offered_w": self.offered_w(0),
                "energy_wh": self.register_wh(0)}

    # --- sampling ---
    def sample(self, cid, now_ms=None):
        # Read one connector's driver and integrate its energy since the
        # previous good sample (trapezoid over the real elapsed ms).
        c = self._ch[cid]
        drv = self._drv[cid]
        try:
            amps, volts, temp = drv.read()
            if now_ms is None:
                now_ms = time.ticks_ms()
            if volts is None or len(volts) < self.phases:
                volts = self._nominal
            p = 0.0
            for i in range(self.phases):
                a = amps[i]
                v = volts[i]
                # NaN fails both comparisons and lands here too
                if not (0.0 <= a <= _MAX_AMPS and 0.0 <= v <= _MAX_VOLTS):
                    raise ValueError("implausible %r A %r V" % (a, v))
                p += a * v
            pw = drv.power_w
            if pw is not None:  # measured active power: right at any PF
                if not 0.0 <= pw <= _MAX_WATTS:
                    raise ValueError("implausible %r W" % (pw,))
                p = pw
            if temp is not None and not (isinstance(temp, (int, float))
                                         and -100.0 < temp < 300.0):
                temp = None  # a broken sensor: no Temperature, still energy
        except Exception as e:  # a bad driver or reading never stops metering
            if not c.failing:
                c.failing = True
                log.exc(_TAG, "connector %d read", e, cid)
            return False
        if c.failing:
            c.failing = False
            log.info(_TAG, "connector %d read ok again", cid)
        last = c.last_ms
        if last is not None:
            dt = time.ticks_diff(now_ms, last)
            if 0 < dt <= _MAX_GAP_MS:
                f = c.frac + (c.power + p) * dt / _MWH
                if f >= 1.0:
                    n = int(f)
                    c.wh += n
                    f -= n
                c.frac = f
            elif dt > _MAX_GAP_MS:
                log.warn(_TAG, "connector %d: %d ms without samples not counted", cid, dt)
        c.last_ms = now_ms
        c.amps = amps
        c.volts = volts
        c.temp = temp
        c.power = p
        return True

    def step(self, now_ms=None, on_tick=None):
        # One tick without the scheduler: sample every connector, persist
        # per policy, call on_tick(now_ms). Tests drive time through now_ms.
        for cid in self.ids:
            self.sample(cid, now_ms)
        self._after(time.ticks_ms() if now_ms is None else now_ms, on_tick)

    def _after(self, now_ms, cb):
        self._maybe_save()
        if cb is not None:
            try:
                cb(now_ms)
            except Exception as e:  # the charge point's bug must not stop metering
                log.exc(_TAG, "on_tick", e)

    async def run(self, on_tick=None):
        # Forever: tick at start + k * tick_ms (the ideal time, so no drift);
        # ticks missed while the loop was blocked are skipped, not bunched.
        # on_tick(now_ms) after every tick (the MeterValues schedules).
        tick = self.tick_ms
        st = self.stats
        due = time.ticks_ms()
        if st is not None:
            st.reset(due)
        multi = len(self.ids) > 1
        while True:
            due = time.ticks_add(due, tick)
            while True:
                d = time.ticks_diff(due, time.ticks_ms())
                if d <= 0:
                    break
                await asyncio.sleep_ms(d)
            now = time.ticks_ms()
            late = time.ticks_diff(now, due)
            if late >= tick:
                n = late // tick
                if st is not None:
                    st.skipped += n
                due = time.ticks_add(due, n * tick)
                late -= n * tick
            t0 = time.ticks_us()
            busy = 0
            try:
                for cid in self.ids:
                    self.sample(cid)
                    if multi:  # let the link breathe between ~20 ms reads
                        busy += time.ticks_diff(time.ticks_us(), t0)
                        await asyncio.sleep_ms(0)
                        t0 = time.ticks_us()
                self._after(now, on_tick)
            except Exception as e:
                log.exc(_TAG, "tick", e)
            if st is not None:
                st.record(late, busy + time.ticks_diff(time.ticks_us(), t0))

    # --- persistence ---
    # Two slots, meter.0 and meter.1, written alternately with write_atomic;
    # each holds a sequence number and a CRC, so a corrupt or missing file
    # falls back to the other one: the last good value (read by restore.py).
    def _path(self, slot):
        return "%s/meter.%d" % (self._dir, slot)

    def _maybe_save(self):
        step = self.save_step_wh
        for c in self._ch.values():
            if c.wh - c.saved >= step:
                self.save()
                return

    def save(self, cid=None):
        # Persist every register now (one small file holds them all); skipped
        # when no whole Wh was added since the last save. cid is accepted
        # for the caller's clarity: the file is shared.
        changed = False
        for c in self._ch.values():
            if c.wh != c.saved:
                changed = True
        if not changed:
            return False
        regs = {}
        for k in self.ids:
            c = self._ch[k]
            regs[str(k)] = c.wh
        seq = self._seq + 1
        body = json.dumps({"v": _VERSION, "seq": seq, "wh": regs})
        data = "%s\n%08x\n" % (body, binascii.crc32(body.encode()) & 0xFFFFFFFF)
        try:
            fsutil.write_atomic(self._path(seq & 1), data)
        except OSError as e:
            log.exc(_TAG, "save", e)
            return False
        self._seq = seq
        self.saves += 1
        for k in self.ids:
            c = self._ch[k]
            c.saved = int(regs[str(k)])
        return True

    def load(self):
        # Restore the registers: the valid slot with the highest sequence
        # number (restore.py, imported for the boot); none -> 0 (logged).
        # Never lowers a register already counted.
        try:
            best = modules.load(_RESTORE).newest(self._dir)
        finally:
            modules.release(_RESTORE)
        if best is None:
            log.warn(_TAG, "no saved registers: starting at 0 Wh")
            return False
        self._seq = best.seq
        regs = best.wh
        for cid in self.ids:
            c = self._ch[cid]
            wh = regs.get(cid, 0)
            if wh > c.wh:
                c.wh = wh
                c.frac = 0.0
            c.saved = c.wh
        for cid in regs:
            if cid not in self._ch:
                log.warn(_TAG, "saved register of unknown connector %d ignored", cid)
        log.info(
            _TAG,
            "registers restored: %s Wh",
            ", ".join("%d:%d" % (k, self._ch[k].wh) for k in self.ids),
        )
        return True
