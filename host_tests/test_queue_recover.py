"""Recovery corners of the message queue that need a power cut at an exact
instruction, made by running the firmware in micropython up to that point
and exiting there, then booting the simulated charger on the same flash
(issue 3: a cut between queuing a StopTransaction and forgetting the
transaction must not send a second StopTransaction)."""
import json
import os
import subprocess
import time

import pytest

from harness import MICROPYTHON, mp_env

QUEUES = pytest.mark.parametrize("queue", ["lfs", "ring"])

# Runs inside micropython: start a transaction, queue its StopTransaction,
# and lose the power before the transaction file is deleted.
CUT_AFTER_STOP = r"""
import sys, json
data, queue, prov = sys.argv[1], sys.argv[2], sys.argv[3]
from mpocpp_board.board import Board
from mpocpp.charger import Charger
board = Board(data, connectors=1, queue=queue)
with open(prov) as f:
    p = json.load(f)
cp = Charger(board, p, {"csmsUrl": "ws://127.0.0.1:9/ocpp", "chargeBoxId": "CP1"})
conn = cp.connectors[1]
assert cp.sessions._use()._start(conn, "TAG1", None)  # (the session code, loaded)
print("placeholder", conn.tx.id)

def cut():
    print("power cut")
    sys.exit(3)

from mpocpp.model import transaction
transaction.drop = lambda d, cid: cut()  # the cut comes as the file would go
cp.sessions.stop(conn, "Local", "TAG1")
print("not reached")
"""


def run_mp(tmp_path, script, *args):
    path = tmp_path / "cut.py"
    path.write_text(script)
    p = subprocess.run([MICROPYTHON, "-X", "heapsize=2M", str(path)] + list(args),
                       env=mp_env(), capture_output=True, text=True, timeout=60)
    return p


@QUEUES
def test_cut_between_stop_queued_and_transaction_forgotten(csms, charger_factory, tmp_path,
                                                           queue):
    ch = charger_factory(start=False, queue=queue)
    os.makedirs(ch.data_dir, exist_ok=True)
    prov = os.path.join(ch.data_dir, "provisioning.json")
    with open(prov, "w") as f:
        json.dump(ch.config, f)
    p = run_mp(tmp_path, CUT_AFTER_STOP, ch.data_dir, queue, prov)
    assert p.returncode == 3 and "power cut" in p.stdout, p.stdout + p.stderr
    assert os.path.exists(os.path.join(ch.data_dir, "flash.bin"))
    m = csms.mark()
    ch.start()
    stop = csms.wait_for("StopTransaction", after=m, timeout=15)
    time.sleep(1.0)
    acts = [x.action for x in csms.messages[m:] if x.direction == "in" and x.type == 2
            and x.action != "SecurityEventNotification"]  # the boots' events, same stream
    assert acts[:5] == ["BootNotification", "StatusNotification", "StatusNotification",
                        "StartTransaction", "StopTransaction"], acts
    stops = csms.calls("StopTransaction", after=m)
    assert len(stops) == 1, [x.payload for x in stops]  # no second one with PowerLoss
    assert stop.payload["reason"] == "Local"  # always sent, Local included
    assert stop.payload["idTag"] == "TAG1"
    st = csms.wait_for("StartTransaction", direction="out", after=m)
    assert stop.payload["transactionId"] == st.payload["transactionId"]
    assert ch.connector(1)["transaction"] is None
    assert "interrupted by power loss" not in ch.log_text()


# Runs inside micropython: a lower-priority store as small as one littlefs
# segment (or two ring sectors) keeps taking new records once its old ones
# are dropped, and keeps the newest, in order, across a remount.
SMALL_OTHER_STORE = r"""
import sys, os
kind, d = sys.argv[1], sys.argv[2]
from mpocpp.queue.messages import MessageQueue
if kind == "lfs":
    from mpocpp.queue.lfs import LfsStore
    def stores():
        return (LfsStore(d + "/t", 8192), LfsStore(d + "/o", 4096))
else:
    from mpocpp_board.norflash import NorFlash
    from mpocpp.queue.ring import RingStore
    dev = NorFlash(4 * 4096)
    def stores():
        return (RingStore(dev, 0, 2), RingStore(dev, 2, 2))
q = MessageQueue(stores(), lambda: 3, lambda: 1)
q.mount()
for i in range(40):
    p = {"connectorId": 0, "meterValue": [{"timestamp": "2026-01-01T00:00:%02dZ" % i,
         "sampledValue": [{"value": "%04d" % i + "x" * 1000}]}]}
    assert q.push("MeterValues", p, txn=False) is not None, i
q = MessageQueue(stores(), lambda: 3, lambda: 1)
q.mount()
got = []
while True:
    it = q.peek(0)
    if it is None:
        break
    got.append(int(it.payload["meterValue"][0]["sampledValue"][0]["value"][:4]))
    q.delivered(it.qid, {})
print("kept", got)
assert got and got[-1] == 39 and got == list(range(got[0], 40)), got
print("OK")
"""


@QUEUES
def test_small_other_store_keeps_newest(tmp_path, queue):
    p = run_mp(tmp_path, SMALL_OTHER_STORE, queue, str(tmp_path))
    assert p.returncode == 0 and "OK" in p.stdout, p.stdout + p.stderr
