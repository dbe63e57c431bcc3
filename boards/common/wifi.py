# Shared by the real boards: the RTC as a unix-seconds clock, and a WiFi
# station that opens the firmware's TCP/TLS connections. `machine` and
# `network` are imported on use, so this module also compiles for unix.
from micropython import const


class RtcClock:
    # machine.RTC as unix seconds whatever the port's epoch (1970 or 2000).
    trusted = False

    def __init__(self):
        import machine
        import time
        self._time = time
        self._rtc = machine.RTC()
        self._epoch = 946684800 if time.gmtime(0)[0] == 2000 else 0

    def time(self):
        return self._time.time() + self._epoch

    def set(self, t):
        tm = self._time.gmtime(int(t) - self._epoch)
        self._rtc.datetime((tm[0], tm[1], tm[2], tm[6], tm[3], tm[4], tm[5], 0))


def make_net(settings, feed):
    # The board's uplink from the provisioning settings: "net": "wifi" (the
    # default where the port has the network module), "usb" (the USB REPL's
    # serial line to tools/bridge on a host: docs/serial-bridge.md) or "none":
    # None, no uplink (a Pico without WiFi and no bridge), the charger offline
    # for good without loading the connection's code.
    kind = settings.get("net")
    if kind == "usb":
        from mpocpp_board.serialnet import usb_stdio
        return usb_stdio()
    if kind != "none":
        try:
            import network  # noqa: F401
        except ImportError:
            kind = "none"  # a board without WiFi (RPI_PICO)
    if kind == "none":
        return None
    return WifiNet(settings.get("wifiSsid", ""), settings.get("wifiPassword", ""), feed)


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
