//! The CLI's defaults against the official Standard Webhooks library and
//! against the library's defaults: `hookbus send` with nothing but a URL
//! and a `whsec_` secret verifies with Python's `standardwebhooks` (and with
//! a check written from the spec), what the official library signs verifies
//! in `hookbus listen` with its defaults, and a default `WebhookEmitter`
//! verifies there too.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use hookbus::Event;
use hookbus::webhook::WebhookEmitter;
use serde_json::json;

use crate::python;

const BIN: &str = env!("CARGO_BIN_EXE_hookbus");
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// A guard against a hung child, not a synchronisation.
const LINE_TIMEOUT: Duration = Duration::from_secs(20);

/// A child process whose stdout lines arrive on a channel; killed when
/// dropped.
pub struct Lines {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Lines {
    pub fn spawn(command: &mut Command) -> Lines {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines { child, lines }
    }

    pub fn next(&self) -> String {
        self.lines
            .recv_timeout(LINE_TIMEOUT)
            .expect("the child printed no line within 20 s")
    }

    /// Lines until the child exits.
    pub fn rest(mut self) -> Vec<String> {
        let _ = self.child.wait();
        self.lines.try_iter().collect()
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn hookbus() -> Command {
    let mut c = Command::new(BIN);
    c.env_remove("HOOKBUS_SECRET");
    c
}

/// `hookbus listen --port 0` with `args`; the child and its URL.
pub fn listen(args: &[&str]) -> (Lines, String) {
    let lines = Lines::spawn(hookbus().args(["listen", "--port", "0"]).args(args));
    let first = lines.next();
    let addr = first
        .strip_prefix("listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_owned();
    (lines, format!("http://{addr}/hook"))
}

/// A one-request HTTP server in Python that verifies with the official
/// `standardwebhooks` library and with HMAC-SHA256 as the spec words it,
/// answers 200 when both accept (401 otherwise) and prints what it found.
const PY_RECEIVER: &str = r#"
import base64, hashlib, hmac, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer
import standardwebhooks

secret = sys.argv[1]

class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        headers = {k.lower(): v for k, v in self.headers.items()}
        ok = True
        try:
            standardwebhooks.Webhook(secret).verify(body, headers)
            print("official: ok", flush=True)
        except Exception as e:
            ok = False
            print("official: FAILED", repr(e), flush=True)
        # The spec: base64 HMAC-SHA256 of "{id}.{timestamp}.{body}" under the
        # base64 key after "whsec_", one of the space-separated "v1,<sig>".
        key = base64.b64decode(secret[len("whsec_"):])
        content = (headers["webhook-id"] + "." + headers["webhook-timestamp"] + ".").encode() + body
        expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
        sigs = [s[3:] for s in headers["webhook-signature"].split(" ") if s.startswith("v1,")]
        fresh = abs(time.time() - int(headers["webhook-timestamp"])) <= 300
        if fresh and any(hmac.compare_digest(expected, s) for s in sigs):
            print("spec: ok", flush=True)
        else:
            ok = False
            print("spec: FAILED", flush=True)
        print("content-type: " + headers.get("content-type", ""), flush=True)
        print("body: " + body.decode(), flush=True)
        self.send_response(200 if ok else 401)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

server = HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.handle_request()
"#;

#[test]
fn cli_send_defaults_verify_with_the_official_library() {
    if !python::require(
        "cli_send_defaults_verify_with_the_official_library",
        &["standardwebhooks"],
    ) {
        return;
    }
    let receiver = Lines::spawn(Command::new("python3").args(["-c", PY_RECEIVER, SECRET]));
    let port = receiver.next();
    let out = hookbus()
        .args(["send", "--url", &format!("http://127.0.0.1:{port}/hook")])
        .args(["--secret", SECRET, "--type", "order.paid"])
        .args(["--data", r#"{"order_id":42}"#, "--attempts", "1"])
        .output()
        .expect("run hookbus send");
    let found = receiver.rest().join("\n");
    assert!(
        out.status.success(),
        "send failed: {}{}\nthe Python receiver said:\n{found}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(found.contains("official: ok"), "{found}");
    assert!(found.contains("spec: ok"), "{found}");
    // Structured mode: the whole event, attributes included, is signed.
    assert!(
        found.contains("content-type: application/cloudevents+json"),
        "{found}"
    );
    assert!(found.contains(r#""type":"order.paid""#), "{found}");
}

/// Signs with the official library and POSTs to the URL in argv.
const PY_SENDER: &str = r#"
import sys, urllib.request, urllib.error
from datetime import datetime, timezone
import standardwebhooks

url, secret = sys.argv[1], sys.argv[2]
body = b'{"specversion":"1.0","id":"evt_py_1","source":"python","type":"order.paid","data":{"order_id":7}}'
msg_id = "msg_py_1"
now = datetime.now(tz=timezone.utc)
signature = standardwebhooks.Webhook(secret).sign(msg_id, now, body)
request = urllib.request.Request(url, data=body, method="POST", headers={
    "content-type": "application/cloudevents+json",
    "webhook-id": msg_id,
    "webhook-timestamp": str(int(now.timestamp())),
    "webhook-signature": signature,
})
try:
    print(urllib.request.urlopen(request).status)
except urllib.error.HTTPError as e:
    print(e.code)
"#;

#[test]
fn the_official_library_signs_what_listen_verifies_by_default() {
    if !python::require(
        "the_official_library_signs_what_listen_verifies_by_default",
        &["standardwebhooks"],
    ) {
        return;
    }
    let (listener, url) = listen(&["--secret", SECRET]);
    let out = Command::new("python3")
        .args(["-c", PY_SENDER, &url, SECRET])
        .output()
        .expect("python3 runs");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "200",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = listener.next();
    assert!(line.contains("sig ok"), "{line}");
    assert!(line.contains("order.paid"), "{line}");
    assert!(line.contains("evt_py_1"), "{line}");
}

#[tokio::test]
async fn library_defaults_verify_in_listen_defaults() {
    let (listener, url) = listen(&["--secret", SECRET]);
    let emitter = WebhookEmitter::builder(&url)
        .secret(SECRET)
        .build_emitter()
        .unwrap();
    let event = Event::new("order.paid", json!({"order_id": 42})).unwrap();
    let id = event.id().to_owned();
    let outcome = emitter.emit(event).await;
    assert!(outcome.is_delivered(), "{outcome:?}");
    let line = listener.next();
    assert!(line.contains("sig ok"), "{line}");
    // The type and id are read from the structured body.
    assert!(line.contains("order.paid"), "{line}");
    assert!(line.contains(&id), "{line}");
}
