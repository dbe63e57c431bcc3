# A connector as OCPP sees it: its status, error code and availability.
# Connector 0 stands for the charge point as a whole.
import clock

AVAILABLE = "Available"
PREPARING = "Preparing"
CHARGING = "Charging"
SUSPENDED_EV = "SuspendedEV"
SUSPENDED_EVSE = "SuspendedEVSE"
FINISHING = "Finishing"
RESERVED = "Reserved"
UNAVAILABLE = "Unavailable"
FAULTED = "Faulted"
NO_ERROR = "NoError"


class Connector:
    def __init__(self, cp, cid, hw=None):
        self.cp = cp
        self.id = cid
        self.hw = hw
        self.status = AVAILABLE
        self.error_code = NO_ERROR
        self.info = None
        self.vendor_error = None

    def status_payload(self):
        p = {"connectorId": self.id, "errorCode": self.error_code,
             "status": self.status, "timestamp": clock.iso()}
        if self.info:
            p["info"] = self.info
        if self.vendor_error:
            p["vendorErrorCode"] = self.vendor_error
        return p

    def set_status(self, status, error_code=NO_ERROR, info=None):
        if status == self.status and error_code == self.error_code and info == self.info:
            return
        self.status = status
        self.error_code = error_code
        self.info = info
        self.cp.status_changed(self)

    def bench_state(self):
        hw = self.hw
        snap = hw.sim.snapshot() if hw is not None and hasattr(hw, "sim") else {}
        return {"id": self.id, "status": self.status, "errorCode": self.error_code,
                "relay": snap.get("relay", False), "locked": snap.get("locked", False),
                "duty": snap.get("duty", 100.0), "offered_amps": snap.get("offered_amps", 0),
                "pilot": snap.get("pilot"), "energy_wh": 0}
