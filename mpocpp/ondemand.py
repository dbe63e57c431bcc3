# The features made on first need rather than at boot, so that an idle
# charger's heap holds none of their code: MeterValues (metering/
# metervalues.py: a transaction, a triggered MeterValues, or
# ClockAlignedDataInterval > 0) and the smart-charging state
# (model/smartcharging.py: a smart-charging message, a RemoteStart with a
# profile, or profiles stored in flash). Sessions tell it when a
# transaction starts and stops, and when every connector has been idle a
# while: MeterValues goes then unless Sample.Clock values are due, and the
# smart-charging state (its profiles are in flash; the next transaction
# reads them again). The meter ticks it.
from mpocpp.util import fsutil
from mpocpp.util import log
from mpocpp.util import modules

_TAG = "app"
_CHPROFILES = "/chprofiles"  # model/smartcharging.FILE: stored profiles
_METERVALUES = ("mpocpp.metering.metervalues", "mpocpp.metering.sampledvalues",
                "mpocpp.metering.txdata")
_SMART = ("mpocpp.model.smartcharging", "mpocpp.model.chargingprofiles")


class OnDemand:
    def __init__(self, cfg, meter, connectors, queue, limits):
        self._cfg = cfg
        self._meter = meter  # metering.meter.Meter, or None without metering
        self._cons = connectors
        self._queue = queue
        self._limits = limits  # board.limits
        self.metervalues = None  # metering.metervalues.MeterValues, once made
        self.smart = None  # model.smartcharging.SmartCharging, once made
        # Without SmartCharging in SupportedFeatureProfiles its state is never
        # made (its operations are NotSupported, a RemoteStart's profile ignored).
        self._smart_ok = cfg.supports("SmartCharging")

    def use_metervalues(self):
        m = self.metervalues
        if m is None and self._meter is not None:
            from mpocpp.metering.metervalues import MeterValues
            m = self.metervalues = MeterValues(self._cfg, self._meter, self._cons, self._queue)
        return m

    def use_smart(self):
        s = self.smart
        if s is None:
            from mpocpp.model.smartcharging import SmartCharging
            lim = self._limits
            s = self.smart = SmartCharging(self._cfg, self._cons, lim.get("nominalVolts", 230),
                                           lim.get("phases", 3), lim.get("maxCurrentA", 32))
            s.load()
        return s

    def _stored(self):
        # Charging profiles in flash (ChargePointMax, TxDefault: E3.37).
        return self._smart_ok and fsutil.exists(self._cfg.dir + _CHPROFILES)

    def boot(self):
        # Sample.Clock values are due without a transaction; stored charging
        # profiles apply before the first session (E3.37).
        self.configured("ClockAlignedDataInterval")
        if self._stored():
            self.use_smart().apply()

    def configured(self, name):
        if name == "ClockAlignedDataInterval" and self.metervalues is None \
                and self._cfg.get(name):
            self.use_metervalues()

    # --- the meter's tick, the supervisor's ---
    def tick(self, now_ms):
        m = self.metervalues
        if m is not None:
            m.tick(now_ms)

    def supervise(self, now_ms):
        if self.smart is not None:
            self.smart.tick(now_ms)  # schedule periods change with time

    def meter_values(self, cid):
        # TriggerMessage(MeterValues): the latest values, or None without a meter.
        m = self.use_metervalues()
        return m.trigger(cid) if m is not None else None

    # --- transactions (Sessions' hooks) ---
    def tx_started(self, conn):
        m = self.use_metervalues()
        if m is not None:
            m.tx_started(conn)
        if self.smart is not None or conn.remote_profile is not None or self._stored():
            self.use_smart().tx_started(conn)

    def tx_stopped(self, conn):
        if self.metervalues is not None:
            self.metervalues.tx_stopped(conn)
        s = self.smart
        if s is not None:
            if s.set.clear(None, conn.id, s.chp.TX, None):
                log.info(_TAG, "connector %d: TxProfile removed at transaction end", conn.id)
            s.apply()

    def tx_data(self, conn):
        m = self.use_metervalues()
        return m.tx_data(conn) if m is not None else None

    # --- every connector idle (Sessions' hooks) ---
    def _metervalues_held(self):
        # MeterValues made, and no Sample.Clock values due without a transaction.
        return self.metervalues is not None and not self._cfg.get("ClockAlignedDataInterval")

    def held(self):
        # Made for transactions (or a message) and kept only for them.
        return self.smart is not None or self._metervalues_held()

    def idle(self):
        # No transaction, none for a while: MeterValues' state is that of
        # the transactions (schedules, transactionData) and goes with them;
        # the smart-charging state is in flash but for TxProfiles, which end
        # with their transactions.
        if self._metervalues_held():
            self.metervalues = None
            for name in _METERVALUES:
                modules.release(name)
        if self.smart is not None:
            self.smart = None
            for name in _SMART:
                modules.release(name)
