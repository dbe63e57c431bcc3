# heap: 256k
# The boards' name resolution (boards/common/resolver.py): once, again after
# a failed connection, and the last good address while names do not resolve.
from mpocpp_board.resolver import Resolver


class Dns:
    def __init__(self):
        self.table = {"csms.example": "10.0.0.1"}
        self.up = True
        self.asked = 0

    def __call__(self, host, port):
        self.asked += 1
        if not self.up or host not in self.table:
            raise OSError("[addrinfo error -3]")
        return self.table[host]


def test_a_name_is_resolved_once_while_connections_work():
    dns = Dns()
    r = Resolver(dns)
    assert r.address("csms.example", 443) == "10.0.0.1"
    dns.table["csms.example"] = "10.0.0.2"
    assert r.address("csms.example", 443) == "10.0.0.1"
    assert dns.asked == 1


def test_after_a_failed_connection_the_name_is_resolved_again():
    dns = Dns()
    r = Resolver(dns)
    r.address("csms.example", 443)
    dns.table["csms.example"] = "10.0.0.2"  # the CSMS moved
    r.failed()
    assert r.address("csms.example", 443) == "10.0.0.2"
    assert r.address("csms.example", 443) == "10.0.0.2"
    assert dns.asked == 2


def test_while_names_do_not_resolve_the_last_address_is_used():
    dns = Dns()
    r = Resolver(dns)
    r.address("csms.example", 443)
    dns.up = False
    r.failed()
    assert r.address("csms.example", 443) == "10.0.0.1"
    assert r.address("csms.example", 443) == "10.0.0.1"
    assert dns.asked == 3  # tried again each time until a connection works
    dns.up = True
    assert r.address("csms.example", 443) == "10.0.0.1"
    assert r.address("csms.example", 443) == "10.0.0.1"
    assert dns.asked == 4


def test_a_name_never_resolved_raises_oserror_for_the_link_to_retry():
    dns = Dns()
    dns.up = False
    r = Resolver(dns)
    for _ in range(3):
        try:
            r.address("csms.example", 443)
        except OSError:
            pass
        else:
            raise AssertionError("no OSError")
    dns.up = True
    assert r.address("csms.example", 443) == "10.0.0.1"


def test_ports_are_separate_entries():
    dns = Dns()
    r = Resolver(dns)
    r.address("csms.example", 443)
    r.address("csms.example", 80)
    r.failed()
    dns.up = False
    assert r.address("csms.example", 443) == "10.0.0.1"
    assert dns.asked == 2


def test_after_a_failed_lookup_the_next_waits_the_gap():
    # On a board a lookup with a dead DNS server stalls the loop for
    # seconds: during an outage, one lookup per gap, the last address between.
    now = [1000]
    dns = Dns()
    r = Resolver(dns, gap_ms=300000, ticks_ms=lambda: now[0])
    r.address("csms.example", 443)
    dns.up = False
    for _ in range(5):
        r.failed()
        assert r.address("csms.example", 443) == "10.0.0.1"
        now[0] += 10000
    assert dns.asked == 2  # the first lookup, and one failed one
    now[0] += 300000
    dns.up = True
    dns.table["csms.example"] = "10.0.0.9"
    r.failed()
    assert r.address("csms.example", 443) == "10.0.0.9"
    assert dns.asked == 3
