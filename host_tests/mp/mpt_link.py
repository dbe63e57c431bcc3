# The link's connection loop (protocol/link.py) without a CSMS: a board with
# no uplink stays offline without loading the connection's code, and one
# whose network refuses backs off, counting failed attempts, with the
# attempt's module released after each.
import asyncio
import sys

from fakes import Recorder, Registration, config, init_clock, tmpdir

from mpocpp.protocol.link import Link
from mpocpp.util import log

_CODE = ("mpocpp.protocol.connect", "mpocpp.protocol.ws", "mpocpp.protocol.handshake")


class Refusing:
    # A network that is down: every connection refused.
    def __init__(self):
        self.opens = 0
        self.unreachables = 0

    async def open_connection(self, host, port, ssl=None, server_hostname=None):
        self.opens += 1
        raise OSError(113)

    def unreachable(self):
        self.unreachables += 1


def _link(net):
    init_clock()
    cfg = config(tmpdir("link"), settings={"csmsUrl": "ws://127.0.0.1:9/ocpp",
                                           "chargeBoxId": "CP1", "reconnectMinMs": 20,
                                           "reconnectMaxMs": 40})
    return Link(cfg, net, None, Registration(online=False), None, Recorder(), Recorder())


async def _run_for(link, ms):
    lines = []
    log.sink = lines.append
    try:
        t = asyncio.create_task(link.run())
        await asyncio.sleep_ms(ms)
        t.cancel()
        try:
            await t  # its finally clauses run (an attempt released)
        except asyncio.CancelledError:
            pass
    finally:
        log.sink = None
    return lines


async def test_no_uplink_stays_offline_without_the_connection_code():
    for m in _CODE:
        sys.modules.pop(m, None)
    link = _link(None)
    lines = await _run_for(link, 300)
    assert link.state == "offline" and link.failures == 0 and link.connects == 0
    assert [m for m in _CODE if m in sys.modules] == [], list(sys.modules)
    assert len(lines) == 1 and "no network on this board: running offline" in lines[0], lines


async def test_refused_connections_back_off_and_release_the_attempt():
    net = Refusing()
    link = _link(net)
    sec = link.security_event
    lines = await _run_for(link, 400)
    assert net.opens >= 3 and link.failures >= 3 and link.connects == 0, (net.opens, lines)
    # no HTTP answer: resolve again (the attempt cut short by the test's
    # cancel may not have got there)
    assert net.opens - 1 <= net.unreachables <= net.opens, (net.opens, net.unreachables)
    assert link.state in ("offline", "connecting")
    assert "mpocpp.protocol.connect" not in sys.modules
    assert sec.calls == []  # a refused TCP connect is no security event
    assert net.opens - 1 <= sum("connect failed" in s for s in lines) <= net.opens, lines
