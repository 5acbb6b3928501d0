#![cfg(feature = "cli")]
//! The `hookbus` binary end to end, as processes over real HTTP on 127.0.0.1:
//! `listen` on a free port, `send` to it with each scheme, `verify` on a
//! captured request, `--fail-rate` making the sender retry, the Ctrl-C
//! summary, exit codes and error messages.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use hookbus::signature::{Secret, SlackSignature};

const BIN: &str = env!("CARGO_BIN_EXE_hookbus");
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SCHEMES: [&str; 6] = [
    "standard",
    "briefcase",
    "timestamped",
    "github",
    "slack",
    "stripe",
];
/// A guard against a hung child, not a synchronisation.
const LINE_TIMEOUT: Duration = Duration::from_secs(20);

fn hookbus() -> Command {
    let mut c = Command::new(BIN);
    c.env_remove("HOOKBUS_SECRET");
    c
}

/// A running `hookbus listen`, killed when dropped.
struct Listener {
    child: Child,
    lines: mpsc::Receiver<String>,
    addr: String,
}

impl Listener {
    fn start(args: &[&str]) -> Listener {
        let mut child = hookbus()
            .args(["listen", "--port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn hookbus listen");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut listener = Listener {
            child,
            lines,
            addr: String::new(),
        };
        let first = listener.next_line();
        let addr = first
            .strip_prefix("listening on ")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected first line: {first}"));
        assert!(addr.starts_with("127.0.0.1:"), "{first}");
        listener.addr = addr.to_owned();
        assert!(
            !first.contains(SECRET),
            "the secret is never printed: {first}"
        );
        listener
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn next_line(&self) -> String {
        self.lines
            .recv_timeout(LINE_TIMEOUT)
            .expect("hookbus listen printed no line within 20 s")
    }

    /// The next `n` request lines.
    fn requests(&self, n: usize) -> Vec<String> {
        (0..n).map(|_| self.next_line()).collect()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Checks a finished command's exit code and that its stdout holds every
/// `needle`; returns the stdout.
#[track_caller]
fn expect(out: &Output, code: i32, needles: &[&str]) -> String {
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{stdout}{}",
        text(&out.stderr)
    );
    for needle in needles {
        assert!(stdout.contains(needle), "no {needle:?} in: {stdout}");
    }
    stdout
}

/// Checks a finished command's exit code and that its stderr holds `needle`.
#[track_caller]
fn expect_stderr(out: &Output, code: i32, needle: &str) -> String {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    assert!(stderr.contains(needle), "no {needle:?} in: {stderr}");
    stderr
}

fn send(url: &str, scheme: &str, secret: &str, extra: &[&str]) -> Output {
    hookbus()
        .args(["send", "--url", url, "--scheme", scheme, "--secret", secret])
        .args([
            "--type",
            "decision.captured",
            "--data",
            r#"{"decision_id":"abc123"}"#,
        ])
        .args(["--retry-delay-ms", "1"])
        .args(extra)
        .output()
        .expect("run hookbus send")
}

fn temp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let dir =
        std::env::temp_dir().join(format!("hookbus-cli-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn send_to_listen_with_each_scheme() {
    for scheme in SCHEMES {
        let listener = Listener::start(&["--secret", SECRET, "--scheme", scheme]);
        let out = send(&listener.url(), scheme, SECRET, &[]);
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "{scheme}: {stdout}{}",
            text(&out.stderr)
        );
        assert!(
            stdout.contains("  200  ") && stdout.contains("delivered"),
            "{scheme}: {stdout}"
        );
        assert!(
            stdout.contains(r#"response: {"status":"received"}"#),
            "{scheme}: {stdout}"
        );
        assert!(
            stdout.contains("sent 1 events") && stdout.contains("latency p50"),
            "{stdout}"
        );
        let line = listener.next_line();
        assert!(
            line.contains("POST /hook  decision.captured"),
            "{scheme}: {line}"
        );
        assert!(
            line.contains("sig ok") && line.ends_with("-> 200"),
            "{scheme}: {line}"
        );

        // The wrong secret: the receiver says why, answers 401, which is final.
        let out = send(&listener.url(), scheme, "not-the-secret", &[]);
        let stdout = expect(&out, 1, &["401", "attempts 1", "signature mismatch"]);
        assert!(
            !stdout.contains("not-the-secret"),
            "secrets are never printed"
        );
        let line = listener.next_line();
        assert!(
            line.contains("sig BAD (signature mismatch"),
            "{scheme}: {line}"
        );
    }
}

#[test]
fn send_in_each_cloudevents_mode() {
    for (mode, content_type) in [
        ("binary", "application/json"),
        ("structured", "application/cloudevents+json"),
        ("batched", "application/cloudevents-batch+json"),
    ] {
        let dir = temp_dir(mode);
        let listener = Listener::start(&[
            "--secret",
            SECRET,
            "--scheme",
            "standard",
            "--save",
            dir.to_str().unwrap(),
        ]);
        let out = send(&listener.url(), "standard", SECRET, &["--mode", mode]);
        expect(&out, 0, &["delivered"]);
        // The CLI says how it read the Standard Webhooks secret.
        assert!(
            text(&out.stderr)
                .contains("note: Standard Webhooks secret: whsec_ prefix, base64-decoded"),
            "{}",
            text(&out.stderr)
        );
        let line = listener.next_line();
        assert!(line.contains("sig ok"), "{mode}: {line}");
        let headers = std::fs::read_to_string(dir.join("0001.headers")).unwrap();
        assert!(
            headers
                .to_ascii_lowercase()
                .contains(&format!("content-type: {content_type}")),
            "{mode}: {headers}"
        );
        let body: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("0001.body")).unwrap()).unwrap();
        let data = match mode {
            "binary" => body,
            "structured" => body["data"].clone(),
            _ => body[0]["data"].clone(),
        };
        assert_eq!(data["decision_id"], "abc123", "{mode}");
    }
    // A secret without the prefix is read as the Standard Webhooks libraries
    // read it, and the CLI says so.
    let listener = Listener::start(&["--secret", &SECRET[6..], "--scheme", "standard"]);
    let out = send(&listener.url(), "standard", SECRET, &[]);
    expect(&out, 0, &["delivered"]);
    assert!(listener.next_line().contains("sig ok"));
}

#[test]
fn unsigned_requests_data_from_a_file_and_a_rate() {
    let listener = Listener::start(&["--scheme", "github", "-v"]);
    let dir = temp_dir("data");
    let file = dir.join("event.json");
    std::fs::write(&file, br#"{"pattern_id":"p_17","confidence":0.95}"#).unwrap();
    let out = hookbus()
        .args([
            "send",
            "--url",
            &listener.url(),
            "--type",
            "pattern_learned",
        ])
        .args(["--data", &format!("@{}", file.display())])
        .args(["--count", "3", "--rate", "200", "--mode", "binary"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("sent 3 events"),
        "{}",
        text(&out.stdout)
    );
    for _ in 0..3 {
        let line = listener.next_line();
        assert!(
            line.contains("pattern_learned") && line.contains("sig -"),
            "{line}"
        );
        assert!(
            line.contains(" 39 B ") && line.ends_with("-> 200"),
            "{line}"
        );
        // -v: the body follows its line (the data as compact JSON).
        assert_eq!(
            listener.next_line(),
            r#"{"confidence":0.95,"pattern_id":"p_17"}"#
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn verify_a_captured_request() {
    for scheme in SCHEMES {
        let dir = temp_dir(scheme);
        let listener = Listener::start(&[
            "--secret",
            SECRET,
            "--scheme",
            scheme,
            "--save",
            dir.to_str().unwrap(),
        ]);
        assert!(send(&listener.url(), scheme, SECRET, &[]).status.success());
        listener.next_line();
        let headers = format!("@{}", dir.join("0001.headers").display());
        let body = format!("@{}", dir.join("0001.body").display());
        let verify = |secret: &str, body: &str| {
            hookbus()
                .args(["verify", "--scheme", scheme, "--secret", secret])
                .args(["--header", &headers, "--body", body])
                .output()
                .unwrap()
        };
        let ok = verify(SECRET, &body);
        assert!(
            ok.status.success(),
            "{scheme}: {}{}",
            text(&ok.stdout),
            text(&ok.stderr)
        );
        assert!(text(&ok.stdout).starts_with("OK: "), "{}", text(&ok.stdout));

        let wrong = verify("other-secret", &body);
        assert_eq!(wrong.status.code(), Some(1));
        assert!(
            text(&wrong.stdout).contains("signature mismatch"),
            "{}",
            text(&wrong.stdout)
        );

        // A re-serialised body (a space added) does not verify, and the hint says why.
        let tampered = verify(SECRET, r#"{"decision_id": "abc123"}"#);
        assert_eq!(tampered.status.code(), Some(1));
        assert!(
            text(&tampered.stdout).contains("raw bytes"),
            "{}",
            text(&tampered.stdout)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn verify_says_what_is_missing_or_stale() {
    let missing = hookbus()
        .args(["verify", "--scheme", "slack", "--secret", SECRET])
        .args(["--header", "Content-Type: application/json", "--body", "{}"])
        .output()
        .unwrap();
    expect(&missing, 1, &["missing header X-Slack-Request-Timestamp"]);

    // A correctly signed but old Slack request: refused unless --max-age 0.
    let ts = "1531420618";
    let sig = SlackSignature::sign(&Secret::new(SECRET), ts, b"token=xyz");
    let run = |max_age: &str| {
        hookbus()
            .args([
                "verify",
                "--scheme",
                "slack",
                "--secret",
                SECRET,
                "--max-age",
                max_age,
            ])
            .args(["-H", &format!("X-Slack-Request-Timestamp: {ts}")])
            .args(["-H", &format!("X-Slack-Signature: {sig}")])
            .args(["--body", "token=xyz"])
            .output()
            .unwrap()
    };
    let stale = run("300");
    expect(&stale, 1, &["the tolerance is 300 s"]);
    let old_capture = run("0");
    assert!(
        old_capture.status.success(),
        "{}",
        text(&old_capture.stdout)
    );

    let malformed = hookbus()
        .args(["verify", "--scheme", "briefcase", "--secret", SECRET])
        .args(["-H", "X-Briefcase-Signature: md5=abc", "--body", "{}"])
        .output()
        .unwrap();
    assert_eq!(malformed.status.code(), Some(1));
    assert!(text(&malformed.stdout).contains("malformed header X-Briefcase-Signature"));
}

#[test]
fn fail_rate_makes_the_sender_retry() {
    let listener = Listener::start(&["--secret", SECRET, "--fail-rate", "0.5", "--seed", "7"]);
    // One request at a time, so the seeded faults fall the same way every run.
    // Both sides on their default scheme (Standard Webhooks).
    let out = send(
        &listener.url(),
        "standard",
        SECRET,
        &["--count", "20", "--concurrency", "1", "--attempts", "10"],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let summary = stdout.lines().last().unwrap();
    assert!(
        summary.starts_with("sent 20 events") && summary.contains("20 delivered, 0 failed"),
        "{summary}"
    );
    // "... 20 delivered, 0 failed, N retries; ..."
    let retries: u64 = summary
        .split(" retries;")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no retry count in {summary}"));
    assert!(retries > 0, "{summary}");
    // The sender shows each retried event with its attempts.
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("attempts 2") || l.contains("attempts 3")),
        "{stdout}"
    );
    assert!(
        text(&out.stderr).contains("progress: 20/20"),
        "{}",
        text(&out.stderr)
    );
    let lines = listener.requests(20 + retries as usize);
    let injected = lines
        .iter()
        .filter(|l| l.ends_with("-> 503 (injected)"))
        .count() as u64;
    assert_eq!(injected, retries, "every injected failure was retried once");
}

#[test]
fn always_failing_endpoint_exhausts_the_attempts() {
    let listener = Listener::start(&["--fail-rate", "1"]);
    let out = send(&listener.url(), "briefcase", SECRET, &["--attempts", "3"]);
    expect(
        &out,
        1,
        &["attempts 3", "FAILED: HTTP 503 after 3 attempt(s)"],
    );
    assert!(text(&out.stderr).contains("1 of 1 events were not delivered"));
    assert_eq!(listener.requests(3).len(), 3);
}

#[test]
fn ctrl_c_prints_a_summary_and_exits_0() {
    let mut listener = Listener::start(&["--secret", SECRET, "--scheme", "standard"]);
    assert!(
        send(&listener.url(), "standard", SECRET, &[])
            .status
            .success()
    );
    assert!(
        !send(&listener.url(), "standard", "wrong", &[])
            .status
            .success()
    );
    listener.requests(2);
    let pid = listener.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let summary = listener.next_line();
    assert_eq!(
        summary,
        "summary: 2 requests: 1 verified, 1 bad signature, 0 unsigned; 0 failures injected"
    );
    let status = listener.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn bad_input_exits_2_and_says_what_to_fix() {
    let listener = Listener::start(&[]);
    let out = hookbus()
        .args([
            "send",
            "--url",
            &listener.url(),
            "--type",
            "a.b",
            "--data",
            "not json",
        ])
        .output()
        .unwrap();
    expect_stderr(&out, 2, "--data is not valid JSON");

    let out = send("http://hooks.example.com/x", "briefcase", SECRET, &[]);
    expect_stderr(&out, 2, "--allow-http");

    let out = send(&listener.url(), "standard", "whsec_!!!", &[]);
    expect_stderr(&out, 2, "whsec_");
    assert!(
        !text(&out.stderr).contains("whsec_!!!"),
        "the secret is never printed"
    );

    let out = hookbus()
        .args(["listen", "--fail-rate", "2"])
        .output()
        .unwrap();
    expect_stderr(&out, 2, "outside 0..=1");

    let out = hookbus()
        .args([
            "verify", "--scheme", "github", "--header", "X: 1", "--body", "{}",
        ])
        .output()
        .unwrap();
    expect_stderr(&out, 2, "HOOKBUS_SECRET");

    // A port in use: exit 3.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = hookbus()
        .args(["listen", "--port", &port])
        .output()
        .unwrap();
    expect_stderr(&out, 3, "cannot listen on");
}

#[test]
fn help_documents_every_command_and_the_exit_codes() {
    for args in [
        &["--help"][..],
        &["listen", "--help"],
        &["send", "--help"],
        &["verify", "--help"],
    ] {
        let out = hookbus().args(args).output().unwrap();
        assert!(out.status.success());
        let help = text(&out.stdout);
        assert!(
            help.contains("Exit codes:") && help.contains("  3  "),
            "{args:?}: {help}"
        );
    }
    let help = text(&hookbus().args(["send", "--help"]).output().unwrap().stdout);
    for flag in [
        "--url",
        "--secret",
        "--scheme",
        "--type",
        "--data",
        "--count",
        "--rate",
        "--concurrency",
    ] {
        assert!(help.contains(flag), "send --help lacks {flag}");
    }
    let help = text(
        &hookbus()
            .args(["listen", "--help"])
            .output()
            .unwrap()
            .stdout,
    );
    for word in [
        "--port",
        "--fail-rate",
        "--delay-ms",
        "--save",
        "standard",
        "slack",
        "github",
        "timestamped",
    ] {
        assert!(help.contains(word), "listen --help lacks {word}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_with_dashboard_prints_its_url_and_feeds_it() {
    let listener = Listener::start(&["--dashboard"]);
    let line = listener.next_line();
    let url = line
        .strip_prefix("dashboard: ")
        .unwrap_or_else(|| panic!("unexpected second line: {line}"));
    let (base, token) = url.split_once("/#token=").expect("a token in the fragment");
    assert!(base.starts_with("http://127.0.0.1:"), "{url}");
    assert!(token.len() >= 32, "{url}");

    let out = hookbus()
        .args(["send", "--url", &listener.url(), "--type", "order.created"])
        .args(["--data", r#"{"id": 1}"#])
        .output()
        .unwrap();
    expect(&out, 0, &[]);
    listener.requests(1);

    let http = reqwest::Client::new();
    let refused = http
        .get(format!("{base}/api/overview"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let overview: serde_json::Value = http
        .get(format!("{base}/api/overview"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Received before the answer was sent: on the bus by the time `send`
    // exited (no subscriber yet, so counted as unmatched).
    assert_eq!(overview["unmatched"], 1, "{overview}");
}
