# A WiFi station that opens the firmware's TCP/TLS connections, for the
# boards with WiFi (imported by their wiring.py only when WiFi is the
# uplink). `network` is imported on use, so this module also compiles for
# unix.
from micropython import const

_DNS_GAP_MS = const(300000)  # after a failed lookup, the last address for 5 minutes


class WifiNet:
    # feed: the board's watchdog feed, called before getaddrinfo, which
    # blocks the loop: with a dead DNS server lwIP's resolver retries for
    # seconds, so the 8 s watchdog must start the call freshly fed.
    def __init__(self, ssid, password, feed):
        import network
        from mpocpp_board.resolver import Resolver
        self._ssid = ssid
        self._pwd = password
        self._feed = feed
        self._wlan = network.WLAN(network.STA_IF)
        self._dns = Resolver(self._lookup, _DNS_GAP_MS)

    async def open_connection(self, host, port, ssl=None, server_hostname=None):
        import asyncio
        w = self._wlan
        if not w.isconnected():
            w.active(True)
            w.connect(self._ssid, self._pwd)
            for _ in range(100):
                if w.isconnected():
                    break
                await asyncio.sleep_ms(100)
            else:
                raise OSError(118)  # EHOSTUNREACH: the link retries with back-off
        a = self._dns.address(host, port)
        if ssl is None:
            return await asyncio.open_connection(a, port)
        return await asyncio.open_connection(a, port, ssl=ssl,
                                             server_hostname=server_hostname or host)

    def unreachable(self):
        # The link's last connection failed before the WebSocket opened.
        self._dns.failed()

    def _lookup(self, host, port):
        import socket
        self._feed()
        return socket.getaddrinfo(host, port)[0][-1][0]
