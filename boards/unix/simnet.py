# Simulated uplink for the unix board: real TCP/TLS sockets on the host, but
# the bench can cut it (`network` up=false): open connections are dropped
# and new ones refused until it comes back, while the charger stays powered.
# The bench can also stop names resolving (`dns` up=false), as a dead DNS
# server would; an address given as digits still works then.
import asyncio
import socket
import errno


class SimNet:
    def __init__(self):
        from mpocpp_board.resolver import Resolver
        self.up = True
        self.dns_up = True
        self.lookups = 0  # names resolved (or tried): the bench shows it
        # No gap after a failed lookup (a board waits 5 minutes): the bench's
        # dns faults come seconds apart and each must make the charger try.
        self._dns = Resolver(self._lookup)
        self._conns = []  # writers of open connections
        self.on_down = None  # callable: the firmware's view of a dead link

    def _lookup(self, host, port):
        self.lookups += 1
        if not self.dns_up and not _numeric(host):
            raise OSError("[addrinfo error -3]")  # EAI_AGAIN, as lwIP and libc say it
        a = socket.getaddrinfo(host, port)[0]
        if a[0] != socket.AF_INET:
            return host  # IPv6: connect by name
        return socket.inet_ntop(socket.AF_INET, a[-1][4:8])

    async def open_connection(self, host, port, ssl=None, server_hostname=None):
        if not self.up:
            raise OSError(errno.EHOSTUNREACH)
        a = self._dns.address(host, port)
        if ssl is None:
            r, w = await asyncio.open_connection(a, port)
        else:
            r, w = await asyncio.open_connection(a, port, ssl=ssl,
                                                 server_hostname=server_hostname or host)
        if not self.up:
            w.close()
            raise OSError(errno.EHOSTUNREACH)
        self._conns.append(w)
        if len(self._conns) > 4:
            self._conns = self._conns[-4:]
        return r, w

    def unreachable(self):
        # The link's last connection failed before the WebSocket opened.
        self._dns.failed()

    def set_up(self, up):
        self.up = up
        if not up:
            for w in self._conns:
                try:
                    w.s.close()
                except Exception:
                    pass
            self._conns = []
            if self.on_down:
                self.on_down()


def _numeric(host):
    return host.replace(".", "").isdigit()
