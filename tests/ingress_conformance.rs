#![cfg(all(feature = "axum", feature = "webhook"))]
//! CloudEvents conformance through the ingress, over real HTTP.
//!
//! The cases are transcribed from the CloudEvents conformance suite
//! (github.com/cloudevents/conformance @ 7a8ee0ac: `yaml/v1.yaml`,
//! `yaml/v1.0/v1_minimum.yaml`, `yaml/v03.yaml`, `yaml/v0.3/v03_minimum.yaml`
//! and `features/http-protocol-binding.feature`, Apache-2.0) and from the
//! CloudEvents 1.0.2 JSON format and HTTP binding. Every 1.0 event is sent in
//! binary and in structured mode and must arrive on the bus with the
//! attributes the case gives; every 0.3 event must be refused with 4xx.

use std::collections::BTreeMap;
use std::time::Duration;

use hookbus::event::ExtensionValue;
use hookbus::ingress::Ingress;
use hookbus::signature::{BodySignature, Secret, SignRequest, SignatureScheme};
use hookbus::verify::Verifier;
use hookbus::webhook::wire::encode_header_value;
use hookbus::{Bus, Event};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// One conformance event: its context attributes, extensions and data
/// exactly as the YAML gives them (block scalars keep their final newline).
struct Case {
    name: &'static str,
    specversion: &'static str,
    ty: &'static str,
    id: &'static str,
    source: &'static str,
    time: Option<&'static str>,
    datacontenttype: Option<&'static str>,
    extensions: &'static [(&'static str, &'static str)],
    /// TransportExtensions: plain HTTP headers.
    transport: &'static [(&'static str, &'static str)],
    data: &'static str,
    /// The modes the case names (`Mode:`), else both.
    modes: &'static [Mode],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Binary,
    Structured,
}

const BOTH: &[Mode] = &[Mode::Binary, Mode::Structured];
const V1_SOURCE: &str = "//github.com/cloudevents/cloudeventsconformance/yaml/v1.yaml";
const V03_SOURCE: &str = "//github.com/cloudevents/cloudeventsconformance/yaml/v03.yaml";
const EXTENSIONS: &[(&str, &str)] = &[
    ("comexampleextension1", "value"),
    ("comexampleextension2", "{\"othervalue\": 5}\n"),
];

fn full(specversion: &'static str, modes: &'static [Mode]) -> Case {
    Case {
        name: "someevent",
        specversion,
        ty: "com.example.someevent",
        id: "4321-4321-4321",
        source: "/mycontext/subcontext",
        time: Some("2018-04-05T03:56:24Z"),
        datacontenttype: None,
        extensions: EXTENSIONS,
        transport: &[("user-agent", "foo")],
        data: "{\"world\":\"hello\"}\n",
        modes,
    }
}

fn minimum(specversion: &'static str, source: &'static str) -> Vec<Case> {
    let case = |name, id, ct, data| Case {
        name,
        specversion,
        ty: "io.cloudevents.minimum",
        id,
        source,
        time: None,
        datacontenttype: Some(ct),
        extensions: &[],
        transport: &[],
        data,
        modes: BOTH,
    };
    vec![
        case(
            "minimum text us-ascii",
            "conformance-0001",
            "text/plain; charset=us-ascii",
            "Hello, World!\n",
        ),
        case(
            "minimum text utf-8",
            "conformance-0002",
            "text/plain; charset=utf-8",
            "Hello, 🌎!\n",
        ),
        case(
            "minimum json string",
            "conformance-0003",
            "application/json; charset=utf-8",
            "\"Hello, 🌎!\"\n",
        ),
        case(
            "minimum json object",
            "conformance-0004",
            "application/json; charset=utf-8",
            "{\"msg\":\"Hello, 🌎!\"}\n",
        ),
        case(
            "minimum json array",
            "conformance-0005",
            "application/json; charset=utf-8",
            "[\"Hello\",\"🌎!\"]\n",
        ),
        case(
            "minimum xml",
            "conformance-0006",
            "application/xml; charset=utf-8",
            "<msg>Hello, 🌎!</msg>\n",
        ),
    ]
}

/// `v1.yaml` (one binary, one structured) and `v1_minimum.yaml`.
fn v1_cases() -> Vec<Case> {
    let mut cases = vec![
        full("1.0", &[Mode::Binary]),
        full("1.0", &[Mode::Structured]),
    ];
    cases.extend(minimum("1.0", V1_SOURCE));
    cases
}

/// `v03.yaml` and `v03_minimum.yaml`.
fn v03_cases() -> Vec<Case> {
    let mut cases = vec![full("0.3", BOTH)];
    cases.extend(minimum("0.3", V03_SOURCE));
    cases
}

fn is_json(ct: Option<&str>) -> bool {
    ct.is_none_or(|ct| {
        let media = ct.split(';').next().unwrap_or("").trim();
        media == "application/json" || media.ends_with("+json")
    })
}

/// What the event's data is on the bus: JSON data parsed, anything else as
/// a string.
fn expected_data(case: &Case) -> Value {
    if is_json(case.datacontenttype) {
        serde_json::from_str(case.data).unwrap()
    } else {
        Value::String(case.data.to_owned())
    }
}

/// The request for one case in one mode: headers and body.
fn request(case: &Case, mode: Mode) -> (Vec<(String, String)>, Vec<u8>) {
    let mut headers: Vec<(String, String)> = case
        .transport
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    match mode {
        Mode::Binary => {
            let mut ce = vec![
                ("specversion", case.specversion),
                ("type", case.ty),
                ("id", case.id),
                ("source", case.source),
            ];
            if let Some(t) = case.time {
                ce.push(("time", t));
            }
            ce.extend(case.extensions.iter().copied());
            for (k, v) in ce {
                headers.push((format!("ce-{k}"), encode_header_value(v)));
            }
            if let Some(ct) = case.datacontenttype {
                headers.push(("content-type".into(), ct.into()));
            }
            (headers, case.data.as_bytes().to_vec())
        }
        Mode::Structured => {
            let mut m = serde_json::Map::new();
            m.insert("specversion".into(), case.specversion.into());
            m.insert("type".into(), case.ty.into());
            m.insert("id".into(), case.id.into());
            m.insert("source".into(), case.source.into());
            if let Some(t) = case.time {
                m.insert("time".into(), t.into());
            }
            if let Some(ct) = case.datacontenttype {
                m.insert("datacontenttype".into(), ct.into());
            }
            for (k, v) in case.extensions {
                m.insert(k.to_string(), (*v).into());
            }
            m.insert("data".into(), expected_data(case));
            headers.push((
                "content-type".into(),
                "application/cloudevents+json; charset=utf-8".into(),
            ));
            (headers, serde_json::to_vec(&m).unwrap())
        }
    }
}

struct Server {
    base: String,
    bus: Bus,
    rx: mpsc::UnboundedReceiver<Event>,
    n: usize,
}

impl Server {
    async fn start() -> Server {
        let bus = Bus::new().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        bus.on("**", move |e: &Event| {
            let _ = tx.send(e.clone());
        })
        .unwrap()
        .detach();
        let app = Ingress::new(bus.clone())
            .cloudevents("/events", Verifier::standard_webhooks(SECRET).unwrap())
            .cloudevents("/body-signed", Verifier::briefcase("k"))
            .github("/github", Verifier::github("k"))
            .into_router();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Server {
            base,
            bus,
            rx,
            n: 0,
        }
    }

    /// POSTs to /events, signed with Standard Webhooks (a fresh message id
    /// per request).
    async fn post(&mut self, headers: &[(String, String)], body: &[u8]) -> reqwest::Response {
        self.n += 1;
        let id = format!("msg_{}", self.n);
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let signature = SignatureScheme::standard_webhooks()
            .sign(
                &[Secret::new(SECRET)],
                &SignRequest {
                    id: &id,
                    timestamp: now,
                    body,
                },
            )
            .unwrap();
        let mut req = reqwest::Client::new()
            .post(format!("{}/events", self.base))
            .body(body.to_vec());
        for (k, v) in headers.iter().chain(&signature) {
            req = req.header(k, v);
        }
        req.send().await.unwrap()
    }

    async fn next(&mut self) -> Event {
        // A guard against a hang, not a synchronisation.
        tokio::time::timeout(Duration::from_secs(20), self.rx.recv())
            .await
            .expect("no event arrived")
            .unwrap()
    }

    async fn nothing_more(mut self) {
        let report = self.bus.shutdown(Duration::from_secs(10)).await;
        assert!(report.is_clean(), "{report}");
        assert!(
            self.rx.try_recv().is_err(),
            "an unexpected event was emitted"
        );
    }
}

fn assert_arrived(case: &Case, mode: Mode, e: &Event) {
    let what = format!("{} ({mode:?})", case.name);
    assert_eq!(e.id(), case.id, "{what}");
    assert_eq!(e.event_type(), case.ty, "{what}");
    assert_eq!(e.source(), case.source, "{what}");
    assert_eq!(
        e.datacontenttype(),
        case.datacontenttype.unwrap_or("application/json"),
        "{what}"
    );
    assert_eq!(e.data(), &expected_data(case), "{what}");
    let mut extensions: BTreeMap<String, ExtensionValue> = case
        .extensions
        .iter()
        .map(|(k, v)| (k.to_string(), ExtensionValue::from(*v)))
        .collect();
    match case.time {
        Some(t) => assert_eq!(e.time_rfc3339(), t, "{what}"),
        // No time given: the receive time, marked as such.
        None => {
            extensions.insert("receivedtime".into(), e.time_rfc3339().into());
        }
    }
    assert_eq!(e.extensions(), &extensions, "{what}");
}

#[tokio::test]
async fn every_cloudevents_1_0_conformance_event_arrives_with_its_attributes() {
    let mut arrived = 0;
    for case in v1_cases() {
        for &mode in case.modes {
            // A server per delivery: the same event in the other mode would
            // be a duplicate (same source and id).
            let mut server = Server::start().await;
            let (headers, body) = request(&case, mode);
            let resp = server.post(&headers, &body).await;
            let status = resp.status();
            let text = resp.text().await.unwrap();
            assert_eq!(status, 200, "{} ({mode:?}): {text}", case.name);
            let e = server.next().await;
            assert_arrived(&case, mode, &e);
            arrived += 1;
            server.nothing_more().await;
        }
    }
    assert_eq!(
        arrived, 14,
        "2 from v1.yaml, 6 x 2 modes from v1_minimum.yaml"
    );
}

#[tokio::test]
async fn every_cloudevents_0_3_conformance_event_is_refused_with_4xx() {
    let mut server = Server::start().await;
    let mut refused = 0;
    for case in v03_cases() {
        for &mode in case.modes {
            let (headers, body) = request(&case, mode);
            let resp = server.post(&headers, &body).await;
            let status = resp.status();
            assert!(
                status.is_client_error(),
                "{} ({mode:?}): {status}",
                case.name
            );
            let text = resp.text().await.unwrap();
            assert!(text.contains("specversion"), "{text}");
            refused += 1;
        }
    }
    assert_eq!(
        refused, 14,
        "1 x 2 modes from v03.yaml, 6 x 2 from v03_minimum.yaml"
    );
    server.nothing_more().await;
}

#[tokio::test]
async fn http_binding_feature_scenarios() {
    // features/http-protocol-binding.feature: binary mode with two content
    // types, structured mode with two content types.
    let data = "{\n    \"message\": \"Hello World!\"\n}";
    for ct in ["application/json", "application/json; charset=utf-8"] {
        // A server per scenario: the same id and source again is a duplicate.
        let mut server = Server::start().await;
        let headers: Vec<(String, String)> = [
            ("ce-specversion", "1.0"),
            ("ce-type", "com.example.someevent"),
            ("ce-time", "2018-04-05T03:56:24Z"),
            ("ce-id", "1234-1234-1234"),
            ("ce-source", "/mycontext/subcontext"),
            ("content-type", ct),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let resp = server.post(&headers, data.as_bytes()).await;
        assert_eq!(resp.status(), 200, "{ct}");
        let e = server.next().await;
        assert_eq!(e.id(), "1234-1234-1234");
        assert_eq!(e.datacontenttype(), ct);
        assert_eq!(e.time_rfc3339(), "2018-04-05T03:56:24Z");
        assert_eq!(e.data(), &json!({"message": "Hello World!"}));
        server.nothing_more().await;
    }
    let mut server = Server::start().await;
    let body = r#"{
        "specversion": "1.0",
        "type": "com.example.someevent",
        "time": "2018-04-05T03:56:24Z",
        "id": "1234-1234-1234",
        "source": "/mycontext/subcontext",
        "datacontenttype": "application/json",
        "data": {
            "message": "Hello World!"
        }
    }"#;
    for (n, ct) in [
        "application/cloudevents+json",
        "application/cloudevents+json; charset=utf-8",
    ]
    .into_iter()
    .enumerate()
    {
        // Another source each time, so the second is not a duplicate.
        let body = body.replace("subcontext", &format!("subcontext{n}"));
        let resp = server
            .post(&[("content-type".into(), ct.into())], body.as_bytes())
            .await;
        assert_eq!(resp.status(), 200, "{ct}");
        let e = server.next().await;
        assert_eq!(e.source(), format!("/mycontext/subcontext{n}"));
        assert_eq!(e.datacontenttype(), "application/json");
        assert_eq!(e.data(), &json!({"message": "Hello World!"}));
        assert!(e.extensions().is_empty(), "time was given: no mark");
    }
    server.nothing_more().await;
}

#[tokio::test]
async fn json_null_attributes_are_unset() {
    // JSON format §2: a null attribute MUST be treated as absent.
    let mut server = Server::start().await;
    let body = json!({
        "specversion": "1.0",
        "type": "com.example.someevent",
        "id": "null-1",
        "source": "/mycontext",
        "time": null,
        "subject": null,
        "datacontenttype": null,
        "dataschema": null,
        "unsetextension": null,
        "data": null,
    })
    .to_string();
    let ct = [(
        "content-type".to_owned(),
        "application/cloudevents+json".to_owned(),
    )];
    let resp = server.post(&ct, body.as_bytes()).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let e = server.next().await;
    assert_eq!(e.subject(), None);
    assert_eq!(e.dataschema(), None);
    assert_eq!(e.datacontenttype(), "application/json");
    assert_eq!(e.extension("unsetextension"), None);
    assert_eq!(e.data(), &Value::Null);
    assert_eq!(
        e.extension("receivedtime"),
        Some(&ExtensionValue::from(e.time_rfc3339()))
    );
    // A required attribute set to null is missing.
    for required in ["id", "type", "source", "specversion"] {
        let mut v: Value = serde_json::from_str(&body).unwrap();
        v[required] = Value::Null;
        v["id"] = if required == "id" {
            Value::Null
        } else {
            "null-2".into()
        };
        let resp = server.post(&ct, v.to_string().as_bytes()).await;
        assert_eq!(resp.status(), 400, "{required}");
        let text = resp.text().await.unwrap();
        assert!(text.contains(required), "{text}");
    }
    server.nothing_more().await;
}

#[tokio::test]
async fn quoted_header_values_are_unescaped_before_percent_decoding() {
    // HTTP binding §3.1.3.2: RFC 7230 quoted strings, then one round of
    // percent-decoding.
    let mut server = Server::start().await;
    let headers: Vec<(String, String)> = [
        ("ce-specversion", "\"1.0\""),
        ("ce-type", "\"com.example.someevent\""),
        ("ce-id", "quoted-1"),
        ("ce-source", "\"/my context\""),
        ("ce-subject", r#""Euro \"quoted\" value""#),
        ("ce-comexampleextension1", r#""a\\b%20c""#),
        ("ce-comexampleextension2", "\"unterminated"),
        ("content-type", "application/json"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    // An unterminated quoted string is malformed.
    let resp = server.post(&headers, b"{}").await;
    assert_eq!(resp.status(), 400);
    let headers: Vec<_> = headers
        .into_iter()
        .filter(|(k, _)| k != "ce-comexampleextension2")
        .collect();
    let resp = server.post(&headers, b"{}").await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let e = server.next().await;
    assert_eq!(e.event_type(), "com.example.someevent");
    assert_eq!(e.source(), "/my context");
    assert_eq!(e.subject(), Some("Euro \"quoted\" value"));
    assert_eq!(
        e.extension("comexampleextension1"),
        Some(&ExtensionValue::from("a\\b c"))
    );
    server.nothing_more().await;
}

#[tokio::test]
async fn events_without_time_are_marked_received() {
    let mut server = Server::start().await;
    // Binary mode without ce-time.
    let headers: Vec<(String, String)> = [
        ("ce-specversion", "1.0"),
        ("ce-type", "a.b"),
        ("ce-id", "t-1"),
        ("ce-source", "s"),
        ("content-type", "application/json"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(server.post(&headers, b"{}").await.status(), 200);
    let e = server.next().await;
    assert_eq!(
        e.extension("receivedtime"),
        Some(&ExtensionValue::from(e.time_rfc3339()))
    );
    // A sender's time is kept, unmarked; a sender's receivedtime beside no
    // time is replaced by ours.
    let mut with_time = headers.clone();
    with_time[2].1 = "t-2".into();
    with_time.push(("ce-time".into(), "2024-03-15T10:30:00Z".into()));
    assert_eq!(server.post(&with_time, b"{}").await.status(), 200);
    let e = server.next().await;
    assert_eq!(e.time_rfc3339(), "2024-03-15T10:30:00Z");
    assert_eq!(e.extension("receivedtime"), None);
    let mut claimed = headers.clone();
    claimed[2].1 = "t-3".into();
    claimed.push(("ce-receivedtime".into(), "2000-01-01T00:00:00Z".into()));
    assert_eq!(server.post(&claimed, b"{}").await.status(), 200);
    let e = server.next().await;
    assert_eq!(
        e.extension("receivedtime"),
        Some(&ExtensionValue::from(e.time_rfc3339()))
    );
    // Plain JSON and GitHub deliveries carry no time at all.
    let resp = server
        .post(
            &[("content-type".into(), "application/json".into())],
            b"{\"a\":1}",
        )
        .await;
    assert_eq!(resp.status(), 200);
    let e = server.next().await;
    assert_eq!(
        e.extension("receivedtime"),
        Some(&ExtensionValue::from(e.time_rfc3339()))
    );
    let body = br#"{"ref":"refs/heads/main"}"#;
    let resp = reqwest::Client::new()
        .post(format!("{}/github", server.base))
        .header("x-github-event", "push")
        .header("x-github-delivery", "gh-1")
        .header(
            "x-hub-signature-256",
            BodySignature::github().sign(&Secret::new("k"), body),
        )
        .body(&body[..])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let e = server.next().await;
    assert_eq!(e.event_type(), "github.push");
    assert!(e.extension("receivedtime").is_some());
    server.nothing_more().await;
}
