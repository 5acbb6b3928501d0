//! The webhook management API (`hookbus::manage`, feature `manage`), over
//! real HTTP on 127.0.0.1: the router served by axum, webhooks delivered to
//! real receivers, and `hookbus serve` as a child process.
//!
//! Modules: `api` (the contract: create, list, patch, test, deliveries,
//! disable, retry_failed, delete, events), `isolation` (tenants attacking
//! each other), `input` (bad input: problem details, nothing changed),
//! `persist` (restart keeps endpoints, secrets and state; feature
//! `durable`), `serve` (the `hookbus serve` binary; feature `cli` +
//! `durable`), `kafka_out` (`serve` publishing to Kafka; feature `kafka`,
//! run under `scripts/with-kafka`).
#![cfg(all(feature = "manage", feature = "testing"))]

mod api;
mod input;
mod isolation;
#[cfg(all(feature = "durable", feature = "cli", feature = "kafka"))]
mod kafka_out;
#[cfg(all(feature = "durable", feature = "cli", feature = "kafka"))]
#[path = "../kafka_support/mod.rs"]
mod kafka_support;
#[cfg(feature = "durable")]
mod persist;
#[cfg(all(feature = "durable", feature = "cli"))]
#[path = "../trust/python.rs"]
mod python;
#[cfg(all(feature = "durable", feature = "cli"))]
mod serve;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use hookbus::Bus;
use hookbus::manage::{Manage, ManageBuilder};
use hookbus::testing::{ReceivedRequest, TestReceiver};
use hookbus::verify::Verifier;
use serde_json::{Value, json};

/// Long enough for anything on a loaded machine; a test waits on signals,
/// this only bounds a test that fails.
pub const LONG: Duration = Duration::from_secs(30);

pub const ACME: &str = "tok-acme";
pub const GLOBEX: &str = "tok-globex";

/// Bearer tokens to tenants, as an application would check them.
pub fn tokens() -> HashMap<String, String> {
    HashMap::from([
        (ACME.to_owned(), "acme".to_owned()),
        (GLOBEX.to_owned(), "globex".to_owned()),
    ])
}

/// The settings every in-process test uses: tenants from Bearer tokens,
/// loopback receivers allowed.
pub fn builder(bus: &Bus) -> ManageBuilder {
    let tokens = tokens();
    Manage::builder(bus)
        .identify(move |req| {
            let auth = req.headers.get("authorization")?.to_str().ok()?;
            let token = auth.strip_prefix("Bearer ")?;
            tokens.get(token).cloned()
        })
        .allow_loopback(true)
}

/// A management API served on 127.0.0.1.
pub struct Server {
    pub addr: SocketAddr,
    pub manage: Manage,
    pub bus: Bus,
    task: tokio::task::JoinHandle<()>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Server {
    pub async fn start(bus: &Bus, builder: ManageBuilder) -> Server {
        let manage = builder.build().expect("manage builds");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = manage.router();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Server {
            addr,
            manage,
            bus: bus.clone(),
            task,
            stop: Some(stop),
        }
    }

    pub async fn new() -> Server {
        let bus = Bus::new().unwrap();
        Server::start(&bus, builder(&bus)).await
    }

    /// Stops serving and waits until the server task (and the router it
    /// holds) is gone.
    pub async fn stop(mut self) -> Bus {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = std::mem::replace(&mut self.task, tokio::spawn(async {}));
        task.await.unwrap();
        self.bus.clone()
    }

    pub fn api(&self) -> Api {
        Api::new(format!("http://{}", self.addr))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A plain HTTP client of the API.
#[derive(Clone)]
pub struct Api {
    base: String,
    client: reqwest::Client,
}

/// An answer: status, content type and body (JSON, or Null when empty).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
}

impl Answer {
    /// Asserts a problem-details answer of `status` naming `field`.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, field: Option<&str>) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.content_type, "application/problem+json", "{self:?}");
        assert_eq!(self.body["status"], status, "{self:?}");
        assert!(self.body["title"].is_string(), "{self:?}");
        assert!(self.body["detail"].is_string(), "{self:?}");
        assert_eq!(self.body["field"].as_str(), field, "{self:?}");
    }
}

impl Api {
    pub fn new(base: String) -> Api {
        Api {
            base,
            client: reqwest::Client::new(),
        }
    }

    /// The API's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let resp = req.send().await.expect("the API answers");
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let bytes = resp.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Answer {
            status,
            content_type,
            body,
        }
    }

    pub async fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Answer {
        self.raw(
            method,
            path,
            Some(token),
            body.map(|b| serde_json::to_vec(&b).unwrap()),
        )
        .await
    }

    /// Creates a webhook for `token`'s tenant to `url` on `events`, with no
    /// retries (a failure is dead-lettered at once); returns the answer.
    pub async fn create(&self, token: &str, url: &str, events: &[&str]) -> Answer {
        self.call(
            "POST",
            "/v1/webhooks",
            token,
            Some(json!({
                "name": "test-endpoint",
                "url": url,
                "events": events,
                "retry_config": {"max_retries": 0},
            })),
        )
        .await
    }

    pub async fn list(&self, token: &str) -> Vec<Value> {
        let a = self.call("GET", "/v1/webhooks", token, None).await;
        assert_eq!(a.status, 200, "{a:?}");
        a.body["data"].as_array().unwrap().clone()
    }

    pub async fn emit(&self, token: &str, ty: &str, data: Value) -> Answer {
        self.call(
            "POST",
            "/v1/events",
            token,
            Some(json!({"type": ty, "data": data})),
        )
        .await
    }
}

/// A receiver that records requests without checking them (each test
/// verifies with the secret the API gave it).
pub async fn receiver() -> TestReceiver {
    TestReceiver::builder()
        .wait_timeout(LONG)
        .start()
        .await
        .unwrap()
}

/// Verifies a delivery's Standard Webhooks signature with `secret`, and
/// returns its body as JSON.
#[track_caller]
pub fn verified(req: &ReceivedRequest, secret: &str) -> Value {
    let verifier = Verifier::standard_webhooks(secret).expect("a whsec_ secret");
    verifier
        .verify(&req.headers, &req.body)
        .unwrap_or_else(|e| panic!("the delivery does not verify with its secret: {e}"));
    req.json().expect("a JSON body")
}

/// Polls `check` (an API call) until it holds, yielding between tries;
/// fails after [`LONG`]. For states the API shows but announces nowhere.
pub async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + LONG;
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::task::yield_now().await;
    }
}

/// Whether `python3` can import every module in `modules`.
pub fn python_can(modules: &[&str]) -> bool {
    let script: String = modules.iter().map(|m| format!("import {m}\n")).collect();
    std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .is_ok_and(|o| o.status.success())
}
