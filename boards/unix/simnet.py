# Simulated uplink for the unix board: real TCP/TLS sockets on the host, but
# the bench can cut it (`network` up=false): open connections are dropped
# and new ones refused until it comes back, while the charger stays powered.
import asyncio
import socket
import errno


class SimNet:
    def __init__(self):
        self.up = True
        self._addr = {}  # host -> resolved address, resolved once (blocking call)
        self._conns = []  # writers of open connections
        self.on_down = None  # callable: the firmware's view of a dead link

    def _resolve(self, host, port):
        key = (host, port)
        a = self._addr.get(key)
        if a is None:
            a = socket.getaddrinfo(host, port)[0][-1]
            self._addr[key] = a
        return a

    async def open_connection(self, host, port, ssl=None, server_hostname=None):
        if not self.up:
            raise OSError(errno.EHOSTUNREACH)
        self._resolve(host, port)  # the notes: resolve once, then reuse
        if ssl is None:
            r, w = await asyncio.open_connection(host, port)
        else:
            r, w = await asyncio.open_connection(host, port, ssl=ssl,
                                                 server_hostname=server_hostname or host)
        if not self.up:
            w.close()
            raise OSError(errno.EHOSTUNREACH)
        self._conns.append(w)
        if len(self._conns) > 4:
            self._conns = self._conns[-4:]
        return r, w

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
