//! `hookbus serve` as a child process: the Rubric guide's flow over HTTP,
//! tokens, SIGTERM, and restarts (also after SIGKILL).

use std::path::Path;
use std::process::Stdio;

use hookbus::testing::Reply;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use super::{ACME, Api, GLOBEX, LONG, receiver, verified};

struct Serve {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    api: Api,
}

async fn serve(data: &Path) -> Serve {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hookbus"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--allow-loopback",
            "--data",
        ])
        .arg(data)
        .args(["--token", &format!("acme={ACME}")])
        .env("HOOKBUS_TOKENS", format!("globex={GLOBEX}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(LONG, lines.next_line())
        .await
        .expect("serve prints its address")
        .unwrap()
        .expect("a line");
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_owned();
    Serve {
        child,
        lines,
        api: Api::new(url),
    }
}

impl Serve {
    /// SIGTERM, then the exit status and what it printed last.
    async fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let pid = self.child.id().unwrap().to_string();
        let killed = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(killed.success());
        let status = tokio::time::timeout(LONG, self.child.wait())
            .await
            .expect("serve stops on SIGTERM")
            .unwrap();
        let mut rest = Vec::new();
        while let Ok(Some(l)) = self.lines.next_line().await {
            rest.push(l);
        }
        (status, rest)
    }
}

/// The Rubric guide's flow, as its Python client does it, against a real
/// `hookbus serve`: create (the secret comes back), post events, a real
/// receiver verifies each delivery with that secret, the delivery list,
/// test, disable, retry_failed, delete.
#[tokio::test]
async fn the_rubric_flow_against_hookbus_serve() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path()).await;
    let api = &server.api;
    let rx = receiver().await;

    // No token, a wrong one: 401.
    api.raw("GET", "/v1/webhooks", None, None)
        .await
        .assert_problem(401, None);
    api.call("GET", "/v1/webhooks", "wrong-token", None)
        .await
        .assert_problem(401, None);

    let created = api
        .call(
            "POST",
            "/v1/webhooks",
            ACME,
            Some(json!({
                "name": "production-notifications",
                "url": rx.url(),
                "events": ["evaluation.completed", "review.completed", "alert.triggered", "safety.critical"],
                "filters": {"severity": ["high", "critical"]},
                "retry_config": {"max_retries": 0, "backoff": "exponential", "initial_delay_ms": 1000},
            })),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let id = created.body["id"].as_str().unwrap().to_owned();
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));

    // Posted events: the filter lets the high one through only.
    for severity in ["low", "high"] {
        let a = api
            .call(
                "POST",
                "/v1/events",
                ACME,
                Some(json!({"type": "alert.triggered", "data": {"severity": severity}})),
            )
            .await;
        assert_eq!(a.status, 202, "{a:?}");
    }
    let got = rx.wait_for(1).await.unwrap();
    let body = verified(&got[0], &secret);
    assert_eq!(body["data"]["severity"], "high");

    // test: status, response_code, response_body.
    let t = api
        .call(
            "POST",
            &format!("/v1/webhooks/{id}/test"),
            ACME,
            Some(json!({"event_type": "evaluation.completed", "payload": {"evaluation_id": "eval_test"}})),
        )
        .await;
    assert_eq!(t.body["status"], "success", "{t:?}");
    assert_eq!(t.body["response_code"], 200);
    let got = rx.wait_for(2).await.unwrap();
    verified(&got[1], &secret);

    // The delivery history.
    let d = api
        .call(
            "GET",
            &format!("/v1/webhooks/{id}/deliveries?limit=100"),
            ACME,
            None,
        )
        .await;
    assert_eq!(d.status, 200);
    let data = d.body["data"].as_array().unwrap();
    assert!(!data.is_empty());
    assert!(
        data.iter()
            .all(|x| x["success"] == true && x["response_code"] == 200)
    );

    // Another tenant sees nothing of it.
    assert!(api.list(GLOBEX).await.is_empty());
    api.call("GET", &format!("/v1/webhooks/{id}"), GLOBEX, None)
        .await
        .assert_problem(404, None);

    // Disable: events are kept; enable and retry_failed send them.
    api.call("POST", &format!("/v1/webhooks/{id}/disable"), ACME, None)
        .await;
    api.call(
        "POST",
        "/v1/events",
        ACME,
        Some(json!({"type": "safety.critical", "data": {"severity": "critical"}})),
    )
    .await;
    let get = format!("/v1/webhooks/{id}");
    super::until("the refused event", || async {
        api.call("GET", &get, ACME, None).await.body["failed_events"] == 1
    })
    .await;
    api.call("POST", &format!("/v1/webhooks/{id}/enable"), ACME, None)
        .await;
    let r = api
        .call(
            "POST",
            &format!("/v1/webhooks/{id}/retry_failed"),
            ACME,
            Some(json!({"since": "2024-03-15T00:00:00Z"})),
        )
        .await;
    assert_eq!(r.status, 202);
    assert_eq!(r.body["retried"], 1);
    let got = rx.wait_for(3).await.unwrap();
    assert_eq!(verified(&got[2], &secret)["type"], "safety.critical");

    // Delete.
    assert_eq!(api.call("DELETE", &get, ACME, None).await.status, 204);
    api.call("GET", &get, ACME, None)
        .await
        .assert_problem(404, None);

    let (status, rest) = server.terminate().await;
    assert!(status.success(), "{status:?}");
    assert!(
        rest.iter().any(|l| l.contains("hookbus serve: stopped")),
        "{rest:?}"
    );
    assert!(!rest.iter().any(|l| l.contains(&secret)));
}

/// A restart keeps endpoints and secrets; deliveries pending when the
/// process was killed (SIGKILL) are sent after the next start.
#[tokio::test]
async fn a_killed_serve_resumes_pending_deliveries_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rx = receiver().await;
    rx.set_default_reply(Reply::unavailable()).unwrap();
    let mut server = serve(dir.path()).await;
    let created = server
        .api
        .call(
            "POST",
            "/v1/webhooks",
            ACME,
            Some(json!({
                "name": "orders",
                "url": rx.url(),
                "events": ["order.*"],
                "retry_config": {"max_retries": 20, "initial_delay_ms": 200, "max_delay_ms": 200},
            })),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    let before = server.api.list(ACME).await;
    for n in 0..3 {
        let a = server.api.emit(ACME, "order.placed", json!({"n": n})).await;
        assert_eq!(a.status, 202);
    }
    // Each was tried (503) and is waiting for a retry, in the store.
    rx.wait_for(3).await.unwrap();
    server.child.kill().await.unwrap();

    rx.set_default_reply(Reply::ok()).unwrap();
    let server = serve(dir.path()).await;
    assert_eq!(server.api.list(ACME).await, before, "the endpoint is kept");
    let accepted = |reqs: &[hookbus::testing::ReceivedRequest]| {
        let mut ns: Vec<i64> = reqs
            .iter()
            .filter(|r| r.status.is_success())
            .map(|r| verified(r, &secret)["data"]["n"].as_i64().unwrap())
            .collect();
        ns.sort();
        ns.dedup();
        ns
    };
    rx.wait_until("the three events delivered", |reqs| {
        accepted(reqs).len() == 3
    })
    .await
    .unwrap();
    assert_eq!(accepted(&rx.requests()), vec![0, 1, 2]);
    let (status, _) = server.terminate().await;
    assert!(status.success());
}

/// The same flow from Python, with `requests` and the official
/// `standardwebhooks` package verifying each delivery (skipped with a
/// message where they cannot be imported, except under CI).
#[tokio::test]
async fn the_rubric_flow_from_python() {
    if !super::python::require(
        "the_rubric_flow_from_python",
        &["requests", "standardwebhooks"],
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path()).await;
    let base = server.api.base().to_owned();
    let script = include_str!("flow.py");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args(["-c", script, &base, ACME])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    let (status, _) = server.terminate().await;
    assert!(status.success());
}

/// Bad flags: no token, a malformed one.
#[tokio::test]
async fn serve_refuses_bad_tokens() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec![],
        vec!["--token", "acme"],
        vec!["--token", "acme=short"],
        vec!["--token", "a b=longenough-token"],
        vec![
            "--token",
            "a=longenough-token",
            "--token",
            "b=longenough-token",
        ],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_hookbus"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(dir.path())
            .args(&args)
            .env_remove("HOOKBUS_TOKENS")
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("longenough"), "a token printed: {err}");
    }
}
