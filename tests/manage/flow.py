# The Rubric guide's flow against `hookbus serve`, as a client written in
# another language does it: `requests` for the API, a receiver on
# http.server that verifies each delivery with the official
# `standardwebhooks` package and the secret the API returned.
# argv: the API's base URL, a tenant's token. Prints "ok" at the end.
import json
import queue
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import requests
from standardwebhooks import Webhook

API, TOKEN = sys.argv[1], sys.argv[2]
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DEADLINE = time.monotonic() + 30
received = queue.Queue()
secret_box = {}


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        try:
            # Raises unless the signature verifies with the given secret.
            Webhook(secret_box["secret"]).verify(body, dict(self.headers))
            received.put(json.loads(body))
            self.send_response(200)
        except Exception as e:  # a bad signature fails the flow below
            received.put({"error": repr(e)})
            self.send_response(400)
        self.end_headers()

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Receiver)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{server.server_address[1]}/webhooks/rubric"


def next_delivery():
    event = received.get(timeout=max(0.1, DEADLINE - time.monotonic()))
    assert "error" not in event, event
    return event


def call(method, path, body=None, expect=200):
    r = requests.request(method, API + path, headers=AUTH, json=body, timeout=30)
    assert r.status_code == expect, (method, path, r.status_code, r.text)
    return r.json() if r.content else None


assert requests.get(API + "/v1/webhooks", timeout=30).status_code == 401

webhook = call("POST", "/v1/webhooks", {
    "name": "production-notifications",
    "url": url,
    "events": ["evaluation.completed", "review.completed", "alert.triggered", "safety.critical"],
    "filters": {"severity": ["high", "critical"]},
    "retry_config": {"max_retries": 0, "backoff": "exponential", "initial_delay_ms": 1000},
}, expect=201)
wid, secret_box["secret"] = webhook["id"], webhook["secret"]
assert secret_box["secret"].startswith("whsec_")
assert all("secret" not in w for w in call("GET", "/v1/webhooks")["data"])

for severity in ["low", "critical"]:
    call("POST", "/v1/events", {"type": "alert.triggered", "data": {"severity": severity}}, expect=202)
event = next_delivery()
assert event["type"] == "alert.triggered" and event["data"]["severity"] == "critical", event

test = call("POST", f"/v1/webhooks/{wid}/test",
            {"event_type": "evaluation.completed", "payload": {"evaluation_id": "eval_test"}})
assert test["status"] == "success" and test["response_code"] == 200, test
assert next_delivery()["data"]["evaluation_id"] == "eval_test"

# The first delivery is logged once its answer is read: it may lag the
# receiver's queue by a moment.
deliveries = []
while len(deliveries) < 2:
    assert time.monotonic() < DEADLINE, deliveries
    deliveries = call("GET", f"/v1/webhooks/{wid}/deliveries?limit=100")["data"]
assert len(deliveries) == 2 and all(d["success"] for d in deliveries), deliveries

call("POST", f"/v1/webhooks/{wid}/disable")
call("POST", "/v1/events", {"type": "safety.critical", "data": {"severity": "critical"}}, expect=202)
while call("GET", f"/v1/webhooks/{wid}")["failed_events"] != 1:
    assert time.monotonic() < DEADLINE, "the refused event never showed"
call("POST", f"/v1/webhooks/{wid}/enable")
retried = call("POST", f"/v1/webhooks/{wid}/retry_failed", {"since": "2024-03-15T00:00:00Z"}, expect=202)
assert retried["retried"] == 1, retried
assert next_delivery()["type"] == "safety.critical"

call("DELETE", f"/v1/webhooks/{wid}", expect=204)
r = requests.get(f"{API}/v1/webhooks/{wid}", headers=AUTH, timeout=30)
assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json", r
print("ok")
