"""Local authorization list over OCPP (checklist LocalAuthListManagement,
scenarios 51-53): versions, Full and Differential updates, limits, and the
list used for authorization."""
import time

import pytest

from csms_lib import CallErrorResult


def entry(tag, status="Accepted", parent=None):
    info = {"status": status}
    if parent:
        info["parentIdTag"] = parent
    return {"idTag": tag, "idTagInfo": info}


def send(csms, version, kind, entries):
    return csms.call("CP1", "SendLocalList", {"listVersion": version, "updateType": kind,
                                              "localAuthorizationList": entries})["status"]


def version(csms):
    return csms.call("CP1", "GetLocalListVersion", {})["listVersion"]


def test_versions_full_and_differential(csms, charger):
    assert version(csms) == 0
    assert send(csms, 2, "Full", [entry("A1"), entry("B2")]) == "Accepted"
    assert version(csms) == 2
    assert send(csms, 5, "Differential", [entry("C3"), {"idTag": "A1"}]) == "Accepted"
    assert version(csms) == 5
    assert send(csms, 5, "Differential", [entry("D4")]) == "VersionMismatch"
    assert send(csms, 0, "Full", [entry("D4")]) == "Failed"  # errata E3.52
    assert send(csms, 6, "Full", [entry("D4"), entry("d4")]) == "Failed"  # duplicate tag
    assert version(csms) == 5
    assert send(csms, 7, "Full", []) == "Accepted"  # empty Full clears
    assert version(csms) == 7


def test_too_many_entries(csms, charger):
    with pytest.raises(CallErrorResult) as e:
        send(csms, 3, "Full", [entry("T%d" % i) for i in range(256)])
    assert e.value.code == "OccurenceConstraintViolation"
    assert version(csms) == 0


def test_disabled(csms, charger):
    assert csms.call("CP1", "ChangeConfiguration",
                     {"key": "LocalAuthListEnabled", "value": "false"})["status"] == "Accepted"
    assert version(csms) == -1
    assert send(csms, 3, "Full", [entry("A1")]) == "NotSupported"


def test_list_survives_restart(csms, charger):
    assert send(csms, 4, "Full", [entry("A1")]) == "Accepted"
    mark = csms.mark()
    charger.restart()
    csms.wait_for("StatusNotification", after=mark, timeout=15)
    assert version(csms) == 4


def test_blocked_in_list_refused_even_if_cached(csms, charger):
    # Scenario 53: the list beats the cache.
    charger.ok("plug_in", connector=1)
    charger.ok("swipe", idTag="TAGX")  # Authorize Accepted -> cached
    csms.wait_for("StartTransaction", timeout=5)
    time.sleep(0.3)
    charger.ok("swipe", idTag="TAGX")
    csms.wait_for("StopTransaction", timeout=5)
    charger.ok("plug_out", connector=1)
    assert send(csms, 2, "Full", [entry("TAGX", "Blocked")]) == "Accepted"
    assert csms.call("CP1", "ChangeConfiguration",
                     {"key": "LocalPreAuthorize", "value": "true"})["status"] == "Accepted"
    charger.ok("plug_in", connector=1)
    mark = csms.mark()
    charger.ok("swipe", idTag="TAGX")
    time.sleep(1.5)
    assert csms.calls("StartTransaction", after=mark) == []
    assert csms.calls("Authorize", after=mark) == []  # refused locally
    assert charger.connector(1)["transaction"] is None


def test_listed_tag_pre_authorized(csms, charger):
    assert csms.call("CP1", "ChangeConfiguration",
                     {"key": "LocalPreAuthorize", "value": "true"})["status"] == "Accepted"
    assert send(csms, 2, "Full", [entry("LISTED")]) == "Accepted"
    charger.ok("plug_in", connector=1)
    mark = csms.mark()
    charger.ok("swipe", idTag="listed")  # idTag is case-insensitive
    csms.wait_for("StartTransaction", after=mark, timeout=5)
    assert csms.calls("Authorize", after=mark) == []


def full_list(n=255):
    # SendLocalListMaxLength entries, each with expiryDate and parentIdTag
    # and 20-character idTags: about 25 KB of JSON.
    return [{"idTag": "TAG%017d" % i,
             "idTagInfo": {"status": "Accepted", "expiryDate": "2099-01-01T00:00:00Z",
                           "parentIdTag": "GROUP%015d" % (i % 7)}} for i in range(n)]


def test_largest_list_streamed_to_flash(csms, charger):
    # Larger than the receive buffer: written to flash as it arrives and
    # read entry by entry (issue 8); every entry is then in the list.
    entries = full_list()
    assert send(csms, 9, "Full", entries) == "Accepted"
    assert version(csms) == 9
    # The stream parser is released with the message (heap on a board).
    assert "mpocpp.protocol.jsonstream" not in charger.ok("heap")["modules"]
    charger.op("network", up=False)  # offline: the list alone decides
    charger.ok("plug_in", connector=1)
    charger.ok("swipe", idTag=entries[254]["idTag"].lower())
    charger.wait_state(lambda s: s["connectors"][0]["transaction"] is not None,
                       what="transaction from the listed card")
    charger.op("network", up=True)
    deadline = time.time() + 15
    while not csms.connected("CP1") and time.time() < deadline:
        time.sleep(0.1)
    # a bad entry in the middle of a large list: nothing changes
    entries[100]["idTagInfo"]["status"] = "Bogus"
    with pytest.raises(CallErrorResult) as e:
        csms.call("CP1", "SendLocalList", {"listVersion": 10, "updateType": "Full",
                                           "localAuthorizationList": entries},
                  validate_outgoing=False)
    assert e.value.code == "PropertyConstraintViolation"
    assert version(csms) == 9
    with pytest.raises(CallErrorResult) as e:
        send(csms, 11, "Full", full_list(256))
    assert e.value.code == "OccurenceConstraintViolation"
    assert version(csms) == 9
