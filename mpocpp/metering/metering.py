# Glue between the 1 Hz meter and the charge point: which MeterValues are
# due (Sample.Periodic, Sample.Clock), the transactionData of each running
# transaction, and Trigger values. Loaded only on boards with a meter.
from mpocpp.util import clock
from mpocpp.util import log
from mpocpp.metering import metervalues as mv

_TAG = "metering"


class _MaxValues:
    def __init__(self, cfg):
        self.cfg = cfg

    def __call__(self):
        return self.cfg.get("StopTransactionMaxMeterValues")


class Metering:
    def __init__(self, cp, meter):
        self.cp = cp
        self.meter = meter
        self.cfg = cp.cfg
        self.schedules = mv.Schedules(cp.cfg)
        self._max = _MaxValues(cp.cfg)
        self._txdata = {}
        self._interval_wh = {}  # (cid, context) -> register at the last value of that kind
        meter.on_tick = self.on_tick

    def _txdata_for(self, cid):
        t = self._txdata.get(cid)
        if t is None:
            t = mv.TxData("%s/txdata%d" % (self.cfg.dir, cid), self._max)
            self._txdata[cid] = t
        return t

    def _stop_csl(self):
        # transactionData measurands: StopTxnSampledData, else StopTxnAlignedData.
        return self.cfg.get("StopTxnSampledData") or self.cfg.get("StopTxnAlignedData")

    # --- the tick ---
    def on_tick(self, now_ms):
        cp = self.cp
        if not clock.valid():
            return
        now = clock.now()
        for cid, ctx in self.schedules.due(now):
            try:
                self._due(cid, ctx, now)
            except Exception as e:
                log.exc(_TAG, "meter values for %d" % cid, e)

    def _due(self, cid, ctx, now):
        cfg = self.cfg
        cp = self.cp
        periodic = ctx == mv.PERIODIC
        csl = cfg.get("MeterValuesSampledData" if periodic else "MeterValuesAlignedData")
        conn = cp.connectors[cid] if cid < len(cp.connectors) else None
        tx = conn.tx if conn is not None and cid else None
        key = (cid, ctx)
        start = self._interval_wh.get(key)
        value = mv.meter_value(self.meter, cid, csl, ctx, now, start)
        # the whole Wh the value carried: Interval = register - this, exactly
        self._interval_wh[key] = self.meter.whole_wh(cid)
        if value is not None:
            p = {"connectorId": cid, "meterValue": [value]}
            if tx is not None:
                p["transactionId"] = tx.id
            cp.push_txn("MeterValues", p, None, tx is not None)
        if tx is not None:
            extra = cfg.get("StopTxnSampledData" if periodic else "StopTxnAlignedData")
            if extra:
                v = mv.meter_value(self.meter, cid, extra, ctx, now)
                if v is not None:
                    self._txdata_for(cid).add(v)

    # --- transactions ---
    def tx_started(self, conn):
        now = clock.now()
        self.schedules.tx_started(conn.id, now)
        tx = conn.tx  # Interval of the first value: since meterStart
        self._interval_wh[(conn.id, mv.PERIODIC)] = \
            tx.meter_start if tx is not None else self.meter.whole_wh(conn.id)
        t = self._txdata_for(conn.id)
        t.discard()
        csl = self._stop_csl()
        if csl:
            v = mv.meter_value(self.meter, conn.id, csl, "Transaction.Begin", now)
            if v is not None:
                t.begin(v)

    def tx_stopped(self, conn):
        self.schedules.tx_stopped(conn.id)
        self.meter.save(conn.id)

    def tx_data(self, conn):
        # transactionData for StopTransaction: Begin ... End (never thinned away).
        csl = self._stop_csl()
        t = self._txdata_for(conn.id)
        if not csl:
            t.discard()
            return None
        v = mv.meter_value(self.meter, conn.id, csl, "Transaction.End", clock.now())
        if v is not None:
            t.end(v)
        values = t.values()
        t.discard()
        return values or None

    def trigger(self, cid):
        conn = self.cp.connectors[cid]
        v = mv.meter_value(self.meter, cid, self.cfg.get("MeterValuesSampledData"), "Trigger",
                           clock.now())
        if v is None:
            return None
        p = {"connectorId": cid, "meterValue": [v]}
        if conn.tx is not None:
            p["transactionId"] = conn.tx.id
        return p
