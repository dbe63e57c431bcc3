"""Power cuts of the running firmware (issue 12, docs/reliability.md): a
short campaign of tools/powercut with a fixed seed, on the host's port and
on the 32-bit one. `make soak` runs 10,000 cuts."""
import os

import pytest

import powercut_lib

CUTS = {"host": 25, "unix32": 15}


@pytest.mark.unix32
def test_power_cut_campaign(interpreter, tmp_path):
    kind = "unix32" if interpreter else "host"
    c = powercut_lib.Campaign(cuts=CUTS[kind], seed=7, micropython=interpreter,
                              data_dir=str(tmp_path), log=lambda s: None)
    try:
        c.start()
        c.run()
        stats = c.finish()
    finally:
        c.close()
    print(powercut_lib.report(stats, c.failures))
    assert c.failures == [], "\n".join(c.failures[:10])
    assert stats["cuts"] == CUTS[kind]
    # the campaign did what it is for: sessions cut and stopped, keys read back
    assert stats["transactions"] >= 3 and stats["key_checks"] >= 2


def test_lanes_share_the_cuts_and_sum_the_figures(tmp_path):
    # make soak's way: chargers cut side by side, each on its own flash
    stats, failures = powercut_lib.run_lanes(2, 5, seed=4, data_dir=str(tmp_path),
                                             log=lambda s: None)
    print(powercut_lib.report(stats, failures))
    assert failures == [], "\n".join(failures[:10])
    assert stats["cuts"] == 5 and stats["transactions"] >= 1
    assert sorted(os.listdir(str(tmp_path))) == ["lane0", "lane1"]


def test_power_cuts_with_the_queue_on_the_flash_ring(tmp_path):
    # the queue on a raw flash region (an ESP32 with a queue partition),
    # where a cut tears the ring's own records, not littlefs's
    stats, failures = powercut_lib.run_lanes(1, 12, seed=9, data_dir=str(tmp_path),
                                             log=lambda s: None, queue="ring")
    print(powercut_lib.report(stats, failures))
    assert failures == [], "\n".join(failures[:10])
    assert stats["cuts"] == 12 and stats["transactions"] >= 2
    assert os.path.getsize(os.path.join(str(tmp_path), "CP1", "queue.bin")) > 0
