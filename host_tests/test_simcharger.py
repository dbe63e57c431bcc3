"""The test harness's simulated charger (host_tests/simcharger.py)."""
import simcharger


def test_a_bench_port_taken_by_another_charger_is_noticed(csms, tmp_path, monkeypatch):
    # free_port() can give two chargers started at once the same number: the
    # second must not drive the first through it (a power-cut lane once read
    # another lane's boot counter), but start again on another port.
    a = simcharger.Charger(csms.url, str(tmp_path / "A"), cp_id="A").start()
    ports = [a.bench_port]
    real = simcharger.free_port
    monkeypatch.setattr(simcharger, "free_port", lambda: ports.pop() if ports else real())
    b = simcharger.Charger(csms.url, str(tmp_path / "B"), cp_id="B")
    try:
        b.start()
        assert b.bench_port != a.bench_port
        assert b.ok("ping")["data"] == str(tmp_path / "B")
        assert a.ok("ping")["data"] == str(tmp_path / "A")
    finally:
        b.stop()
        a.stop()


def test_heap_map_prints_the_gc_heap_to_the_log(charger):
    # The bench's view of fragmentation: the map goes to the console (the
    # log), the figures come back.
    n = len(charger.log_text())
    r = charger.ok("heap_map")
    assert r["free"] > 0 and r["alloc"] > 0
    charger.wait_log("GC memory layout", after=n)
    charger.wait_log("max free sz", after=n)
