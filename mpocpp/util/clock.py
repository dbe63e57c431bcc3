# Wall clock in unix seconds and ISO 8601 (UTC) formatting; parsing is in
# timeparse.py, loaded by the messages that carry dates.
# The board hands in a clock driver with .time() -> unix seconds (int or float)
# and .set(unix_seconds). Dates are computed here, not with time.gmtime(),
# because the epoch of time.gmtime differs between ports.
from micropython import const

_DAY = const(86400)
_VALID_FROM = const(1704067200)  # 2024-01-01: anything earlier is an unset RTC

_DAY_MS = const(86400000)

_driver = None
_saved = 0  # unix time last written by remember()
# The firmware's own time base: unix seconds _base at ticks_ms _anchor. It
# keeps the sub-second part of the central system's currentTime (an RTC keeps
# whole seconds), so the charger's seconds roll over with the CSMS's.
_base = 0
_anchor = 0


def init(driver):
    # driver.time() -> unix seconds (int, or float on the host); .set(int s)
    global _driver
    _driver = driver
    t = driver.time()
    s = int(t)
    _set_base(s, int((t - s) * 1000))


def _set_base(s, ms):
    global _base, _anchor
    import time
    _base = s
    _anchor = time.ticks_add(time.ticks_ms(), -ms)


def ready():
    # A driver was handed in (the log stamps lines with 0 before).
    return _driver is not None


def now():
    global _base, _anchor
    import time
    d = time.ticks_diff(time.ticks_ms(), _anchor)
    if d >= _DAY_MS or d < 0:  # fold whole seconds in: ticks_diff has a range
        if d < 0:
            s = int(_driver.time())
            _set_base(s, 0)
            return s
        k = d // 1000
        _base += k
        _anchor = time.ticks_add(_anchor, k * 1000)
        d -= k * 1000
    return _base + d // 1000


def stamp():
    # For the log ring: unix seconds, 0 before the board's clock is known.
    return now() if _driver is not None else 0


def set_time(unix, ms=0):
    # unix seconds (int) and the milliseconds past it.
    _driver.set(unix)
    _set_base(unix, ms)


def valid():
    return _driver is not None and now() >= _VALID_FROM


def restore(path):
    # A board without a battery-backed RTC boots in 2000 (or 1970): start from
    # the last time the central system gave us rather than from nothing, so
    # that a transaction started offline before the first connection is not
    # stamped decades ago. True when the clock was set.
    if valid():
        return False
    from mpocpp.util import fsutil
    try:
        t = int(fsutil.read(path, b"0"))
    except ValueError:
        return False
    if t < _VALID_FROM:
        return False
    set_time(t)
    return True


def remember(path, every_s=3600):
    # Called when the clock was set from the central system; writes the time
    # to flash at most once per every_s (one small atomic write an hour).
    global _saved
    t = now()
    if t - _saved >= every_s or t < _saved:
        from mpocpp.util import fsutil
        try:
            fsutil.write_atomic(path, str(t).encode())
            _saved = t
        except OSError:
            pass


def _civil(days):
    # days since 1970-01-01 -> (y, m, d); proleptic Gregorian, era arithmetic.
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return (y + 1 if m <= 2 else y), m, d


def iso(t=None):
    if t is None:
        t = now()
    t = int(t)
    days, secs = divmod(t, _DAY)
    y, mo, d = _civil(days)
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (
        y, mo, d, secs // 3600, secs // 60 % 60, secs % 60)
