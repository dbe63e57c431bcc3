# ISO 8601 date-time parsing, apart from clock.py: only messages with dates
# need it (the payload validator, IdTagInfo, charging profiles, a
# Heartbeat's currentTime). Callers import it inside the function that
# parses, so that it can go at any time: the dispatcher releases it after a
# CALL, the rpc and sessions with their idle code.
from micropython import const

_DAY = const(86400)


def _days_from_civil(y, m, d):
    y = y - 1 if m <= 2 else y
    era = y // 400
    yoe = y - era * 400
    mp = m - 3 if m > 2 else m + 9
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def optional(d, key):
    # The date-time of the optional field `key` of the object d: unix
    # seconds, None when absent; ValueError("<key>: bad date-time").
    s = d.get(key)
    if s is None:
        return None
    try:
        return parse(s)
    except (ValueError, TypeError):
        raise ValueError(key + ": bad date-time")


def parse(s):
    # "YYYY-MM-DDTHH:MM:SS[.fff][Z|+hh:mm|-hh:mm]" -> unix seconds (int).
    # Raises ValueError on anything else.
    return parse_ms(s)[0]


def parse_ms(s):
    # The same -> (unix seconds, milliseconds past them).
    try:
        if len(s) < 19 or s[4] != "-" or s[7] != "-" or s[10] not in "Tt " \
                or s[13] != ":" or s[16] != ":":
            raise ValueError
        y = int(s[0:4])
        mo = int(s[5:7])
        d = int(s[8:10])
        h = int(s[11:13])
        mi = int(s[14:16])
        se = int(s[17:19])
        i = 19
        n = len(s)
        ms = 0
        # Slices, not s[i]: indexing a str interns the character, for good.
        if s[i:i + 1] == ".":
            i += 1
            k = 100
            while i < n and "0" <= s[i:i + 1] <= "9":
                ms += (ord(s[i:i + 1]) - 48) * k
                k //= 10
                i += 1
        off = 0
        if i < n:
            c = s[i:i + 1]
            if c in "Zz" and i + 1 == n:
                pass
            elif c in "+-" and n - i == 6 and s[i + 3:i + 4] == ":":
                off = int(s[i + 1:i + 3]) * 3600 + int(s[i + 4:i + 6]) * 60
                if c == "-":
                    off = -off
            else:
                raise ValueError
        if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and se < 61):
            raise ValueError
    except (ValueError, IndexError):
        raise ValueError("bad date-time")
    return _days_from_civil(y, mo, d) * _DAY + h * 3600 + mi * 60 + se - off, ms
