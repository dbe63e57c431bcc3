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
