# MeterValues (OCPP 1.6 §4.7, checklist §3): which values are due
# (Sample.Periodic every MeterValueSampleInterval during a transaction,
# Sample.Clock every ClockAlignedDataInterval), the transactionData of each
# running transaction (txdata.py), and the values TriggerMessage asks for.
# Made when first needed; the 1 Hz meter (meter.py) calls tick(). txdata.py
# is loaded only while StopTxnSampledData or StopTxnAlignedData names a
# measurand (both empty by default) or a transaction's record is read.
from micropython import const
from mpocpp.util import clock
from mpocpp.util import fsutil
from mpocpp.util import log
from mpocpp.metering import sampledvalues as sv

_TAG = "metering"
_LATE_MAX = const(8)  # values kept for the next tick; beyond, one is lost (logged)


class _Late:
    # A value due when the heap had no room for it: built at the next tick,
    # with its own time and transaction. queued: its MeterValues is in the
    # queue, only its transactionData is left.
    def __init__(self, cid, ctx, t, tx, queued):
        self.cid = cid
        self.ctx = ctx
        self.t = t
        self.tx = tx
        self.queued = queued


class _MaxValues:
    def __init__(self, cfg):
        self.cfg = cfg

    def __call__(self):
        return self.cfg.get("StopTransactionMaxMeterValues")


class MeterValues:
    def __init__(self, cfg, meter, connectors, queue):
        self._cfg = cfg
        self._meter = meter
        self._cons = connectors  # index 0 = the charge point
        self._queue = queue
        self.schedules = sv.Schedules(cfg)
        self._max = _MaxValues(cfg)
        self._txdata = {}
        self._interval_wh = {}  # (cid, context) -> register at the last value of that kind
        self._late = []  # _Late values, tried again at the next tick

    def _path(self, cid):
        return "%s/txdata%d" % (self._cfg.dir, cid)

    def _txdata_for(self, cid):
        t = self._txdata.get(cid)
        if t is None:
            from mpocpp.metering.txdata import TxData
            t = TxData(self._path(cid), self._max)
            self._txdata[cid] = t
        return t

    def _forget(self, cid):
        # No transactionData wanted: a record left by an earlier transaction
        # (its files: txdata.py's TxData.discard) goes without loading it.
        t = self._txdata.pop(cid, None)
        if t is not None:
            t.discard()
            return
        p = self._path(cid)
        fsutil.remove(p)
        fsutil.remove(p + ".tmp")

    def _stop_csl(self):
        # transactionData measurands: StopTxnSampledData, else StopTxnAlignedData.
        return self._cfg.get("StopTxnSampledData") or self._cfg.get("StopTxnAlignedData")

    # --- the tick ---
    def tick(self, now_ms):
        if not clock.valid():
            return
        now = clock.now()
        late = self._late
        if late:
            self._late = []
            for v in late:
                self._try(v.cid, v.ctx, v.t, v.tx, v.queued)
        cons = self._cons
        for cid, ctx in self.schedules.due(now):
            conn = cons[cid] if cid < len(cons) else None
            self._try(cid, ctx, now, conn.tx if conn is not None and cid else None, False)

    def _try(self, cid, ctx, t, tx, queued):
        try:
            self._due(cid, ctx, t, tx, queued)
        except Exception as e:
            log.exc(_TAG, "meter values for %d", e, cid)

    def _due(self, cid, ctx, now, tx, queued):
        cfg = self._cfg
        periodic = ctx == sv.PERIODIC
        try:
            if not queued:
                csl = cfg.get("MeterValuesSampledData" if periodic else "MeterValuesAlignedData")
                key = (cid, ctx)
                # the whole Wh the value carries: Interval = register - this, exactly
                whole = self._meter.whole_wh(cid)
                value = sv.meter_value(self._meter, cid, csl, ctx, now,
                                       self._interval_wh.get(key))
                if value is not None:
                    p = {"connectorId": cid, "meterValue": [value]}
                    if tx is not None:
                        p["transactionId"] = tx.id
                    self._queue.push("MeterValues", p, tx is not None)
                self._interval_wh[key] = whole
                queued = True
            if tx is not None and self._cons[cid].tx is tx:  # (a late one: still running)
                extra = cfg.get("StopTxnSampledData" if periodic else "StopTxnAlignedData")
                if extra:
                    v = sv.meter_value(self._meter, cid, extra, ctx, now)
                    if v is not None:
                        self._txdata_for(cid).add(v)
        except MemoryError:
            # The heap's state, not the value's: built again a tick later
            # (repeated MemoryErrors restart the charger: charger.py).
            if len(self._late) < _LATE_MAX:
                self._late.append(_Late(cid, ctx, now, tx, queued))
            raise

    # --- transactions ---
    def tx_started(self, conn):
        # The periodic grid and Transaction.Begin start at the transaction's
        # own start (StartTransaction's timestamp), not at this call: the
        # flash writes in between can cross a second.
        tx = conn.tx  # Interval of the first value: since meterStart
        now = tx.start if tx is not None else clock.now()
        self.schedules.tx_started(conn.id, now)
        self._interval_wh[(conn.id, sv.PERIODIC)] = \
            tx.meter_start if tx is not None else self._meter.whole_wh(conn.id)
        csl = self._stop_csl()
        if not csl:
            self._forget(conn.id)
            return
        t = self._txdata_for(conn.id)
        t.discard()
        v = sv.meter_value(self._meter, conn.id, csl, sv.BEGIN, now)
        if v is not None:
            t.begin(v)

    def tx_stopped(self, conn):
        self.schedules.tx_stopped(conn.id)
        self._meter.save(conn.id)

    def tx_data(self, conn):
        # transactionData for StopTransaction: Begin ... End (never thinned away).
        csl = self._stop_csl()
        if not csl:
            self._forget(conn.id)
            return None
        t = self._txdata_for(conn.id)
        v = sv.meter_value(self._meter, conn.id, csl, sv.END, clock.now())
        if v is not None:
            t.end(v)
        values = t.values()
        t.discard()
        return values or None

    def trigger(self, cid):
        # TriggerMessage(MeterValues): the latest MeterValuesSampledData values.
        conn = self._cons[cid]
        v = sv.meter_value(self._meter, cid, self._cfg.get("MeterValuesSampledData"),
                           sv.TRIGGER, clock.now())
        if v is None:
            return None
        p = {"connectorId": cid, "meterValue": [v]}
        if conn.tx is not None:
            p["transactionId"] = conn.tx.id
        return p
