from mpocpp.util import clock, timeparse


class FakeRtc:
    def __init__(self, t):
        self.t = t

    def time(self):
        return self.t

    def set(self, t):
        self.t = t


def test_iso_roundtrip():
    for t in (0, 951782400, 1704067199, 1795289378, 4102444800, 1709164800):
        s = clock.iso(t)
        assert timeparse.parse(s) == t, (t, s)
    assert clock.iso(0) == "1970-01-01T00:00:00Z"
    assert clock.iso(951782400) == "2000-02-29T00:00:00Z"


def test_parse_forms():
    assert timeparse.parse("2026-11-21T19:29:20Z") == 1795289360
    assert timeparse.parse("2026-11-21T19:29:20.123Z") == 1795289360
    assert timeparse.parse("2026-11-21T20:29:20+01:00") == 1795289360
    assert timeparse.parse("2026-11-21T18:29:20-01:00") == 1795289360
    assert timeparse.parse("2026-11-21T19:29:20") == 1795289360
    for bad in ("", "2026-11-21", "2026-13-01T00:00:00Z", "x026-11-21T19:29:20Z",
                "2026-11-21T19:29:20Zjunk", "2026-11-21T19:29:20+0100"):
        try:
            timeparse.parse(bad)
        except ValueError:
            continue
        raise AssertionError(bad)


def test_valid_and_set():
    rtc = FakeRtc(0)
    clock.init(rtc)
    assert not clock.valid()
    clock.set_time(1795289360)
    assert clock.valid() and clock.now() == 1795289360


def test_restore_and_remember():
    import os
    path = "/tmp/mpt_clock_lasttime_%d" % int.from_bytes(os.urandom(4), "big")
    rtc = FakeRtc(946684800)  # a board RTC after power-up: 2000-01-01
    clock.init(rtc)
    assert not clock.restore(path)  # nothing remembered yet
    clock.set_time(1795289360)
    clock.remember(path)
    clock.set_time(1795289360 + 60)
    clock.remember(path)  # within the hour: not written again
    rtc.t = 946684800
    clock.init(rtc)  # a restart
    assert clock.restore(path) and clock.now() == 1795289360
    assert not clock.restore(path)  # a valid clock is left alone
    os.remove(path)


def test_sub_seconds_kept():
    # currentTime "...:20.600Z": the charger's second rolls over with the
    # central system's, 400 ms later, not a second later.
    import time
    rtc = FakeRtc(0)
    clock.init(rtc)
    t, ms = timeparse.parse_ms("2026-11-21T19:29:20.600Z")
    assert (t, ms) == (1795289360, 600)
    assert timeparse.parse_ms("2026-11-21T19:29:20.05Z")[1] == 50
    assert timeparse.parse_ms("2026-11-21T19:29:20Z")[1] == 0
    clock.set_time(t, ms)
    assert rtc.t == t  # the RTC keeps whole seconds
    assert clock.now() == t
    time.sleep_ms(500)
    assert clock.now() == t + 1
    time.sleep_ms(1000)
    assert clock.now() == t + 2


def test_ticks_range_folded():
    # now() stays right past the ticks_diff range: whole days are folded in.
    rtc = FakeRtc(1795289360)
    clock.init(rtc)
    import time
    clock._anchor = time.ticks_add(time.ticks_ms(), -(86400000 + 5000))
    assert clock.now() == 1795289360 + 86400 + 5
    assert clock.now() == 1795289360 + 86400 + 5


def test_optional_date_field():
    assert timeparse.optional({}, "validFrom") is None
    assert timeparse.optional({"validFrom": "2026-11-21T19:29:20Z"}, "validFrom") == 1795289360
    for bad in ("tomorrow", 5, ["2026-11-21T19:29:20Z"]):
        try:
            timeparse.optional({"validFrom": bad}, "validFrom")
        except ValueError as e:
            assert str(e) == "validFrom: bad date-time"
        else:
            raise AssertionError(bad)
