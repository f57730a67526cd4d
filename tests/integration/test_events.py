"""Events reach a webhook receiver as JSON, signed, in order, retried when
the receiver fails, and are listed by GET /api/v1/events."""

from __future__ import annotations

import json
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from seeker.events import SIGNATURE_HEADER, verify_webhook
from tests.integration.conftest import make_cluster
from tests.integration.harness import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.docker]


SECRET = "webhook-secret"


class Receiver:
    """A webhook receiver on loopback that refuses its first post (500), and
    counts the posts whose signature does not verify."""

    def __init__(self):
        self.got: list[dict] = []
        self.refused = 0
        self.unsigned = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                signature = self.headers.get(SIGNATURE_HEADER, "")
                if not verify_webhook(SECRET, signature, raw, time.time()):
                    receiver.unsigned += 1
                body = json.loads(raw)
                if receiver.refused == 0:
                    receiver.refused += 1
                    self.send_response(500)
                else:
                    receiver.got.append(body)
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, mongo_url, workload_image, receiver):
    s = make_cluster(
        tmp_path_factory,
        mongo_url,
        "events",
        "--probe-interval",
        "0.5",
        "--notify-url",
        receiver.url,
        "--notify-secret",
        SECRET,
    )
    yield s
    s.stop()


def test_events_reach_the_webhook_in_order_and_after_a_failure(
    fleet, cluster, receiver, workload_image
):
    add, client = fleet
    svc = add("ev-helper")
    ok = client.wait(client.submit(workload_image, ["true"])["task_id"], timeout=60)
    bad = client.wait(client.submit(workload_image, ["sh", "-c", "exit 4"])["task_id"], timeout=60)
    svc.stop(signal.SIGKILL)  # purged after three failed probes
    wait_until(lambda: len(receiver.got) >= 3, 60, "three events at the receiver")
    assert receiver.refused == 1  # the first post failed and was sent again
    assert receiver.unsigned == 0  # every post, the retried one too, carried a good signature
    kinds = [(e["type"], e.get("task_id") or e.get("helper_name")) for e in receiver.got]
    assert kinds == [
        ("task.succeeded", ok["task_id"]),
        ("task.failed", bad["task_id"]),
        ("helper.purged", "ev-helper"),
    ]
    seqs = [e["seq"] for e in receiver.got]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    assert receiver.got[1]["error"] == "container exited with code 4"
    assert receiver.got[2]["failures"] == 3

    listed = requests.get(
        f"{cluster.seeker_url}/api/v1/events",
        timeout=5,
        headers={"Authorization": f"Bearer {cluster.token}"},
        params={"after": seqs[0]},
    ).json()
    assert [e["seq"] for e in listed["events"]] == seqs[1:]
    assert listed["next"] == seqs[-1]
