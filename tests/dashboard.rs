#![cfg(all(feature = "dashboard", feature = "testing"))]
//! The dashboard over real HTTP: the token is required (and compared as a
//! whole), the JSON API pages 1,000 endpoints, the actions retry, disable
//! and enable real webhooks against a real receiver, and the SSE stream
//! sends the overview and the events matching its pattern.

use std::sync::Arc;
use std::time::Duration;

use hookbus::dashboard::{self, DashboardConfig, DashboardError, DashboardServer};
use hookbus::testing::{Reply, TestReceiver};
use hookbus::webhook::{RetryPolicy, WebhookManager, WebhookSink};
use hookbus::{Bus, Event};
use serde_json::{Value, json};

const TOKEN: &str = "test-token-0123456789";

struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    fn new(server: &DashboardServer) -> Client {
        Client {
            base: format!("http://{}", server.addr()),
            http: reqwest::Client::new(),
        }
    }

    async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.unwrap()
    }

    async fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }
}

async fn start(bus: &Bus, manager: Arc<WebhookManager>) -> DashboardServer {
    dashboard::serve(bus, manager, DashboardConfig::new(TOKEN))
        .await
        .unwrap()
}

#[tokio::test]
async fn bad_settings_are_refused_at_construction() {
    let bus = Bus::new().unwrap();
    let manager = Arc::new(WebhookManager::new(&bus));
    let refuse = |c: DashboardConfig| dashboard::router(&bus, manager.clone(), c).unwrap_err();
    assert!(matches!(
        refuse(DashboardConfig::new("short")),
        DashboardError::TokenTooShort
    ));
    assert!(matches!(
        refuse(DashboardConfig::new("has a space in the token")),
        DashboardError::TokenNotPrintable
    ));
    assert!(matches!(
        refuse(DashboardConfig::new(TOKEN).sample_every(Duration::ZERO)),
        DashboardError::SampleInterval(_)
    ));
    assert!(matches!(
        refuse(DashboardConfig::new(TOKEN).page_size(0)),
        DashboardError::PageSize(0)
    ));
    assert!(matches!(
        refuse(DashboardConfig::new(TOKEN).max_streams(0)),
        DashboardError::MaxStreams(0)
    ));
    assert!(matches!(
        refuse(DashboardConfig::new(TOKEN).write_timeout(Duration::ZERO)),
        DashboardError::WriteTimeout(_)
    ));
    let random = DashboardConfig::with_random_token();
    assert!(random.token().len() >= 32);
    assert_ne!(random.token(), DashboardConfig::with_random_token().token());
    assert!(!format!("{random:?}").contains(random.token()), "redacted");
    bus.shutdown(Duration::from_secs(5)).await;
    assert!(matches!(
        refuse(DashboardConfig::new(TOKEN)),
        DashboardError::BusClosed
    ));
}

#[tokio::test]
async fn the_api_needs_the_token_and_the_page_does_not() {
    let bus = Bus::new().unwrap();
    let manager = Arc::new(WebhookManager::new(&bus));
    let server = start(&bus, manager).await;
    assert!(server.addr().ip().is_loopback(), "loopback by default");
    assert!(server.url().ends_with(&format!("/#token={TOKEN}")));
    assert!(!format!("{server:?}").contains(TOKEN));
    let base = format!("http://{}", server.addr());
    let http = reqwest::Client::new();

    for (path, auth) in [
        ("/api/overview", None),
        ("/api/overview", Some("Bearer test-token-012345678")),
        ("/api/overview", Some("Bearer test-token-01234567890")),
        ("/api/overview", Some(TOKEN)),
        ("/api/webhooks", Some("Basic dGVzdA==")),
    ] {
        let mut r = http.get(format!("{base}{path}"));
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), 401, "{path} with {auth:?}");
        assert!(r.headers().contains_key("www-authenticate"));
    }
    // The query token is for the stream only.
    let r = http
        .get(format!("{base}/api/overview?token={TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .post(format!("{base}/api/events?token={TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "actions need the header");

    let r = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
    let page = r.text().await.unwrap();
    assert!(page.contains("<script src=\"app.js\">"));
    assert!(!page.contains("http"), "no external resources");
    for asset in ["/app.js", "/style.css"] {
        let r = http.get(format!("{base}{asset}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{asset}");
    }
    let ok = http
        .get(format!("{base}/api/overview"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["cache-control"], "no-store");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_endpoints_are_paged() {
    let bus = Bus::new().unwrap();
    let manager = Arc::new(WebhookManager::new(&bus));
    for i in 0..1000 {
        manager
            .register(
                WebhookSink::builder(format!("http://127.0.0.1:9/{i}"))
                    .name(format!("endpoint-{i:04}"))
                    .events(["never.*"]),
            )
            .unwrap();
    }
    let server = start(&bus, manager).await;
    let c = Client::new(&server);
    let first = c.get("/api/webhooks").await;
    assert_eq!(first["page"]["total"], 1000);
    assert_eq!(first["page"]["pages"], 20);
    assert_eq!(first["items"].as_array().unwrap().len(), 50);
    let last = c.get("/api/webhooks?page=20&per_page=50").await;
    assert_eq!(last["items"].as_array().unwrap().len(), 50);
    let past = c.get("/api/webhooks?page=21").await;
    assert!(past["items"].as_array().unwrap().is_empty());
    // A page never exceeds the configured size.
    let big = c.get("/api/webhooks?per_page=100000").await;
    assert_eq!(big["items"].as_array().unwrap().len(), 50);
    let one = c.get("/api/webhooks?q=endpoint-0999").await;
    assert_eq!(one["page"]["total"], 1);
    assert_eq!(one["items"][0]["name"], "endpoint-0999");
    assert_eq!(one["items"][0]["state"], "enabled");
    let overview = c.get("/api/overview").await;
    assert_eq!(overview["webhooks"], 1000);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_retry_disable_enable_and_emit() {
    let receiver = TestReceiver::builder()
        .script([Reply::server_error()])
        .start()
        .await
        .unwrap();
    let bus = Bus::new().unwrap();
    let manager = Arc::new(WebhookManager::new(&bus));
    let id = manager
        .register(
            WebhookSink::builder(receiver.url())
                .name("crm")
                .events(["order.*"])
                .retry(RetryPolicy::none()),
        )
        .unwrap();
    let server = start(&bus, manager.clone()).await;
    let c = Client::new(&server);
    let mut failed = bus.stream("hookbus.delivery_failed").unwrap();

    // Emitted through the API: the first attempt fails (500) and is
    // dead-lettered.
    let (status, emitted) = c
        .post(
            "/api/events",
            r#"{"type": "order.created", "data": {"n": 1}}"#,
        )
        .await;
    assert_eq!(status, 200, "{emitted}");
    use futures_util::StreamExt;
    failed.next().await.unwrap();
    let dead = c.get(&format!("/api/webhooks/{id}/dead-letters")).await;
    assert_eq!(dead["total"], 1);
    assert_eq!(dead["items"][0]["events"][0]["id"], emitted["id"]);
    let attempts = c.get("/api/attempts").await;
    assert_eq!(attempts["items"][0]["status_code"], 500);
    assert_eq!(attempts["items"][0]["webhook"], id.as_str());

    // Retry: delivered now (the receiver answers 200 after its script).
    let (status, report) = c.post(&format!("/api/webhooks/{id}/retry"), "").await;
    assert_eq!(status, 200);
    assert_eq!(report, json!({"retried": 1, "delivered": 1, "failed": 0}));
    let got = receiver.wait_for(2).await.unwrap();
    assert_eq!(got[1].events[0].id(), emitted["id"].as_str().unwrap());

    // Disable: nothing more is sent; enable again.
    let (status, _) = c.post(&format!("/api/webhooks/{id}/disable"), "").await;
    assert_eq!(status, 200);
    assert!(!manager.get(&id).unwrap().enabled);
    let page = c.get("/api/webhooks").await;
    assert_eq!(page["items"][0]["state"], "disabled");
    let (status, _) = c.post(&format!("/api/webhooks/{id}/enable"), "").await;
    assert_eq!(status, 200);
    assert!(manager.get(&id).unwrap().enabled);

    // Test an endpoint directly.
    let (status, result) = c
        .post(
            &format!("/api/webhooks/{id}/test"),
            r#"{"type": "order.test"}"#,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(result["success"], true);
    assert_eq!(result["status_code"], 200);

    // Bad input is a 400 or 404 with a reason, not a panic.
    let (status, e) = c.post("/api/events", "not json").await;
    assert_eq!(status, 400, "{e}");
    let (status, e) = c.post("/api/events", r#"{"type": ""}"#).await;
    assert_eq!(status, 400, "{e}");
    let (status, e) = c
        .post("/api/events", r#"{"type": "hookbus.endpoint_disabled"}"#)
        .await;
    assert_eq!(status, 400, "{e}");
    assert!(e["error"].as_str().unwrap().contains("reserved"), "{e}");
    let (status, e) = c.post("/api/events", "").await;
    assert_eq!(status, 200, "an empty body emits hookbus.test: {e}");
    let (status, e) = c.post("/api/webhooks/wh_nope/retry", "").await;
    assert_eq!(status, 404, "{e}");
    assert!(e["error"].as_str().unwrap().contains("wh_nope"));
    server.shutdown().await;
}

/// Reads SSE messages (`event:` name and `data:` JSON) from a response.
async fn next_message(r: &mut reqwest::Response, buf: &mut String) -> (String, Value) {
    loop {
        if let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let mut name = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim());
                }
            }
            if !name.is_empty() {
                return (name, serde_json::from_str(&data).unwrap());
            }
            continue;
        }
        let chunk = r.chunk().await.unwrap().expect("the stream ended");
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_sends_the_overview_and_matching_events() {
    let bus = Bus::new().unwrap();
    let manager = Arc::new(WebhookManager::new(&bus));
    let server = start(&bus, manager).await;
    let mut r = reqwest::Client::new()
        .get(format!(
            "http://{}/api/stream?token={TOKEN}&pattern=order.*",
            server.addr()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let mut buf = String::new();
    let (name, overview) = next_message(&mut r, &mut buf).await;
    assert_eq!(name, "tick");
    assert_eq!(overview["stream"]["pattern"], "order.*");
    assert_eq!(overview["stream"]["dropped"], 0);

    bus.emit(Event::new("audit.read", json!({})).unwrap())
        .unwrap();
    bus.emit(Event::new("order.created", json!({"n": 7})).unwrap())
        .unwrap();
    let event = loop {
        let (name, v) = next_message(&mut r, &mut buf).await;
        if name == "event" {
            break v;
        }
    };
    assert_eq!(event["type"], "order.created", "audit.read is filtered out");
    assert_eq!(event["data"], r#"{"n":7}"#);

    // Shutting the server down ends open streams (it does not hang).
    tokio::time::timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("shutdown ends the open stream");
}

/// A browser that does not keep up loses the oldest live events, never
/// makes the server buffer without bound, and is told how many it lost.
#[tokio::test]
async fn a_slow_stream_drops_the_oldest_events_and_says_so() {
    let bus = Bus::builder().tap_capacity(2).build().unwrap();
    let manager = Arc::new(WebhookManager::new(&bus));
    let config = DashboardConfig::new(TOKEN).sample_every(Duration::from_millis(10));
    let server = dashboard::serve(&bus, manager, config).await.unwrap();
    let mut r = reqwest::Client::new()
        .get(format!(
            "http://{}/api/stream?token={TOKEN}&pattern=load.*",
            server.addr()
        ))
        .send()
        .await
        .unwrap();
    let mut buf = String::new();
    assert_eq!(next_message(&mut r, &mut buf).await.0, "tick");

    // One thread, no await: the stream's tap cannot take anything while
    // these are emitted, so the ring of 2 keeps the newest two.
    for n in 0..1000 {
        bus.emit(Event::new("load.item", json!({"n": n})).unwrap())
            .unwrap();
    }
    let (mut events, mut dropped) = (Vec::new(), 0);
    tokio::time::timeout(Duration::from_secs(10), async {
        while events.len() < 2 || dropped == 0 {
            let (name, v) = next_message(&mut r, &mut buf).await;
            match name.as_str() {
                "event" => events.push(v["data"].as_str().unwrap().to_owned()),
                "tick" => dropped = v["stream"]["dropped"].as_u64().unwrap(),
                _ => {}
            }
        }
    })
    .await
    .expect("the newest events and a tick reporting the drops");
    assert_eq!(events, [r#"{"n":998}"#, r#"{"n":999}"#]);
    assert_eq!(dropped, 998);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ends_when_the_bus_shuts_down() {
    let bus = Bus::new().unwrap();
    let manager = Arc::new(WebhookManager::new(&bus));
    let router = dashboard::router(&bus, manager, DashboardConfig::new(TOKEN)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let mut r = reqwest::Client::new()
        .get(format!("http://{addr}/api/stream?token={TOKEN}"))
        .send()
        .await
        .unwrap();
    let mut buf = String::new();
    assert_eq!(next_message(&mut r, &mut buf).await.0, "tick");
    bus.shutdown(Duration::from_secs(5)).await;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while r.chunk().await.unwrap().is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the stream ended with the bus");
}

async fn open_stream(addr: std::net::SocketAddr, pattern: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!(
            "http://{addr}/api/stream?token={TOKEN}&pattern={pattern}"
        ))
        .send()
        .await
        .unwrap()
}

/// Reads `tick`s from an open stream until the overview counts `n` open
/// streams (bounded: the test fails after 20 s).
async fn until_streams(r: &mut reqwest::Response, buf: &mut String, n: u64) {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let (name, v) = next_message(r, buf).await;
            if name == "tick" && v["streams"] == n {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the overview never counted {n} open streams"));
}

/// Many open pages read one ring: each gets the event; beyond
/// `max_streams` a new stream is refused with 429 until one closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_streams_share_the_ring_and_are_limited() {
    let bus = Bus::new().unwrap();
    let manager = Arc::new(WebhookManager::new(&bus));
    let config = DashboardConfig::new(TOKEN)
        .max_streams(40)
        .sample_every(Duration::from_millis(10));
    let server = dashboard::serve(&bus, manager, config).await.unwrap();
    let mut pages = Vec::new();
    for _ in 0..40 {
        let mut r = open_stream(server.addr(), "order.*").await;
        assert_eq!(r.status(), 200);
        let mut buf = String::new();
        assert_eq!(next_message(&mut r, &mut buf).await.0, "tick");
        pages.push((r, buf));
    }
    let refused = open_stream(server.addr(), "order.*").await;
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("40"), "{body}");

    bus.emit(Event::new("order.created", json!({"n": 1})).unwrap())
        .unwrap();
    for (r, buf) in pages.iter_mut() {
        let event = loop {
            let (name, v) = next_message(r, buf).await;
            if name == "event" {
                break v;
            }
        };
        assert_eq!(event["type"], "order.created");
    }
    // One page closes: its place is free again.
    drop(pages.pop());
    let (r, buf) = pages.last_mut().unwrap();
    until_streams(r, buf, 39).await;
    assert_eq!(open_stream(server.addr(), "order.*").await.status(), 200);
    drop(pages);
    server.shutdown().await;
}

/// A client that opens a stream and never reads: once the server's writes
/// have waited `write_timeout`, the connection is closed and its stream
/// (and tap) let go, instead of living for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_whose_client_stopped_reading_is_closed() {
    use tokio::io::AsyncWriteExt;

    let bus = Bus::new().unwrap();
    let manager = Arc::new(WebhookManager::new(&bus));
    let config = DashboardConfig::new(TOKEN)
        .write_timeout(Duration::from_millis(200))
        .sample_every(Duration::from_millis(10));
    let server = dashboard::serve(&bus, manager, config).await.unwrap();
    let mut observer = open_stream(server.addr(), "none.*").await;
    let mut buf = String::new();

    // A client with a small receive buffer that sends its request and
    // never reads.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stuck = socket.connect(server.addr()).await.unwrap();
    stuck
        .write_all(
            format!("GET /api/stream?token={TOKEN}&pattern=big.* HTTP/1.1\r\nHost: x\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    until_streams(&mut observer, &mut buf, 2).await;

    // More than the socket buffers hold: the server's writes stall.
    let data = "x".repeat(1000);
    for n in 0..20_000u32 {
        bus.emit(Event::new("big.item", json!({"n": n, "pad": data})).unwrap())
            .unwrap();
        if n.is_multiple_of(1000) {
            tokio::task::yield_now().await;
        }
    }
    until_streams(&mut observer, &mut buf, 1).await;
    drop(stuck);
    server.shutdown().await;
}
