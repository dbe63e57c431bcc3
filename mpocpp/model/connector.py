# A connector: its OCPP status derived from the control pilot, the
# authorization, availability, faults and the transaction; and the safety
# rules for the relay. Connector 0 stands for the charge point as a whole.
import time
from micropython import const
from mpocpp.util import clock
from mpocpp.util import log


# Allowed transitions (OCPP 1.6 §4.9 with errata E3.20), by a letter code:
# A=Available B=Preparing C=Charging D=SuspendedEV E=SuspendedEVSE
# F=Finishing G=Reserved H=Unavailable I=Faulted. Bytes, not str: bytes
# constants are not interned (each qstr costs heap for good on a board).
_CODE = {"Available": 0, "Preparing": 1, "Charging": 2, "SuspendedEV": 3, "SuspendedEVSE": 4,
         "Finishing": 5, "Reserved": 6, "Unavailable": 7, "Faulted": 8}
_ALLOWED = (b"BCDEGHI", b"ACDEFI", b"ADEFHI", b"ACEFHI", b"ACDFHI", b"ABHI", b"ABHI",
            b"ABCDEI", b"ABCDEFGH")

LED = {"Available": "available", "Preparing": "preparing", "Charging": "charging",
        "SuspendedEV": "suspended", "SuspendedEVSE": "suspended", "Finishing": "preparing",
        "Reserved": "reserved", "Unavailable": "unavailable", "Faulted": "faulted"}

# EVCommunicationError is a warning, only with these statuses (OCPP §4.9).
_EV_COMM_OK = ("Preparing", "SuspendedEV", "SuspendedEVSE", "Finishing")

_TAG = "conn"
_EV_RESPONSE_MS = const(3000)  # an EV gets this long to answer the PWM before SuspendedEV


def allowed(old, new):
    return 65 + _CODE[new] in _ALLOWED[_CODE[old]]  # 65: b"A"


class Fault:
    # A fault raised by the hardware (relay feedback, lock) or the bench.
    def __init__(self, code, info=None):
        self.code = code  # ChargePointErrorCode
        self.info = info


class Pending:
    # An authorization waiting for the plug (a card, or RemoteStartTransaction).
    def __init__(self, id_tag, parent, deadline_ms, remote):
        self.id_tag = id_tag
        self.parent = parent
        self.deadline_ms = deadline_ms
        self.remote = remote


class RemoteProfile:
    # The TxProfile of a RemoteStartTransaction, for the transaction of its idTag.
    def __init__(self, id_tag, profile):
        self.id_tag = id_tag
        self.profile = profile


class Holder:
    # Who may take a cable left locked (DeAuthorized, EV side disconnected).
    def __init__(self, id_tag, parent):
        self.id_tag = id_tag
        self.parent = parent


class Connector:
    # cid 0 is the charge point; hw: the board's driver bundle (.pilot .relay
    # .lock .meter) or None; report(payload): a status to notify (outbox).
    def __init__(self, cid, hw, cfg, meter, max_amps, report):
        self.id = cid
        self.hw = hw
        self._cfg = cfg
        self._meter = meter  # metering.meter.Meter or None
        self._max_amps = max_amps
        self._report_to = report
        self.status = "Available"
        self.error_code = "NoError"
        self.info = None
        self.vendor_error = None
        self._reported = None  # (status, errorCode, info) last handed to report()
        self.since = time.ticks_ms()
        self.operative = True
        self.scheduled = None  # True/False: availability change waiting for the Tx end
        self.fault = None  # Fault
        self.pilot = "A"
        self.tx = None  # transaction.Transaction
        self.pending = None  # Pending: authorized, waiting for the plug
        self.finishing = False  # transaction over, cable still in
        self.ev_disconnected = False
        self.reservation = None  # reservations.Reservation
        self.limit_a = None  # smart-charging limit in A, None = none
        self.remote_profile = None  # RemoteProfile, until its transaction starts
        self.locked_for = None  # Holder that may take the locked cable
        self.ev_error = False  # pilot E/F seen while plugged: no energy until unplugged
        self.plug_since = None
        self.tx_since = 0  # ticks_ms when the transaction started

    @property
    def has_lock(self):
        return self.hw is not None and self.hw.lock is not None

    # --- status ---
    def status_payload(self):
        p = {"connectorId": self.id, "errorCode": self.error_code,
             "status": self.status, "timestamp": clock.iso()}
        if self.info:
            p["info"] = self.info
        if self.vendor_error:
            p["vendorErrorCode"] = self.vendor_error
        return p

    def set_status(self, status, error_code="NoError", info=None):
        if status == self.status and error_code == self.error_code and info == self.info:
            return
        if status != self.status and self.id and not allowed(self.status, status):
            # Route through Preparing where the table demands it (F/G -> C).
            if allowed(self.status, "Preparing") and allowed("Preparing", status):
                self.set_status("Preparing")
            else:
                log.warn(_TAG, "connector %d: %s -> %s not in the transition table",
                         self.id, self.status, status)
        log.info(_TAG, "connector %d: %s -> %s%s", self.id, self.status, status,
                 "" if error_code == "NoError" else " (" + error_code + ")")
        self.status = status
        self.error_code = error_code
        self.info = info
        self.since = time.ticks_ms()
        if self._cfg.get("MinimumStatusDuration") <= 0:
            self._report()
        # else: report_due() sends it once it has held long enough

    def _report(self):
        self._reported = (self.status, self.error_code, self.info)
        self._report_to(self.status_payload())

    def report_due(self, now_ms):
        # MinimumStatusDuration: a status is reported only once it has been
        # stable that long; a status that came and went is never reported.
        r = self._reported
        if r is None:  # boot: the Accepted BootNotification reports all
            self._reported = (self.status, self.error_code, self.info)
        elif (r[0] != self.status or r[1] != self.error_code or r[2] != self.info) and \
                time.ticks_diff(now_ms, self.since) >= \
                self._cfg.get("MinimumStatusDuration") * 1000:
            self._report()

    @property
    def plugged(self):
        return self.pilot in "BCD" or self.ev_error

    def derive(self):
        # The OCPP status from everything we know (SuspendedEVSE beats SuspendedEV).
        if self.fault is not None:
            return "Faulted"
        if self.id == 0:
            return "Available" if self.operative else "Unavailable"
        tx = self.tx
        if tx is not None:
            if self._evse_suspended():
                return "SuspendedEVSE"
            if self.pilot in "CD" and not self.ev_error:
                return "Charging"  # (after a pilot error no energy flows until unplugged)
            if (self.status == "Preparing" or self.status == "Reserved") and \
                    time.ticks_diff(time.ticks_ms(), self.tx_since) < _EV_RESPONSE_MS:
                return "Preparing"  # the EV has not answered the offer yet
            return "SuspendedEV"
        if not self.operative:
            return "Unavailable"
        if self.pending is not None:
            return "Preparing"
        if self.reservation is not None:
            # Reserved -> Preparing only for the reservation's identity (a
            # Pending); a cable plugged in does not end it.
            return "Reserved"
        if self.finishing and self.plugged:
            return "Finishing"
        if self.plugged:
            return "Preparing"
        return "Available"

    def _evse_suspended(self):
        tx = self.tx
        return tx is not None and (tx.invalid or (self.limit_a is not None and self.limit_a < 6))

    def update(self):
        # Re-derive the status and drive the outputs; called on every event.
        st = self.derive()
        if st == "Faulted":
            self.set_status("Faulted", self.fault.code, self.fault.info)
        elif st == "Finishing" and self.ev_disconnected:
            self.set_status(st, "NoError", "EV side disconnected")
        elif self.ev_error and st in _EV_COMM_OK:
            self.set_status(st, "EVCommunicationError", "EV pilot fault")
        else:
            self.set_status(st)
        self.drive()

    # --- outputs (safety rules) ---
    def offered_amps(self):
        if self.tx is None or self.fault is not None or self.ev_error or self._evse_suspended():
            return 0
        a = self._max_amps
        if self.limit_a is not None and self.limit_a < a:
            a = self.limit_a
        return a

    def drive(self):
        hw = self.hw
        if hw is None:
            return
        amps = self.offered_amps()
        pilot = hw.pilot
        if amps >= 6:
            amps = pilot.offer(amps)
        else:
            pilot.stop()
            amps = 0
        meter = self._meter
        if meter is not None:
            meter.set_offered(self.id, amps)
        # The relay closes only with an authorized transaction, the EV in
        # state C or D, current offered and no fault.
        if amps and self.pilot in "CD":
            if not hw.relay.closed:
                hw.relay.close()
        elif hw.relay.closed:
            hw.relay.open()

    def poll(self):
        # Read the pilot and the relay feedback; True when something changed.
        hw = self.hw
        if hw is None:
            return False
        changed = False
        p = hw.pilot.read_state()
        if p != self.pilot:
            self.on_pilot(p)
            changed = True
        err = hw.relay.check()
        if err and (self.fault is None or self.fault.code != err):
            log.error(_TAG, "connector %d: relay feedback fault %s", self.id, err)
            self.fault = Fault(err, "contactor feedback")
            changed = True
        return changed

    def on_pilot(self, p):
        old = self.pilot
        self.pilot = p
        if p in "BCD" and old not in "BCD":
            self.plug_since = time.ticks_ms()
        if p == "A" and old != "A":
            self.plug_since = None
            self.finishing = False
            self.ev_error = False
        if p in "EF" and old not in "EF":
            # A shorted pilot or a missing diode: no energy until the EV is unplugged.
            log.warn(_TAG, "connector %d: pilot state %s", self.id, p)
            self.ev_error = True

    def notify_error(self, code):
        # A StatusNotification with this errorCode and the current status
        # (connector 0's LocalListConflict), whatever MinimumStatusDuration.
        p = self.status_payload()
        p["errorCode"] = code
        self._report_to(p)

    def raise_fault(self, code, info=None):
        log.warn(_TAG, "connector %d: fault %s", self.id, code)
        self.fault = Fault(code, info)
        self.update()

    def clear_fault(self):
        self.fault = None
        self.update()
