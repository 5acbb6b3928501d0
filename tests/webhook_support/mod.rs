//! A real HTTP receiver on 127.0.0.1 (ephemeral port) for the webhook tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: std::time::Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("body is JSON")
    }
    fn structured(&self) -> bool {
        self.header("content-type") == Some("application/cloudevents+json")
    }
    /// The event's data, in structured mode (the default: the body's
    /// `data`) and binary mode (the body) alike.
    pub fn data(&self) -> serde_json::Value {
        let body = self.json();
        if self.structured() {
            body["data"].clone()
        } else {
            body
        }
    }
    /// The event's id: the body's `id` in structured mode, `ce-id` in
    /// binary mode.
    pub fn event_id(&self) -> Option<String> {
        if self.structured() {
            self.json()["id"].as_str().map(str::to_owned)
        } else {
            self.header("ce-id").map(str::to_owned)
        }
    }
    /// The event's type: the body's `type` in structured mode, `ce-type`
    /// in binary mode.
    pub fn event_type(&self) -> Option<String> {
        if self.structured() {
            self.json()["type"].as_str().map(str::to_owned)
        } else {
            self.header("ce-type").map(str::to_owned)
        }
    }
}

type Responder = dyn Fn(&Received, usize) -> Response + Send + Sync;

pub struct Receiver {
    pub url: String,
    pub addr: std::net::SocketAddr,
    rx: mpsc::UnboundedReceiver<Received>,
    pub count: Arc<AtomicUsize>,
}

impl Receiver {
    /// Answers 200 `{"status":"received"}` to everything.
    pub async fn ok() -> Receiver {
        Receiver::start(|_, _| (StatusCode::OK, r#"{"status":"received"}"#).into_response()).await
    }

    /// `respond(request, n)` decides the answer; `n` counts requests from 0.
    pub async fn start(
        respond: impl Fn(&Received, usize) -> Response + Send + Sync + 'static,
    ) -> Receiver {
        let (tx, rx) = mpsc::unbounded_channel();
        let count = Arc::new(AtomicUsize::new(0));
        let respond: Arc<Responder> = Arc::new(respond);
        let c = count.clone();
        let app = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let tx = tx.clone();
                let respond = respond.clone();
                let c = c.clone();
                async move {
                    let r = Received {
                        method,
                        path: uri.path().to_owned(),
                        headers,
                        body,
                        at: std::time::Instant::now(),
                    };
                    let n = c.fetch_add(1, Ordering::SeqCst);
                    let resp = respond(&r, n);
                    let _ = tx.send(r);
                    resp
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            url: format!("http://{addr}/hook"),
            addr,
            rx,
            count,
        }
    }

    /// Takes requests and never answers them (for timeout tests).
    pub async fn hanging() -> Receiver {
        let (tx, rx) = mpsc::unbounded_channel();
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        let app = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let tx = tx.clone();
                let c = c.clone();
                async move {
                    c.fetch_add(1, Ordering::SeqCst);
                    let _ = tx.send(Received {
                        method,
                        path: uri.path().to_owned(),
                        headers,
                        body,
                        at: std::time::Instant::now(),
                    });
                    std::future::pending::<()>().await;
                    StatusCode::OK
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            url: format!("http://{addr}/hook"),
            addr,
            rx,
            count,
        }
    }

    /// The next request (fails the test if none comes within 20 s, so a bug
    /// cannot hang the suite; this is a guard, not a synchronisation).
    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(20), self.rx.recv())
            .await
            .expect("no request reached the receiver within 20 s")
            .expect("receiver closed")
    }

    /// Whatever has arrived so far, without waiting.
    pub fn drain(&mut self) -> Vec<Received> {
        let mut v = Vec::new();
        while let Ok(r) = self.rx.try_recv() {
            v.push(r);
        }
        v
    }

    pub fn requests(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

/// Hex HMAC-SHA256 computed independently of the crate's signing code path.
pub fn hmac_hex(key: &[u8], msg: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    m.update(msg);
    hex::encode(m.finalize().into_bytes())
}

pub fn hmac_b64(key: &[u8], msg: &[u8]) -> String {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    m.update(msg);
    base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes())
}

/// Fast retries for tests: `n` attempts, 1–5 ms apart, no jitter.
pub fn fast_retry(n: u32) -> hookbus::webhook::RetryPolicy {
    hookbus::webhook::RetryPolicy::exponential(
        n,
        Duration::from_millis(1),
        Duration::from_millis(5),
    )
    .with_jitter(0.0)
}
