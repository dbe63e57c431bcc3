# The CSMS's name to an address, for the boards' uplinks. getaddrinfo blocks
# the event loop, so a name is resolved once and again only after a
# connection to its address failed (the CSMS may have moved; the link says
# so: asyncio's open_connection does not see a refused connect). When the
# name does not resolve, the last address that worked is used: a DNS outage
# alone never takes the charger offline. After a lookup that failed, the
# next waits gap_ms: during an outage the loop (metering, the pilot) is not
# stalled by a lookup at every reconnect attempt.
import time
from mpocpp.util import log

_TAG = "net"


class Resolver:
    def __init__(self, lookup, gap_ms=0, ticks_ms=time.ticks_ms):
        self._lookup = lookup  # (host, port) -> address; OSError if it fails
        self._gap = gap_ms
        self._ticks = ticks_ms
        # (host, port) -> [address, no connection failed since, ticks of
        # the last lookup that failed or None]
        self._addr = {}
        self._last = None  # the (host, port) of the last connection

    def address(self, host, port):
        key = self._last = (host, port)
        e = self._addr.get(key)
        if e is not None and (e[1] or self._resting(e)):
            return e[0]
        try:
            a = self._lookup(host, port)
        except OSError as x:
            if e is None:
                log.warn(_TAG, "cannot resolve %s (%s): will retry", host, x)
                raise
            log.warn(_TAG, "cannot resolve %s (%s): trying its last address", host, x)
            e[2] = self._ticks()
            return e[0]
        self._addr[key] = [a, True, None]
        return a

    def _resting(self, e):
        # A lookup of this name failed less than gap_ms ago.
        return e[2] is not None and time.ticks_diff(self._ticks(), e[2]) < self._gap

    def failed(self):
        # The last connection failed: its name is resolved again next time.
        e = self._addr.get(self._last)
        if e is not None:
            e[1] = False
