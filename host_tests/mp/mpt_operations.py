# The central system's CALLs (operations/): the dispatcher imports a
# profile's module per CALL and releases it; the handlers of Core,
# RemoteTrigger and LocalAuthListManagement over the real model objects.
import sys

from fakes import Recorder, Registration, Rig, settle

from mpocpp.operations import Dispatcher
from mpocpp.protocol.rpc import Reply


class Link:
    def __init__(self):
        self.reconnects = 0
        self.trials = 0

    def reconnect(self):
        self.reconnects += 1

    def try_security_profile(self):
        self.trials += 1


class Smart:
    def __init__(self, ok=True):
        self.ok = ok

    def remote_profile_ok(self, profile, cid):
        return self.ok


class Ops:
    # What Charger.make builds, over a Rig.
    def __init__(self, n=2, keys=None, accepted=True):
        self.r = Rig(n=n, keys=keys)
        self.reg = Registration(status="Accepted" if accepted else "Pending")
        self.link = Link()
        self.smart = Smart()
        self.configured = Recorder()
        self.resets = Recorder()
        self.outbox = _Outbox()
        self.sender = _Sender()
        self.made = []
        self.jobs = _Jobs()
        self.jobs_used = 0  # RemoteTrigger's jobs() calls
        self.auth = _Authorization()
        self.firmware = True  # FirmwareManagement supported
        self.signs = []
        self.d = Dispatcher(self.make, self.r.cfg.supports)

    def make(self, name, mod):
        r = self.r
        self.made.append(name)
        if name == "core":
            return mod.Core(r.cfg, r.cons, r.sessions, self.auth,
                            self.reg, self.link, self._smart, self.configured, self.resets)
        if name == "remotetrigger":
            return mod.RemoteTrigger(r.cfg, r.cons, self.reg, self.sender, self.outbox, _mv,
                                     self._jobs, self.firmware, self._sign)
        return None

    def _smart(self):
        return self.smart

    def _jobs(self):
        self.jobs_used += 1
        return self.jobs

    def _sign(self):
        self.signs.append(1)

    def call(self, action, payload):
        res = self.d(action, payload)
        after = None
        if isinstance(res, tuple):
            res, after = res
        return res, after


class _Outbox:
    def __init__(self):
        self.sent = []

    def trigger(self, action, payload):
        self.sent.append((action, payload))


class _Sender:
    def __init__(self):
        self.boots = 0

    def boot_now(self):
        self.boots += 1


class _Jobs:
    firmware = "Downloading"
    diagnostics = "Idle"
    log_status = "Idle"
    log_request = None
    signed = None


def _mv(cid):
    return {"connectorId": cid, "meterValue": [{"timestamp": "2026-01-01T00:00:00Z",
                                                "sampledValue": [{"value": "1"}]}]}


class _Authorization:
    # The handle's store (model/authorization.py): used, then let go.
    def __init__(self):
        self.cleared = 0
        self.held = False

    def store(self):
        self.held = True
        return self

    def done(self):
        self.held = False

    def cache_clear(self):
        self.cleared += 1


def test_dispatcher_imports_and_releases():
    o = Ops()
    assert "mpocpp.operations.core" not in sys.modules
    res, _ = o.call("GetConfiguration", {"key": ["HeartbeatInterval"]})
    assert res["configurationKey"][0]["key"] == "HeartbeatInterval"
    assert "mpocpp.operations.core" not in sys.modules  # released after the CALL
    assert o.made == ["core"]
    try:
        o.d("Authorize", {"idTag": "x"})  # a charger-initiated action sent to us
    except Reply as e:
        assert e.code == "NotSupported"
    else:
        raise AssertionError("no NotSupported")
    try:
        o.d("GetDiagnostics", {"location": "http://x/"})  # make() returns None here
    except Reply as e:
        assert e.code == "NotSupported"
    # The table of actions is loaded for a CALL only.
    table = "mpocpp.operations.table"
    assert table not in sys.modules
    assert o.d.serves("Reset") and table in sys.modules  # dispatch follows
    o.call("GetConfiguration", {"key": []})
    assert table not in sys.modules
    assert not o.d.serves("Heartbeat") and table not in sys.modules  # none follows


def _callerror(o, action, payload):
    try:
        o.d(action, payload)
    except Reply as e:
        return e.code
    raise AssertionError("no CALLERROR for " + action)


def test_profiles_left_out_are_never_imported():
    # SupportedFeatureProfiles without a profile: its module is not imported,
    # no handler made; the spec's answers where it gives one, else NotSupported.
    o = Ops(keys={"SupportedFeatureProfiles": "Core"})
    assert o.r.cfg.profiles == ("Core",)
    assert o.call("GetLocalListVersion", {})[0] == {"listVersion": -1}
    assert o.call("SendLocalList", {"listVersion": 1, "updateType": "Full"})[0] == \
        {"status": "NotSupported"}
    assert o.call("ReserveNow", {"connectorId": 1, "expiryDate": "2030-01-01T00:00:00Z",
                                 "idTag": "A", "reservationId": 1})[0] == {"status": "Rejected"}
    assert _callerror(o, "CancelReservation", {"reservationId": 1}) == "NotSupported"
    assert _callerror(o, "SetChargingProfile", {"connectorId": 1}) == "NotSupported"
    assert _callerror(o, "GetCompositeSchedule", {"connectorId": 1, "duration": 60}) == \
        "NotSupported"
    assert _callerror(o, "ClearChargingProfile", {}) == "NotSupported"
    assert _callerror(o, "UpdateFirmware", {"location": "http://x/",
                                            "retrieveDate": "2030-01-01T00:00:00Z"}) == \
        "NotSupported"
    assert _callerror(o, "SignedUpdateFirmware", {"requestId": 1, "firmware": {
        "location": "http://x/", "retrieveDateTime": "2030-01-01T00:00:00Z",
        "signingCertificate": "x", "signature": "AA=="}}) == "NotSupported"
    assert _callerror(o, "GetDiagnostics", {"location": "http://x/"}) == "NotSupported"
    assert _callerror(o, "TriggerMessage", {"requestedMessage": "Heartbeat"}) == "NotSupported"
    assert o.made == []
    for m in ("localauth", "reservation", "smartcharging", "firmware", "signedfirmware",
              "diagnostics", "remotetrigger"):
        assert "mpocpp.operations." + m not in sys.modules, m
    # Core stays.
    assert o.call("ChangeAvailability", {"connectorId": 0, "type": "Operative"})[0] == \
        {"status": "Accepted"}
    assert o.made == ["core"]


def test_remote_trigger_without_firmware_management():
    o = Ops(keys={"SupportedFeatureProfiles": "Core,RemoteTrigger"})
    o.firmware = False
    for what in ("FirmwareStatusNotification", "DiagnosticsStatusNotification"):
        assert o.call("TriggerMessage", {"requestedMessage": what})[0] == \
            {"status": "NotImplemented"}
    assert o.call("TriggerMessage", {"requestedMessage": "Heartbeat"})[0]["status"] == \
        "Accepted"


def test_get_and_change_configuration():
    o = Ops()
    res, _ = o.call("GetConfiguration", {"key": ["heartbeatinterval", "Nope"]})
    assert res["configurationKey"][0]["key"] == "HeartbeatInterval"
    assert res["unknownKey"] == ["Nope"]
    try:
        o.d("GetConfiguration", {"key": ["HeartbeatInterval"] * 1000})
    except Reply as e:
        assert e.code == "OccurenceConstraintViolation"
    res, after = o.call("ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "60"})
    assert res == {"status": "Accepted"} and after is None
    assert o.configured.calls == ["MeterValueSampleInterval"]
    res, _ = o.call("ChangeConfiguration", {"key": "NumberOfConnectors", "value": "3"})
    assert res == {"status": "Rejected"}  # read-only
    res, _ = o.call("ChangeConfiguration", {"key": "NoSuchKey", "value": "3"})
    assert res == {"status": "NotSupported"}
    res, after = o.call("ChangeConfiguration", {"key": "AuthorizationKey",
                                                "value": "00112233445566778899aabbccddeeff"})
    assert res == {"status": "Accepted"}
    after()
    assert o.link.reconnects == 1
    res, after = o.call("ChangeConfiguration", {"key": "SecurityProfile", "value": "1"})
    assert res == {"status": "Accepted"}
    after()
    assert o.link.trials == 1


async def test_remote_start_stop_and_their_checks():
    o = Ops()
    r = o.r
    r.auth.answers["REM"] = {"status": "Accepted"}
    res, _ = o.call("RemoteStartTransaction", {"idTag": "REM", "connectorId": 3})
    assert res == {"status": "Rejected"}  # no such connector
    o.smart.ok = False
    prof = {"chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": {"chargingRateUnit": "A",
                                 "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10}]}}
    res, _ = o.call("RemoteStartTransaction", {"idTag": "REM", "connectorId": 1,
                                               "chargingProfile": prof})
    assert res == {"status": "Rejected"}  # the profile would not be accepted
    prof["chargingProfilePurpose"] = "TxDefaultProfile"
    o.smart.ok = True
    res, _ = o.call("RemoteStartTransaction", {"idTag": "REM", "connectorId": 1,
                                               "chargingProfile": prof})
    assert res == {"status": "Rejected"}  # only a TxProfile
    res, _ = o.call("RemoteStartTransaction", {"idTag": "REM", "connectorId": 1})
    assert res == {"status": "Accepted"}
    await settle()
    r.ev("B", 1)
    c = r.con(1)
    assert c.tx is not None and c.tx.id_tag == "REM"
    res, after = o.call("RemoteStopTransaction", {"transactionId": 12345})
    assert res == {"status": "Rejected"}
    res, after = o.call("RemoteStopTransaction", {"transactionId": c.tx.id})
    assert res == {"status": "Accepted"} and c.tx is not None  # stopped after the answer
    after()
    assert c.tx is None and r.queue.last("StopTransaction")["reason"] == "Remote"


def test_remote_control_refused_while_pending():
    o = Ops(accepted=False)
    assert o.call("RemoteStartTransaction", {"idTag": "X"})[0] == {"status": "Rejected"}
    assert o.call("RemoteStopTransaction", {"transactionId": 1})[0] == {"status": "Rejected"}


async def test_availability_reset_unlock_cache_datatransfer():
    o = Ops()
    r = o.r
    assert o.call("ChangeAvailability", {"connectorId": 2, "type": "Inoperative"})[0] == \
        {"status": "Accepted"}
    assert r.con(2).status == "Unavailable"
    res, after = o.call("Reset", {"type": "Hard"})
    assert res == {"status": "Accepted"} and o.resets.calls == []
    after()
    assert o.resets.calls == [True]
    assert o.call("ClearCache", {})[0] == {"status": "Accepted"}
    assert o.auth.cleared == 1 and not o.auth.held  # the store let go after it
    assert o.call("DataTransfer", {"vendorId": "x"})[0] == {"status": "UnknownVendorId"}
    res = o.d("UnlockConnector", {"connectorId": 0})
    assert (await res)["status"] == "NotSupported"
    c = await r.start("T1", cid=1)
    res = await o.d("UnlockConnector", {"connectorId": 1})
    assert res == {"status": "Unlocked"}
    assert c.tx is None and r.queue.last("StopTransaction")["reason"] == "UnlockCommand"


def test_clear_cache_rejected_without_a_cache():
    o = Ops(keys={"AuthorizationCacheEnabled": False})
    assert o.call("ClearCache", {})[0] == {"status": "Rejected"}


def test_trigger_message():
    o = Ops()
    res, after = o.call("TriggerMessage", {"requestedMessage": "StatusNotification"})
    assert res == {"status": "Accepted"}
    after()
    assert [p["connectorId"] for a, p in o.outbox.sent] == [0, 1, 2]
    o.outbox.sent[:] = []
    res, after = o.call("TriggerMessage", {"requestedMessage": "MeterValues", "connectorId": 2})
    after()
    assert o.outbox.sent == [("MeterValues", _mv(2))]
    # The transfers' state is made on first use (Charger.use_jobs): only a
    # transfer's status asks for it.
    assert o.jobs_used == 0
    o.outbox.sent[:] = []
    for what, payload in (("Heartbeat", {}),
                          ("FirmwareStatusNotification", {"status": "Downloading"}),
                          ("DiagnosticsStatusNotification", {"status": "Idle"})):
        res, after = o.call("TriggerMessage", {"requestedMessage": what})
        after()
        assert o.outbox.sent[-1] == (what, payload)
    assert o.jobs_used == 2
    assert o.call("TriggerMessage", {"requestedMessage": "StatusNotification",
                                     "connectorId": 3})[0] == {"status": "Rejected"}
    # E3.35: BootNotification only while not Accepted
    assert o.call("TriggerMessage", {"requestedMessage": "BootNotification"})[0] == \
        {"status": "Rejected"}
    o.reg.status = "Pending"
    res, after = o.call("TriggerMessage", {"requestedMessage": "BootNotification"})
    assert res == {"status": "Accepted"}
    after()
    assert o.sender.boots == 1


def test_extended_trigger_message():
    # The whitepaper's ExtendedTriggerMessage: its own list of messages,
    # FirmwareStatusNotification as the signed firmware's status, the log
    # upload's status with its requestId only while one runs (N01.FR.12),
    # SignChargePointCertificate only with a CpoName; served whatever
    # SupportedFeatureProfiles says (no profile of its own).
    o = Ops(keys={"SupportedFeatureProfiles": "Core,FirmwareManagement"})
    sent = o.outbox.sent
    res, after = o.call("ExtendedTriggerMessage", {"requestedMessage": "LogStatusNotification"})
    assert res == {"status": "Accepted"}
    after()
    assert sent[-1] == ("LogStatusNotification", {"status": "Idle"})
    o.jobs.log_status, o.jobs.log_request = "Uploading", 7
    o.call("ExtendedTriggerMessage", {"requestedMessage": "LogStatusNotification"})[1]()
    assert sent[-1] == ("LogStatusNotification", {"status": "Uploading", "requestId": 7})
    o.jobs.signed = {"status": "Downloading", "requestId": 3}
    o.call("ExtendedTriggerMessage", {"requestedMessage": "FirmwareStatusNotification"})[1]()
    assert sent[-1] == ("SignedFirmwareStatusNotification",
                        {"status": "Downloading", "requestId": 3})
    assert "mpocpp.operations.signedfirmware" not in sys.modules  # released
    o.call("ExtendedTriggerMessage", {"requestedMessage": "MeterValues", "connectorId": 1})[1]()
    assert sent[-1] == ("MeterValues", _mv(1))
    for what in ("DiagnosticsStatusNotification", "Foo"):
        assert o.call("ExtendedTriggerMessage", {"requestedMessage": what})[0] == \
            {"status": "NotImplemented"}
    assert o.call("ExtendedTriggerMessage", {"requestedMessage": "Heartbeat",
                                             "connectorId": 9})[0] == {"status": "Rejected"}
    # TriggerMessage keeps OCPP 1.6's list (RemoteTrigger profile left out here)
    assert _callerror(o, "TriggerMessage", {"requestedMessage": "Heartbeat"}) == "NotSupported"
    # no CpoName: no CSR can be made
    assert o.call("ExtendedTriggerMessage",
                  {"requestedMessage": "SignChargePointCertificate"})[0] == {"status": "Rejected"}
    o.r.cfg.change("CpoName", "Example CPO")
    res, after = o.call("ExtendedTriggerMessage",
                        {"requestedMessage": "SignChargePointCertificate"})
    assert res == {"status": "Accepted"} and o.signs == []
    after()
    assert o.signs == [1]


def test_local_list_handlers_over_the_real_store():
    from mpocpp.model.authorization import Authorization
    from mpocpp.operations.localauth import LocalAuthListManagement
    r = Rig()
    auth = Authorization(r.cfg, Registration(), None, Recorder())
    h = LocalAuthListManagement(r.cfg, auth)
    assert h.GetLocalListVersion({}) == {"listVersion": 0}
    ent = [{"idTag": "A%d" % i, "idTagInfo": {"status": "Accepted"}} for i in range(3)]
    assert h.SendLocalList({"listVersion": 3, "updateType": "Full",
                            "localAuthorizationList": ent}) == {"status": "Accepted"}
    assert h.GetLocalListVersion({}) == {"listVersion": 3}
    assert "mpocpp.model.authstore" not in sys.modules  # let go after each CALL
    assert auth.store().list_lookup("a1")["status"] == "Accepted"
    auth.done()
    too_many = [{"idTag": "T%d" % i} for i in range(256)]
    try:
        h.SendLocalList({"listVersion": 4, "updateType": "Differential",
                         "localAuthorizationList": too_many})
    except Reply as e:
        assert e.code == "OccurenceConstraintViolation"
    else:
        raise AssertionError("no CALLERROR")
    r.cfg.change("LocalAuthListEnabled", "false")
    assert h.GetLocalListVersion({}) == {"listVersion": -1}
    assert h.SendLocalList({"listVersion": 5, "updateType": "Full"}) == {"status": "NotSupported"}


def test_signed_firmware_trigger_payload():
    # What ExtendedTriggerMessage(FirmwareStatusNotification) sends (L01.FR.28/29).
    from mpocpp.operations import signedfirmware

    class Jobs:
        signed = None

    j = Jobs()
    assert signedfirmware.triggered(j) == {"status": "Idle"}
    j.signed = {"status": "Downloading", "requestId": 3}
    assert signedfirmware.triggered(j) == {"status": "Downloading", "requestId": 3}
    assert signedfirmware.triggered(j) is not j.signed
    j.signed = {"status": "InvalidSignature", "requestId": 3}
    assert signedfirmware.triggered(j) == {"status": "InvalidSignature", "requestId": 3}
    j.signed = {"status": "Installed", "requestId": 3}
    assert signedfirmware.triggered(j) == {"status": "Idle"}


async def test_a_finished_job_is_forgotten_with_its_transfer_code():
    # A finished coroutine keeps its locals (the transfer, its buffer, the
    # operation's module): the jobs record drops a job's task as it ends,
    # and the transfer modules once neither job runs (the fuzzer's heap
    # growth, docs/reliability.md).
    import asyncio
    from mpocpp.transfer.jobs import Jobs
    j = Jobs(None, None)
    gate = asyncio.Event()

    async def job(kind):
        from mpocpp.transfer import files  # noqa: F401  (what a job loads)
        try:
            await gate.wait()
        finally:
            j.ended(asyncio.current_task())

    j.update = asyncio.create_task(job("update"))
    j.upload = asyncio.create_task(job("upload"))
    await asyncio.sleep_ms(0)
    assert "mpocpp.transfer.files" in sys.modules
    j.upload.cancel()  # a replaced upload ends while the update runs
    await asyncio.sleep_ms(0)
    assert j.upload is None and j.update is not None
    assert "mpocpp.transfer.files" in sys.modules  # the update still uses it
    gate.set()
    await asyncio.sleep_ms(0)
    await asyncio.sleep_ms(0)
    assert j.update is None and j.upload is None
    assert "mpocpp.transfer.files" not in sys.modules


async def test_diagnostics_file_written_again_after_running_out_of_heap():
    # The file is written before the upload: a MemoryError there (the heap
    # of that moment) is one of the request's tries, not the job's end;
    # flash errors still end it at once.
    from mpocpp.operations import diagnostics

    class Jobs:
        upload = None

        def __init__(self):
            self.sent = []

        async def notify(self, action, status, p=None):
            self.sent.append(status)

        def ended(self, task):
            pass

    class Net:
        connects = 0

        async def open_connection(self, host, port, ssl=None, server_hostname=None):
            Net.connects += 1
            raise OSError(113)

        def unreachable(self):
            pass

    class Diag(diagnostics.Diagnostics):
        fail = ()  # what each write raises, in turn

        def write(self, path, start=None, stop=None):
            self.tries += 1
            if self.fail:
                e, self.fail = self.fail[0], self.fail[1:]
                raise e
            with open(path, "w") as f:
                f.write("state\n")

    r = Rig()
    for fail, tries, uploaded in (((MemoryError(),), 2, True), ((MemoryError(),) * 2, 2, False),
                                  ((OSError(28),), 1, False)):
        Net.connects = 0
        j = Jobs()
        d = Diag(r.cfg, j, Net(), None, (), ())
        d.fail = fail
        d.tries = 0
        await d._run(diagnostics._Job("http://127.0.0.1:9/up", "d.txt", None, None, 2, 0))
        assert d.tries == tries, (fail, d.tries)
        # written, the upload is tried (and fails: no network here)
        assert j.sent == ["Uploading", "UploadFailed"], j.sent
        assert (Net.connects > 0) == uploaded, (fail, Net.connects)
