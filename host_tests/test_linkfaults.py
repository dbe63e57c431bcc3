"""Link faults against the running firmware (issue 12, docs/reliability.md):
a short campaign of tools/linkfaults with a fixed seed, on the host's port
and on the 32-bit one. `make soak` runs 500 faults over 100 transactions."""
import pytest

import linkfaults_lib


def _campaign(interpreter, tmp_path, **kw):
    # -> the stats and the charger's log of a campaign run to its end
    c = linkfaults_lib.Campaign(micropython=interpreter, data_dir=str(tmp_path),
                                log=lambda s: None, **kw)
    try:
        c.start()
        c.run()
        stats = c.finish()
        log = c.charger.log_text()
    finally:
        c.close()
    print(linkfaults_lib.report(stats, c.failures, c.reconnect_s))
    assert c.failures == [], "\n".join(c.failures[:10])
    return stats, log


@pytest.mark.unix32
def test_link_fault_campaign(interpreter, tmp_path):
    stats, _ = _campaign(interpreter, tmp_path, faults=12, transactions=3, seed=5)
    assert stats["transactions_run"] == 3 and stats["transactions"] == 3
    assert sum(stats["fault_" + k] for k in linkfaults_lib.KINDS) == 12
    assert stats["connections"] > 1  # the faults did cut the link


@pytest.mark.unix32
def test_a_dead_dns_does_not_take_the_charger_offline(interpreter, tmp_path):
    # Only dns faults: the charger connects by name; each fault kills the
    # connection with nothing listening at the address while the name does
    # not resolve, so the board must resolve again, fail, and come back on
    # the last address that worked.
    stats, log = _campaign(interpreter, tmp_path, faults=3, transactions=1, seed=2,
                           kinds=("dns",))
    assert stats["fault_dns"] == 3 and stats["dns_lookups_failed"] >= 3
    assert "cannot resolve localhost" in log and "trying its last address" in log
    assert stats["transactions"] == 1
