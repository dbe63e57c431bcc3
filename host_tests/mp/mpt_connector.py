# A connector (mpocpp/model/connector.py): the OCPP status derived from the
# pilot, the transaction, availability, reservations and faults (OCPP 1.6
# §4.9), the transition table and the routing through Preparing,
# MinimumStatusDuration, EVCommunicationError, and the relay safety rules.
import time

from fakes import Rig, settle
from mpocpp.model import connector
from mpocpp.model.connector import Connector, Fault
from mpocpp.model.reservations import Reservation
from mpocpp.model.transaction import Transaction

# §4.9, the table of possible transitions, as printed (from \ to, 1..9 =
# Available .. Faulted).
_SPEC = {"A": "A2 A3 A4 A5 A7 A8 A9", "B": "B1 B3 B4 B5 B6 B9",
         "C": "C1 C4 C5 C6 C8 C9", "D": "D1 D3 D5 D6 D8 D9", "E": "E1 E3 E4 E6 E8 E9",
         "F": "F1 F2 F8 F9", "G": "G1 G2 G8 G9", "H": "H1 H2 H3 H4 H5 H9",
         "I": "I1 I2 I3 I4 I5 I6 I7 I8"}
_NAMES = ("Available", "Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing",
          "Reserved", "Unavailable", "Faulted")


def _tx(cid=1, tag="TAG1"):
    return Transaction(cid, -2, tag, None, 0, 0)


def _check_allowed(reports):
    # Every reported change of a connector is in the §4.9 table.
    last = {}
    for p in reports:
        cid = p["connectorId"]
        if cid in last and last[cid] != p["status"]:
            assert connector.allowed(last[cid], p["status"]), (last[cid], p["status"])
        last[cid] = p["status"]


def test_transition_table_is_the_spec_table():
    # The errata E3.20 adds Preparing -> Finishing (B6 in the table above).
    for i, frm in enumerate(_NAMES):
        row = _SPEC["ABCDEFGHI"[i]].split()
        for j, to in enumerate(_NAMES):
            if i == j:
                continue
            want = "ABCDEFGHI"[i] + str(j + 1) in row
            assert connector.allowed(frm, to) == want, (frm, to)


def test_idle_statuses_from_pilot_reservation_availability_fault():
    r = Rig()
    c = r.con()
    assert c.derive() == "Available"
    r.ev("B")  # cable in
    assert c.status == "Preparing"
    r.ev("A")
    assert c.status == "Available"
    c.reservation = Reservation(1, "OWNER", None, 2000000000)
    c.update()
    assert c.status == "Reserved"
    c.reservation = None
    c.operative = False
    c.update()
    assert c.status == "Unavailable"
    c.operative = True
    c.raise_fault("GroundFailure", "leak")
    assert (c.status, c.error_code, c.info) == ("Faulted", "GroundFailure", "leak")
    c.clear_fault()
    assert (c.status, c.error_code) == ("Available", "NoError")
    assert r.statuses() == ["Preparing", "Available", "Reserved", "Unavailable", "Faulted",
                            "Available"]
    _check_allowed(r.reports)


def test_fault_beats_everything_and_is_reported_with_its_code():
    r = Rig()
    c = r.con()
    c.tx = _tx()
    c.pilot = "C"
    c.reservation = Reservation(1, "X", None, 2000000000)
    c.operative = False
    c.fault = Fault("HighTemperature", "85 C")
    assert c.derive() == "Faulted"
    c.update()
    assert r.reports[-1]["errorCode"] == "HighTemperature"
    assert r.reports[-1]["info"] == "85 C"
    assert r.hw[1].relay.closed is False


def test_transaction_statuses_and_suspended_evse_precedence():
    r = Rig()
    c = r.con()
    c.pilot = "C"
    c.tx = _tx()
    c.update()
    assert c.status == "Charging"
    c.pilot = "B"  # the EV pauses (S2 open)
    c.update()
    assert c.status == "SuspendedEV"
    c.limit_a = 4  # and the EVSE may not give 6 A: SuspendedEVSE has precedence
    c.update()
    assert c.status == "SuspendedEVSE"
    c.limit_a = None
    c.tx.invalid = True  # StartTransaction.conf not Accepted, no stop
    c.pilot = "C"
    c.update()
    assert c.status == "SuspendedEVSE"
    c.tx.invalid = False
    c.update()
    assert c.status == "Charging"
    c.tx = None
    c.finishing = True  # stopped, cable still in
    c.update()
    assert c.status == "Finishing"
    c.on_pilot("A")
    c.update()
    assert c.status == "Available"
    _check_allowed(r.reports)


def test_preparing_held_while_the_ev_answers_the_offer():
    r = Rig()
    c = r.con()
    r.ev("B")
    assert c.status == "Preparing"
    c.tx = _tx()
    c.tx_since = time.ticks_ms()
    c.update()
    assert c.status == "Preparing"  # the EV has 3 s to close S2
    c.tx_since = time.ticks_add(time.ticks_ms(), -3100)
    c.update()
    assert c.status == "SuspendedEV"


def test_connector_zero_is_available_unavailable_or_faulted_only():
    r = Rig()
    z = r.con(0)
    z.pending = object()
    z.pilot = "B"
    z.reservation = Reservation(1, "X", None, 2000000000)
    assert z.derive() == "Available"
    z.operative = False
    assert z.derive() == "Unavailable"
    z.fault = Fault("OtherError")
    assert z.derive() == "Faulted"


def test_routed_through_preparing_where_the_table_demands():
    r = Rig()
    c = r.con()
    # Finishing -> Charging is not allowed: F -> B -> C.
    c.set_status("Finishing")
    r.clear()
    c.set_status("Charging")
    assert r.statuses() == ["Preparing", "Charging"]
    # Reserved -> Charging (the owner plugs in and the EV draws at once): G -> B -> C.
    c.set_status("Reserved")
    r.clear()
    c.set_status("Charging")
    assert r.statuses() == ["Preparing", "Charging"]
    # Allowed changes go straight.
    r.clear()
    c.set_status("SuspendedEV")
    c.set_status("Faulted", "OtherError")
    c.set_status("Available")
    assert r.statuses() == ["SuspendedEV", "Faulted", "Available"]
    # A repeat is not a change.
    r.clear()
    c.set_status("Available")
    assert r.reports == []


def test_status_payload():
    r = Rig()
    c = r.con()
    c.set_status("Faulted", "OtherError", "emergency stop")
    c.vendor_error = "E42"
    p = c.status_payload()
    assert p == {"connectorId": 1, "errorCode": "OtherError", "status": "Faulted",
                 "timestamp": "2026-01-01T00:00:00Z", "info": "emergency stop",
                 "vendorErrorCode": "E42"}, p
    assert r.reports[-1]["status"] == "Faulted"
    c.set_status("Available")
    assert "info" not in r.reports[-1]


def test_minimum_status_duration_reports_only_what_held():
    r = Rig(keys={"MinimumStatusDuration": 5})
    c = r.con()
    t = time.ticks_ms()
    c.report_due(t)  # the Accepted BootNotification reported the boot state
    r.ev("B")
    r.ev("A")  # a plug that came and went within 5 s
    c.report_due(time.ticks_add(t, 10000))
    assert r.reports == []
    r.ev("B")
    c.report_due(time.ticks_add(c.since, 4999))
    assert r.reports == []
    c.report_due(time.ticks_add(c.since, 5000))
    assert r.statuses() == ["Preparing"]
    c.report_due(time.ticks_add(c.since, 60000))  # once
    assert r.statuses() == ["Preparing"]
    # A change to an error code alone is a change too.
    c.raise_fault("GroundFailure")
    c.report_due(time.ticks_add(c.since, 5000))
    assert r.reports[-1]["errorCode"] == "GroundFailure"


def test_pilot_e_or_f_is_ev_communication_error_without_energy():
    for bad in "EF":
        r = Rig()
        c = r.con()
        hw = r.hw[1]
        r.ev("B")
        r.ev(bad)  # shorted pilot / missing diode while plugged
        assert (c.status, c.error_code) == ("Preparing", "EVCommunicationError")
        c.tx = _tx()
        c.tx_since = time.ticks_add(time.ticks_ms(), -5000)
        c.update()
        assert (c.status, c.error_code) == ("SuspendedEV", "EVCommunicationError")
        assert hw.pilot.offered == 0 and not hw.relay.closed
        r.ev("C")  # the EV seems fine again: still no energy until unplugged
        assert c.offered_amps() == 0 and not hw.relay.closed
        # no energy: never reported as Charging
        assert (c.status, c.error_code) == ("SuspendedEV", "EVCommunicationError")
        c.tx = None
        r.ev("A")
        assert (c.status, c.error_code) == ("Available", "NoError")
        _check_allowed(r.reports)


def test_ev_communication_error_only_with_its_four_statuses():
    r = Rig()
    c = r.con()
    c.operative = False
    r.ev("E")
    assert (c.status, c.error_code) == ("Unavailable", "NoError")
    c.operative = True
    c.finishing = True
    c.update()
    assert (c.status, c.error_code) == ("Finishing", "EVCommunicationError")


def _relay_closed(r, tx, pilot, amps_limit=None, fault=None, invalid=False):
    c = r.con()
    c.tx = _tx() if tx else None
    if c.tx is not None:
        c.tx.invalid = invalid
        c.tx_since = time.ticks_add(time.ticks_ms(), -5000)
    c.pilot = pilot
    c.ev_error = False
    c.limit_a = amps_limit
    c.fault = None if fault is None else Fault(fault)
    c.update()
    return r.hw[1].relay.closed


def test_relay_closes_only_with_tx_ev_in_c_or_d_current_and_no_fault():
    r = Rig()
    assert _relay_closed(r, True, "C")
    assert _relay_closed(r, True, "D")  # ventilation asked: still energy
    assert not _relay_closed(r, False, "C")  # no transaction
    assert not _relay_closed(r, True, "B")  # EV not asking
    assert not _relay_closed(r, True, "A")
    assert not _relay_closed(r, True, "C", fault="GroundFailure")
    assert not _relay_closed(r, True, "C", amps_limit=0)
    assert not _relay_closed(r, True, "C", amps_limit=5.9)
    assert not _relay_closed(r, True, "C", invalid=True)
    assert _relay_closed(r, True, "C", amps_limit=6)
    # Opening follows at once when a condition goes.
    assert _relay_closed(r, True, "C")
    r.con().pilot = "B"
    r.con().update()
    assert not r.hw[1].relay.closed


def test_offered_current_is_the_lowest_of_limit_and_board():
    r = Rig(max_amps=16)
    c = r.con()
    pilot = r.hw[1].pilot
    assert _relay_closed(r, True, "C")
    assert pilot.offered == 16 and r.meter.offered[1] == 16
    assert _relay_closed(r, True, "C", amps_limit=10)
    assert pilot.offered == 10 and r.meter.offered[1] == 10
    assert _relay_closed(r, True, "C", amps_limit=40)
    assert pilot.offered == 16
    c.tx = None
    c.update()
    assert pilot.offered == 0 and r.meter.offered[1] == 0  # idle: nothing offered


def test_smart_charging_limit_below_6a_is_suspended_evse():
    r = Rig()
    c = r.con()
    assert not _relay_closed(r, True, "C", amps_limit=5)
    assert c.status == "SuspendedEVSE" and c.offered_amps() == 0
    assert r.hw[1].pilot.offered == 0
    c.limit_a = 8
    c.update()
    assert c.status == "Charging" and r.hw[1].pilot.offered == 8
    assert r.hw[1].relay.closed


async def test_relay_feedback_fault_found_by_the_poll():
    r = Rig()
    c = await r.start()
    hw = r.hw[1]
    assert hw.relay.closed
    hw.relay.fault = "PowerSwitchFailure"  # welded or not closing
    r.sessions.tick(time.ticks_ms())
    await settle()
    assert (c.status, c.error_code) == ("Faulted", "PowerSwitchFailure")
    assert not hw.relay.closed and hw.pilot.offered == 0
    assert r.reports[-1]["errorCode"] == "PowerSwitchFailure"


def test_a_connector_without_hardware_drives_nothing():
    r = Rig()
    c = Connector(3, None, r.cfg, None, 32, r.reports.append)
    assert c.poll() is False
    c.tx = _tx(3)
    c.update()  # no driver: no exception, the status is still derived
    assert c.status == "SuspendedEV"
