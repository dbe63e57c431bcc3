"""The bench page in a real browser: headless Chromium (Debian's chromium and
chromium-driver) driven by selenium, against `tools/run` (what `make run`
starts: the bench CSMS with its page, and the simulated charger).

A person's session from the page alone: plug in, swipe, Charging with a
rising energy plot, RemoteStopTransaction from the call form, Finishing,
plug out, Available, then a power cut and power on with the reboot shown.
Screenshots go to build/test-output/benchpage/."""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from harness import ROOT
from simcharger import free_port

SHOTS = os.path.join(ROOT, "build", "test-output", "benchpage")
_NO_BROWSER = (
    "no headless browser here: install Debian's chromium and chromium-driver "
    "(`apt-get install -y chromium chromium-driver`, as .ci/run does when it runs as root)"
)


def _browser_paths():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip(_NO_BROWSER)
    return chromium, driver


@pytest.fixture
def browser():
    chromium, driver = _browser_paths()
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium is missing: run `make venv`"
    )
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1500"):
        opts.add_argument(arg)
    opts.binary_location = chromium
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(driver), options=opts)
    d.implicitly_wait(0)
    yield d
    errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
    d.quit()
    assert not errors, "the page logged errors: %r" % errors


@pytest.fixture
def bench_run(tmp_path):
    """tools/run on free ports; yields (page URL, control port, output lines)."""
    ports = {k: free_port() for k in ("port", "http-port", "web-port", "bench-port")}
    cmd = [sys.executable, os.path.join(ROOT, "tools", "run"), "--fresh", "--data", str(tmp_path)]
    for k, v in ports.items():
        cmd += ["--" + k, str(v)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, env=dict(os.environ, NO_COLOR="1"))
    lines = []

    def read():
        for line in iter(proc.stdout.readline, b""):
            lines.append(line.decode(errors="replace").rstrip())
    threading.Thread(target=read, daemon=True).start()
    url = "http://127.0.0.1:%d/" % ports["web-port"]
    deadline = time.time() + 30
    while not any("CP1 <- BootNotification.conf" in line for line in lines):
        assert proc.poll() is None and time.time() < deadline, (
            "tools/run did not start:\n" + "\n".join(lines)
        )
        time.sleep(0.1)
    yield url, ports["http-port"], lines
    proc.send_signal(signal.SIGTERM)  # tools/run stops the CSMS and the charger
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    deadline = time.time() + 10
    while subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True).returncode == 0:
        assert time.time() < deadline, "tools/run left its charger running"
        time.sleep(0.2)


def _wait(d, what, pred, timeout=30):
    from selenium.webdriver.support.ui import WebDriverWait
    try:
        return WebDriverWait(d, timeout, poll_frequency=0.2).until(pred)
    except Exception:
        _shot(d, "failed-" + what.replace(" ", "-"))
        raise AssertionError("the page never showed %s" % what)


def _shot(d, name):
    os.makedirs(SHOTS, exist_ok=True)
    path = os.path.join(SHOTS, name + ".png")
    d.save_screenshot(path)
    print("screenshot:", path)
    return path


def _field(root, name):
    return root.find_element("css selector", '[data-field="%s"]' % name).text


def _click(d, op, root=None):
    (root or d).find_element("css selector", '[data-op="%s"]' % op).click()


def test_a_session_from_the_page(browser, bench_run):
    url, http_port, lines = bench_run
    d = browser
    d.get(url)
    _wait(d, "the live badge", lambda d: d.find_element("id", "ws-status").text == "live")
    cp = d.find_element("css selector", '[data-cp="CP1"]')
    _wait(d, "connector 1", lambda d: cp.find_elements("css selector", '[data-connector="1"]'))
    con = cp.find_element("css selector", '[data-connector="1"]')
    _wait(d, "Available", lambda d: _field(con, "status") == "Available")
    assert _field(cp, "connection") == "online" and _field(cp, "registration") == "Accepted"
    assert _field(cp, "queue") == "0" and "KiB" in _field(cp, "heap")
    assert "rgb(0, 255, 0)" in cp.find_element("css selector", ".led").get_attribute("style")

    _click(d, "plug_in", con)
    _wait(d, "Preparing", lambda d: _field(con, "status") == "Preparing")
    tag = cp.find_element("css selector", "input.idtag")
    tag.clear()
    tag.send_keys("CAFE42")
    _click(d, "swipe", cp)
    _wait(d, "Charging", lambda d: _field(con, "status") == "Charging")
    assert _field(con, "idTag") == "CAFE42" and _field(con, "relay") == "closed"
    assert cp.find_element("css selector", "button.tag").text == "CAFE42"  # recent idTags
    plot = con.find_element("css selector", "canvas.plot")
    _wait(d, "energy on the plot", lambda d: float(plot.get_attribute("data-energy") or 0) > 0)
    first = float(plot.get_attribute("data-energy"))
    _wait(d, "the energy rising", lambda d: float(plot.get_attribute("data-energy")) > first + 2)
    assert int(plot.get_attribute("data-points")) >= 3
    _shot(d, "1-charging")

    tx = _field(con, "transaction")
    form = d.find_element("id", "call-form")
    from selenium.webdriver.support.ui import Select
    Select(form.find_element("id", "call-action")).select_by_value("RemoteStopTransaction")
    form.find_element("css selector", 'input[name="transactionId"]').send_keys(tx)
    assert json.loads(form.find_element("id", "call-payload").get_attribute("value")) == {
        "transactionId": int(tx)
    }
    form.find_element("id", "call-send").click()
    answer = d.find_element("id", "call-answer")
    _wait(d, "the RemoteStop answer", lambda d: "Accepted" in answer.text)
    assert answer.text.startswith("RemoteStopTransaction.conf")
    _wait(d, "Finishing", lambda d: _field(con, "status") == "Finishing")
    rows = d.find_elements("css selector", '#traffic tr[data-action="RemoteStopTransaction"]')
    assert {r.get_attribute("data-type") for r in rows} >= {"CALL", "CALLRESULT"}
    assert any(" ms" in r.text for r in rows if r.get_attribute("data-type") == "CALLRESULT")
    _click(d, "plug_out", con)
    _wait(d, "Available again", lambda d: _field(con, "status") == "Available")
    _shot(d, "2-finished")

    # the traffic filter, and a frame that breaks the schema in red
    bad = json.dumps(
        {"action": "Reset", "payload": {"type": "Sideways"}, "validate": False}
    ).encode()
    req = urllib.request.Request("http://127.0.0.1:%d/call/CP1" % http_port, data=bad,
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=15).read()
    _wait(d, "the invalid Reset in red", lambda d: d.find_elements(
        "css selector", '#traffic tr.bad[data-action="Reset"]'))
    d.find_element("id", "filter-text").send_keys("RemoteStop")
    shown = [r for r in d.find_elements("css selector", "#traffic tbody tr") if r.is_displayed()]
    assert shown and all(r.get_attribute("data-action") == "RemoteStopTransaction" for r in shown)
    d.find_element("id", "filter-text").clear()

    boot = _field(cp, "boot")
    _click(d, "power-off", cp)
    _wait(d, "the power cut", lambda d: _field(cp, "power").startswith("off"))
    assert any("CP1: power cut" in line for line in lines)
    _shot(d, "3-power-cut")
    _click(d, "power-on", cp)
    _wait(d, "the charger back", lambda d: _field(cp, "boot") == "#%d" % (int(boot[1:]) + 1)
          and _field(cp, "connection") == "online", timeout=45)
    events = d.find_element("id", "events").text
    assert "power cut" in events and "rebooted (boot #%d)" % (int(boot[1:]) + 1) in events
    _wait(d, "Available after the reboot", lambda d: _field(con, "status") == "Available")
    _shot(d, "4-rebooted")
