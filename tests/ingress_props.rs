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
                0 => ("/events", SignatureScheme::standard_webhooks()
                    .sign(&[Secret::new(SECRET)], &SignRequest { id: "m1", timestamp: now, body: &body })
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
