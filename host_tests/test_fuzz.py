"""Fuzzed CSMS frames against the whole running firmware (issue 12,
docs/reliability.md): a short campaign of tools/fuzz with a fixed seed, on
the host's port and (fewer frames) on the 32-bit port. `make soak` runs
100,000 frames on both."""
import pytest

import fuzz_lib

FRAMES = {"host": 2000, "unix32": 600}


@pytest.mark.unix32
def test_fuzz_campaign(interpreter, tmp_path, request):
    kind = "unix32" if interpreter else "host"
    # The heap in use after the run may exceed its start by 2 KiB at most
    # (Campaign's default): a leak that grows with the frames fails here.
    c = fuzz_lib.Campaign(frames=FRAMES[kind], seed=12, micropython=interpreter,
                          data_dir=str(tmp_path), log=lambda s: None, heap="512k")
    try:
        c.start()
        c.run()
        stats = c.finish()
    finally:
        c.close()
    print(fuzz_lib.report(c.stats))
    assert c.failures == [], "\n".join(c.failures[:20])
    assert stats["crashes"] == 0
    assert stats["frames"] == FRAMES[kind]
    # every category was sent
    assert set(stats["by_category"]) >= {
        "valid", "mutated", "wrong_action", "bad_type_id", "bad_id", "bad_shape", "not_json",
        "answer_frames", "binary", "invalid_utf8", "fragments", "duplicate_id", "long_message"}
