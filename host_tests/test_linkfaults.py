"""Link faults against the running firmware (issue 12, docs/reliability.md):
a short campaign of tools/linkfaults with a fixed seed, on the host's port
and on the 32-bit one. `make soak` runs 500 faults over 100 transactions."""
import pytest

import linkfaults_lib


@pytest.mark.unix32
def test_link_fault_campaign(interpreter, tmp_path):
    c = linkfaults_lib.Campaign(faults=12, transactions=3, seed=5, micropython=interpreter,
                                data_dir=str(tmp_path), log=lambda s: None)
    try:
        c.start()
        c.run()
        stats = c.finish()
    finally:
        c.close()
    print(linkfaults_lib.report(stats, c.failures, c.reconnect_s))
    assert c.failures == [], "\n".join(c.failures[:10])
    assert stats["transactions_run"] == 3 and stats["transactions"] == 3
    assert sum(stats["fault_" + k] for k in linkfaults_lib.KINDS) == 12
    assert stats["connections"] > 1  # the faults did cut the link
