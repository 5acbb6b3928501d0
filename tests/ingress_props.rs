#![cfg(all(feature = "axum", feature = "webhook"))]
//! Property test: correctly signed requests with arbitrary headers and bodies
//! reach the ingress's converters, which never panic: every answer is 200 or
//! 400 over a connection that stays healthy.

use hookbus::Bus;
use hookbus::ingress::Ingress;
use hookbus::signature::{BodySignature, Secret, SignRequest, SignatureScheme, SlackSignature};
use hookbus::verify::Verifier;
use proptest::prelude::*;

const SECRET: &str = "whsec_a2V5LWtleS1rZXk=";

static CASE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

struct Server {
    rt: tokio::runtime::Runtime,
    base: String,
    client: reqwest::Client,
}

fn server() -> Server {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let base = rt.block_on(async {
        let bus = Bus::new().unwrap();
        bus.on("*", |_| {}).unwrap().detach();
        let app = Ingress::new(bus)
            .cloudevents("/events", Verifier::standard_webhooks(SECRET).unwrap())
            .github("/github", Verifier::github(SECRET))
            .slack_commands("/slack", Verifier::slack(SECRET))
            .into_router();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    });
    Server {
        rt,
        base,
        client: reqwest::Client::new(),
    }
}

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,24}",
        "(%[0-9A-Fa-f]{0,2}|[a-z.]){0,12}",
        Just("1.0".to_owned()),
        Just("2024-03-15T10:30:00Z".to_owned()),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<Vec<u8>>(),
        "[{}\\[\\]\":,a-z0-9 ]{0,60}".prop_map(String::into_bytes),
        "([a-z_]{1,8}=[%/a-z0-9.+]{0,10}&?){0,5}".prop_map(String::into_bytes),
        Just(br#"{"specversion":"1.0","id":"1","source":"s","type":"a.b","data":{}}"#.to_vec()),
        Just(br#"[{"specversion":"1.0","id":"1","source":"s","type":"a.b"}]"#.to_vec()),
        Just(b"command=%2Fempathy&text=hi&trigger_id=t1".to_vec()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn converters_never_panic(
        route in 0usize..3,
        content_type in prop::sample::select(vec![
            "application/json", "application/cloudevents+json",
            "application/cloudevents-batch+json", "text/plain",
            "application/x-www-form-urlencoded", "",
        ]),
        ce in proptest::collection::vec(
            (prop::sample::select(vec!["ce-specversion", "ce-id", "ce-source", "ce-type", "ce-time", "ce-subject", "ce-dataschema", "ce-partitionkey", "ce-Bad_Ext", "x-github-event", "x-github-delivery"]), header_value()),
            0..8,
        ),
        body in body(),
    ) {
        thread_local!(static SERVER: Server = server());
        SERVER.with(|s| {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let (path, signature): (&str, Vec<(String, String)>) = match route {
                // A fresh id per case: a repeated one is a duplicate, which
                // would never reach the converters.
                0 => ("/events", SignatureScheme::standard_webhooks()
                    .sign(&[Secret::new(SECRET)], &SignRequest { id: &format!("m{}", CASE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)), timestamp: now, body: &body })
                    .unwrap()),
                1 => ("/github", vec![(
                    "X-Hub-Signature-256".into(),
                    BodySignature::github().sign(&Secret::new(SECRET), &body),
                )]),
                _ => {
                    let t = now.to_string();
                    ("/slack", vec![
                        (SlackSignature::HEADER_TIMESTAMP.into(), t.clone()),
                        (SlackSignature::HEADER_SIGNATURE.into(), SlackSignature::sign(&Secret::new(SECRET), &t, &body)),
                    ])
                }
            };
            let mut req = s.client.post(format!("{}{path}", s.base)).body(body.clone());
            if !content_type.is_empty() {
                req = req.header("content-type", content_type);
            }
            for (k, v) in ce.iter().map(|(k, v)| (k.to_string(), v.clone())).chain(signature) {
                req = req.header(k, v);
            }
            let status = s.rt.block_on(req.send()).expect("the server answered").status().as_u16();
            prop_assert!(status == 200 || status == 400, "status {}", status);
            Ok(())
        })?;
    }
}

mod mutations {
    //! Issue #11: for a request built from a valid signed one by changing any
    //! one byte of a header (name or value) or of the body, the ingress never
    //! emits an event that was not signed and never emits the same signed
    //! event twice. The valid request goes first (no scheme here signs the
    //! `ce-*` headers of binary mode, so only a request check can stop a
    //! changed copy: see the ingress docs), then the mutant, then the valid
    //! one again; a fresh sentinel event marks the end of the case, and
    //! everything before it on the bus must be exactly the one valid event.

    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::mpsc;
    use std::time::Duration;

    use hookbus::ingress::Ingress;
    use hookbus::signature::{Secret, SignRequest, SignatureScheme};
    use hookbus::verify::Verifier;
    use hookbus::{Bus, Event};
    use proptest::prelude::*;
    use serde_json::json;

    const SECRET: &str = "whsec_a2V5LWtleS1rZXk=";

    struct Server {
        rt: tokio::runtime::Runtime,
        base: String,
        client: reqwest::Client,
        events: mpsc::Receiver<Event>,
    }

    fn server() -> Server {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let (tx, events) = mpsc::channel();
        let base = rt.block_on(async {
            let bus = Bus::new().unwrap();
            bus.on("**", move |e: &Event| {
                let _ = tx.send(e.clone());
            })
            .unwrap()
            .detach();
            let app = Ingress::new(bus)
                .cloudevents("/standard", Verifier::standard_webhooks(SECRET).unwrap())
                .cloudevents("/rubric", Verifier::timestamped("Rubric", SECRET).unwrap())
                .cloudevents("/briefcase", Verifier::briefcase(SECRET))
                .cloudevents("/stripe", Verifier::stripe(SECRET))
                .into_router();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            format!("http://{addr}")
        });
        Server {
            rt,
            base,
            client: reqwest::Client::new(),
            events,
        }
    }

    static NEXT: AtomicU64 = AtomicU64::new(0);

    /// Header names and values as bytes, so a mutation can touch any byte.
    type RawHeaders = Vec<(Vec<u8>, Vec<u8>)>;

    #[derive(Debug, Clone, Copy)]
    enum Mode {
        Binary,
        Structured,
        Batched,
    }

    /// A valid signed request for a fresh event: route, headers, body.
    fn signed(route: usize, mode: Mode, event: &Event) -> (String, RawHeaders, Vec<u8>) {
        let (path, scheme) = match route {
            0 => ("/standard", SignatureScheme::standard_webhooks()),
            1 => ("/rubric", SignatureScheme::timestamped("Rubric").unwrap()),
            2 => ("/briefcase", SignatureScheme::briefcase()),
            _ => ("/stripe", SignatureScheme::stripe()),
        };
        // Body-only signatures cannot carry binary mode.
        let mode = if route == 2 && matches!(mode, Mode::Binary) {
            Mode::Structured
        } else {
            mode
        };
        let mut headers: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let body = match mode {
            Mode::Binary => {
                for (k, v) in hookbus::webhook::wire::binary_headers(event, None) {
                    if let Some(k) = k {
                        headers.push((k.as_str().as_bytes().to_vec(), v.as_bytes().to_vec()));
                    }
                }
                event.data_json().to_vec()
            }
            Mode::Structured => {
                headers.push((
                    b"content-type".to_vec(),
                    b"application/cloudevents+json".to_vec(),
                ));
                event.structured_json().to_vec()
            }
            Mode::Batched => {
                headers.push((
                    b"content-type".to_vec(),
                    b"application/cloudevents-batch+json".to_vec(),
                ));
                format!(
                    "[{}]",
                    String::from_utf8(event.structured_json().to_vec()).unwrap()
                )
                .into_bytes()
            }
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        for (k, v) in scheme
            .sign(
                &[Secret::new(SECRET)],
                &SignRequest {
                    id: event.id(),
                    timestamp: now,
                    body: &body,
                },
            )
            .unwrap()
        {
            headers.push((k.into_bytes(), v.into_bytes()));
        }
        (path.to_owned(), headers, body)
    }

    fn send(s: &Server, path: &str, headers: &[(Vec<u8>, Vec<u8>)], body: &[u8]) -> Option<u16> {
        let mut req = s
            .client
            .post(format!("{}{path}", s.base))
            .body(body.to_vec());
        for (k, v) in headers {
            // A mutation that makes the header unsendable is no request.
            let name = reqwest::header::HeaderName::from_bytes(k).ok()?;
            let value = reqwest::header::HeaderValue::from_bytes(v).ok()?;
            req = req.header(name, value);
        }
        Some(
            s.rt.block_on(req.send())
                .expect("the server answered")
                .status()
                .as_u16(),
        )
    }

    fn next_event(s: &Server) -> Event {
        // A guard against a hang, not a synchronisation.
        s.events
            .recv_timeout(Duration::from_secs(20))
            .expect("an event arrived")
    }

    fn event(n: u64) -> Event {
        Event::builder("decision.captured")
            .id(format!("evt-{n}"))
            .source("props")
            .data(json!({"n": n}))
            .build()
            .unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn a_mutated_request_never_adds_an_event(
            route in 0usize..4,
            mode in prop_oneof![Just(Mode::Binary), Just(Mode::Structured), Just(Mode::Batched)],
            target in any::<prop::sample::Index>(),
            in_name in proptest::bool::weighted(0.1),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            thread_local!(static SERVER: Server = server());
            SERVER.with(|s| {
                let n = NEXT.fetch_add(2, Ordering::Relaxed);
                let original = event(n);
                let (path, headers, body) = signed(route, mode, &original);
                prop_assert_eq!(send(s, &path, &headers, &body), Some(200));
                let got = next_event(s);
                prop_assert_eq!(got.id(), original.id());
                prop_assert_eq!(got.data(), original.data());

                // One byte changed, in a header name or value or in the body.
                let (mut headers2, mut body2) = (headers.clone(), body.clone());
                let slot = target.index(headers.len() + 1);
                let bytes = if slot == headers.len() {
                    &mut body2
                } else if in_name {
                    &mut headers2[slot].0
                } else {
                    &mut headers2[slot].1
                };
                prop_assume!(!bytes.is_empty());
                let i = at.index(bytes.len());
                prop_assume!(bytes[i] != byte);
                bytes[i] = byte;
                if let Some(status) = send(s, &path, &headers2, &body2) {
                    prop_assert!(matches!(status, 200 | 400 | 401), "status {}", status);
                }
                // The valid one again: a duplicate.
                prop_assert_eq!(send(s, &path, &headers, &body), Some(200));

                // A fresh event marks the end: nothing came before it.
                let sentinel = event(n + 1);
                let (path, headers, body) = signed(route, mode, &sentinel);
                prop_assert_eq!(send(s, &path, &headers, &body), Some(200));
                let got = next_event(s);
                prop_assert_eq!(got.id(), sentinel.id(), "an extra event was emitted");
                Ok(())
            })?;
        }
    }
}
