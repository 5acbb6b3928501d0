//! `hookbus serve` as a child process: the Rubric guide's flow over HTTP,
//! tokens, SIGTERM, and restarts (also after SIGKILL).

use std::path::Path;
use std::process::Stdio;

use hookbus::testing::Reply;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use super::{ACME, Api, GLOBEX, LONG, receiver, verified};

pub(crate) struct Serve {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    pub(crate) api: Api,
}

async fn serve(data: &Path) -> Serve {
    serve_with(data, &[]).await
}

/// `hookbus serve` on DIR with acme's token as a flag, globex's in the
/// environment, and `extra` arguments.
pub(crate) async fn serve_with(data: &Path, extra: &[&str]) -> Serve {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hookbus"))
        .args(["serve", "--listen", "127.0.0.1:0", "--allow-loopback"])
        .arg("--data")
        .arg(data)
        .args(["--token", &format!("acme={ACME}")])
        .args(extra)
        .env("HOOKBUS_TOKENS", format!("globex={GLOBEX}"))
        .env_remove("HOOKBUS_INGRESS")
        .env_remove("HOOKBUS_DASHBOARD_TOKEN")
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
    pub(crate) async fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>) {
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

/// A JSON config file with a bit of everything; a flag overrides its
/// `listen` (an address that could not be bound).
fn config_file(dir: &Path, dashboard_token: &str) -> std::path::PathBuf {
    let path = dir.join("serve.json");
    std::fs::write(
        &path,
        serde_json::to_vec_pretty(&json!({
            "listen": "192.0.2.1:1",
            "tokens": {"acme": "file-token-overridden-by-the-flag", "initech": "tok-initech"},
            "allow_loopback": true,
            "max_endpoints": 5,
            "drain_timeout": 5,
            "ingress": [
                {"tenant": "acme", "kind": "cloudevents", "secret": INGRESS_SECRET},
                {"tenant": "acme", "kind": "github", "secret_file": dir.join("gh-secret")},
            ],
            "dashboard_token": dashboard_token,
            "metrics": true,
        }))
        .unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("gh-secret"), "gh-ingress-secret\n").unwrap();
    path
}

const INGRESS_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The ingress of `hookbus serve`: a signed CloudEvent, a signed GitHub
/// delivery and a signed Slack command in on acme's routes reach acme's
/// webhook (and not globex's,
/// even when the sender names globex as the tenant); a bad signature is
/// 401 and delivers nothing. Settings from a config file, flags over it;
/// the dashboard and /metrics are served.
#[tokio::test]
async fn serve_from_a_config_file_takes_signed_events_in_for_its_tenant() {
    use hookbus::signature::{BodySignature, Secret};
    use hookbus::webhook::WebhookSink;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let dash = "dashboard-token-0123456789";
    let config = config_file(dir.path(), dash);
    // One more ingress route as a flag, beside the file's.
    let server = serve_with(
        &data,
        &[
            "--config",
            config.to_str().unwrap(),
            "--ingress",
            "acme:slack=slack-signing-secret",
        ],
    )
    .await;
    let api = &server.api;
    // The flag's token won over the file's; the file's other tenant is in.
    assert!(api.list(ACME).await.is_empty());
    assert!(api.list("tok-initech").await.is_empty());
    api.call(
        "GET",
        "/v1/webhooks",
        "file-token-overridden-by-the-flag",
        None,
    )
    .await
    .assert_problem(401, None);

    let (rx_acme, rx_globex) = (receiver().await, receiver().await);
    let a = api
        .create(ACME, &rx_acme.url(), &["order.*", "github.**", "slack.**"])
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    let acme_secret = a.body["secret"].as_str().unwrap().to_owned();
    let g = api.create(GLOBEX, &rx_globex.url(), &["*"]).await;
    assert_eq!(g.status, 201, "{g:?}");

    // A signed CloudEvent, as a hookbus webhook sends it; it claims to be
    // globex's: the route's tenant wins.
    let sender = WebhookSink::builder(format!("{}/ingress/acme/cloudevents", api.base()))
        .secret(INGRESS_SECRET)
        .build()
        .unwrap();
    let event = hookbus::Event::builder("order.placed")
        .data(json!({"n": 1}))
        .extension("tenant", "globex")
        .build()
        .unwrap();
    let out = sender.send(&[std::sync::Arc::new(event)]).await;
    assert_eq!(out.status_code, Some(200), "{out:?}");
    let got = rx_acme.wait_for(1).await.unwrap();
    let body = verified(&got[0], &acme_secret);
    assert_eq!(body["type"], "order.placed");
    assert_eq!(body["tenant"], "acme");

    // The same with a wrong secret: 401, nothing delivered.
    let forger = WebhookSink::builder(format!("{}/ingress/acme/cloudevents", api.base()))
        .secret("whsec_QmFkQmFkQmFkQmFkQmFkQmFkQmFkQmFkQmFk")
        .build()
        .unwrap();
    let out = forger
        .send(&[std::sync::Arc::new(
            hookbus::Event::new("order.forged", json!({})).unwrap(),
        )])
        .await;
    assert_eq!(out.status_code, Some(401), "{out:?}");

    // A GitHub delivery, signed with the secret from the file.
    let gh_body = r#"{"action":"opened","number":7,"repository":{"full_name":"octo/repo"}}"#;
    let sig = BodySignature::github().sign(&Secret::new("gh-ingress-secret"), gh_body.as_bytes());
    let resp = reqwest::Client::new()
        .post(format!("{}/ingress/acme/github", api.base()))
        .header("content-type", "application/json")
        .header("X-GitHub-Event", "pull_request")
        .header("X-GitHub-Delivery", "d6a7a3a4-0000-4000-8000-000000000001")
        .header("X-Hub-Signature-256", sig)
        .body(gh_body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let got = rx_acme.wait_for(2).await.unwrap();
    let body = verified(&got[1], &acme_secret);
    assert_eq!(body["type"], "github.pull_request.opened");
    // A Slack slash command, signed with the flag's secret.
    let form = "command=%2Fdeploy&text=prod&trigger_id=13345224609.738474920.8088930838d88f008e0";
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let sig = hookbus::signature::SlackSignature::sign(
        &Secret::new("slack-signing-secret"),
        &ts,
        form.as_bytes(),
    );
    let resp = reqwest::Client::new()
        .post(format!("{}/ingress/acme/slack", api.base()))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("X-Slack-Request-Timestamp", ts)
        .header("X-Slack-Signature", sig)
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let got = rx_acme.wait_for(3).await.unwrap();
    let body = verified(&got[2], &acme_secret);
    assert_eq!(body["type"], "slack.command.deploy");
    assert_eq!(body["tenant"], "acme");
    // Globex got nothing of acme's: an event of its own now arrives first.
    api.emit(GLOBEX, "own.event", json!({})).await;
    let got = rx_globex.wait_for(1).await.unwrap();
    assert_eq!(got[0].json().unwrap()["type"], "own.event");

    // The dashboard, behind its token, and /metrics.
    let client = reqwest::Client::new();
    let page = client
        .get(format!("{}/dashboard/", api.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("<html"));
    let overview = format!("{}/dashboard/api/overview", api.base());
    assert_eq!(client.get(&overview).send().await.unwrap().status(), 401);
    let resp = client
        .get(&overview)
        .bearer_auth(dash)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let m = client
        .get(format!("{}/metrics", api.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(m.status(), 200);
    let text = m.text().await.unwrap();
    assert!(text.contains("hookbus_bus_emitted_total"), "{text}");
    assert!(text.contains("hookbus_webhook_delivered_total"), "{text}");

    let (status, rest) = server.terminate().await;
    assert!(status.success(), "{status:?}");
    let all = rest.join("\n");
    for secret in [
        INGRESS_SECRET,
        "gh-ingress-secret",
        "slack-signing-secret",
        dash,
        ACME,
        &acme_secret,
    ] {
        assert!(!all.contains(secret), "a secret printed: {all}");
    }
}

/// A config file with an unknown key, or a bad value, is refused with the
/// key named; so are bad ingress routes given as flags.
#[tokio::test]
async fn serve_refuses_a_bad_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.json");
    for (config, says) in [
        (
            json!({"tokens": {"acme": "tok-acme-1"}, "listn": "127.0.0.1:0"}),
            "unknown field `listn`",
        ),
        (
            json!({"tokens": {"acme": "tok-acme-1"}, "rate_limit": {"requests": 1, "every": 2}}),
            "unknown field `every`",
        ),
        (
            json!({"tokens": {"acme": "tok-acme-1"}, "ingress": [{"tenant": "acme", "kind": "ftp", "secret": "x"}]}),
            "unknown variant `ftp`",
        ),
        (
            json!({"tokens": {"acme": "tok-acme-1"}, "ingress": [{"tenant": "acme", "kind": "github"}]}),
            "needs one of",
        ),
        (
            json!({"tokens": {"acme": "tok-acme-1"}, "max_endpoints": "many"}),
            "expected usize at line 1",
        ),
    ] {
        std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_hookbus"))
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&path)
            .arg("--data")
            .arg(dir.path().join("data"))
            .env_remove("HOOKBUS_TOKENS")
            .env_remove("HOOKBUS_INGRESS")
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{config}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{config}: {err}");
    }
    for flag in ["acme=whsec_x", "acme:ftp=secret", "a b:github=secret"] {
        let out = Command::new(env!("CARGO_BIN_EXE_hookbus"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--token",
                "acme=tok-acme-1",
            ])
            .arg("--data")
            .arg(dir.path().join("data"))
            .args(["--ingress", flag])
            .env_remove("HOOKBUS_TOKENS")
            .env_remove("HOOKBUS_INGRESS")
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("secret") || err.contains("not shown"),
            "{err}"
        );
    }
}

/// Each tenant has its own request budget; past it, 429 with Retry-After
/// as problem details, on the API and on /v1/events alike, and the
/// refused request does nothing.
#[tokio::test]
async fn a_tenant_over_its_rate_limit_gets_429() {
    let dir = tempfile::tempdir().unwrap();
    // Three requests an hour: the budget does not come back during the test.
    let server = serve_with(dir.path(), &["--rate-limit", "3", "--rate-period", "3600"]).await;
    let api = &server.api;
    let rx = receiver().await;
    let a = api.create(ACME, &rx.url(), &["order.*"]).await;
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!(
        api.emit(ACME, "order.placed", json!({"n": 1})).await.status,
        202
    );
    assert_eq!(
        api.call("GET", "/v1/webhooks", ACME, None).await.status,
        200
    );
    for refused in [
        api.emit(ACME, "order.placed", json!({"n": 2})).await,
        api.call("GET", "/v1/webhooks", ACME, None).await,
        api.create(ACME, &rx.url(), &["other.*"]).await,
    ] {
        refused.assert_problem(429, None);
        assert!(
            refused.body["detail"]
                .as_str()
                .unwrap()
                .contains("retry in")
        );
    }
    // Retry-After, in whole seconds.
    let resp = reqwest::Client::new()
        .get(format!("{}/v1/webhooks", api.base()))
        .bearer_auth(ACME)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let secs: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&secs), "{secs}");
    // Another tenant's budget is its own.
    assert!(api.list(GLOBEX).await.is_empty());
    // The refused create made nothing, the refused event went nowhere: the
    // one event delivered is n = 1.
    let got = rx.wait_for(1).await.unwrap();
    assert_eq!(got[0].json().unwrap()["data"]["n"], 1);
    let (status, _) = server.terminate().await;
    assert!(status.success());
    assert_eq!(rx.requests().len(), 1);
}

/// SIGTERM with a delivery that never ends and a dashboard stream open:
/// serve stops anyway once the drain deadline has passed, and the
/// delivery, still pending, is sent again after the next start.
#[tokio::test]
async fn sigterm_drains_within_the_deadline_and_keeps_what_is_left() {
    // A receiver that takes requests and never answers; it says when one
    // arrives, and with which webhook-id.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (arrived_tx, mut arrived) = tokio::sync::mpsc::unbounded_channel::<String>();
    let stalled = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            let tx = arrived_tx.clone();
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            use tokio::io::AsyncReadExt;
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = conn.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buf[..n]);
            }
            let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
            let id = text
                .lines()
                .find_map(|l| l.strip_prefix("webhook-id:"))
                .unwrap_or("")
                .trim()
                .to_owned();
            let _ = tx.send(id);
            held.push(conn);
        }
    });

    let dir = tempfile::tempdir().unwrap();
    let dash = "dashboard-token-0123456789";
    let server = serve_with(
        dir.path(),
        &["--drain-timeout", "1", "--dashboard-token", dash],
    )
    .await;
    // An open dashboard stream, which a graceful stop alone would wait for.
    let stream = reqwest::Client::new()
        .get(format!(
            "{}/dashboard/api/stream?pattern=*&token={dash}",
            server.api.base()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let created = server
        .api
        .call(
            "POST",
            "/v1/webhooks",
            ACME,
            // Retries for minutes: without the deadline, serve would
            // wait for them.
            Some(json!({"name": "stalled", "url": url, "events": ["order.*"],
                        "retry_config": {"max_retries": 20, "initial_delay_ms": 100}})),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(
        server
            .api
            .emit(ACME, "order.placed", json!({}))
            .await
            .status,
        202
    );
    let first = tokio::time::timeout(LONG, arrived.recv())
        .await
        .expect("the delivery is under way")
        .unwrap();
    // The delivery hangs and the stream is open; SIGTERM must still end
    // the process (terminate fails the test if it does not end within
    // LONG; the webhook would retry for minutes).
    let (status, rest) = server.terminate().await;
    drop(stream);
    assert!(status.success(), "{status:?}");
    assert!(
        rest.iter().any(|l| l.contains("hookbus serve: stopped")),
        "{rest:?}"
    );

    // After a restart the same event is sent again: it was kept.
    let server = serve_with(dir.path(), &["--drain-timeout", "1"]).await;
    let again = tokio::time::timeout(LONG, arrived.recv())
        .await
        .expect("the pending delivery is sent after the restart")
        .unwrap();
    assert_eq!(again, first);
    let (status, _) = server.terminate().await;
    assert!(status.success());
    stalled.abort();
}

/// SIGTERM sent the moment the address is printed stops serve cleanly
/// (drained, exit 0): the handler is installed before the address is
/// printed. (It used to be installed only once the server ran, and a
/// signal in between killed the process undrained, about one time in two.)
#[tokio::test]
async fn sigterm_right_after_the_address_stops_cleanly() {
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let server = serve_with(dir.path(), &[]).await;
        let (status, rest) = server.terminate().await;
        assert!(status.success(), "{status:?}");
        assert!(
            rest.iter().any(|l| l.contains("hookbus serve: stopped")),
            "{rest:?}"
        );
    }
}
