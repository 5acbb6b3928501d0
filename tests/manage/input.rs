//! Bad input: a problem-details 4xx naming the field at fault, and nothing
//! created or changed.

use serde_json::{Value, json};

use super::{ACME, Server, receiver};

fn webhook(url: &str) -> Value {
    json!({"name": "n", "url": url, "events": ["order.placed"]})
}

fn with(mut v: Value, field: &str, value: Value) -> Value {
    v[field] = value;
    v
}

#[tokio::test]
async fn bad_webhooks_are_refused_with_the_field_at_fault() {
    let bus = hookbus::Bus::new().unwrap();
    // Loopback is not allowed here: the SSRF guard's default.
    let server = Server::start(&bus, super::builder(&bus).allow_loopback(false)).await;
    let api = server.api();
    let good = webhook("https://hooks.example.com/in");
    let cases: Vec<(Value, &str)> = vec![
        (with(good.clone(), "url", json!("not a url")), "url"),
        (
            with(good.clone(), "url", json!("ftp://hooks.example.com/")),
            "url",
        ),
        (
            with(good.clone(), "url", json!("http://hooks.example.com/")),
            "url",
        ),
        (
            with(
                good.clone(),
                "url",
                json!("https://user:pw@hooks.example.com/"),
            ),
            "url",
        ),
        (
            with(
                good.clone(),
                "url",
                json!(format!("https://example.com/{}", "a".repeat(3000))),
            ),
            "url",
        ),
        // SSRF targets: loopback, private, link-local metadata, mapped,
        // unspecified, and loopback by name.
        (
            with(good.clone(), "url", json!("https://127.0.0.1/")),
            "url",
        ),
        (
            with(good.clone(), "url", json!("http://127.0.0.1:9/")),
            "url",
        ),
        (with(good.clone(), "url", json!("https://10.0.0.5/")), "url"),
        (
            with(
                good.clone(),
                "url",
                json!("https://169.254.169.254/latest/meta-data"),
            ),
            "url",
        ),
        (
            with(good.clone(), "url", json!("https://[::ffff:127.0.0.1]/")),
            "url",
        ),
        (with(good.clone(), "url", json!("https://[::1]/")), "url"),
        (with(good.clone(), "url", json!("https://0.0.0.0/")), "url"),
        (
            with(good.clone(), "url", json!("https://localhost/")),
            "url",
        ),
        (
            with(good.clone(), "url", json!("http://LOCALHOST./")),
            "url",
        ),
        (with(good.clone(), "url", json!(42)), "url"),
        // Patterns.
        (with(good.clone(), "events", json!([])), "events"),
        (
            with(good.clone(), "events", json!(["order..placed"])),
            "events",
        ),
        (with(good.clone(), "events", json!(["order.*x"])), "events"),
        (
            with(good.clone(), "events", json!("order.placed")),
            "events",
        ),
        (with(good.clone(), "events", json!([1])), "events"),
        // The rest.
        (with(good.clone(), "name", json!("")), "name"),
        (with(good.clone(), "secret", json!("hunter2")), "secret"),
        (with(good.clone(), "secret", json!("whsec_%%%")), "secret"),
        (with(good.clone(), "filters", json!(17)), "filters"),
        (
            with(good.clone(), "retry_config", json!({"backoff": "sideways"})),
            "retry_config",
        ),
        (
            with(good.clone(), "retry_config", json!({"max_retries": "five"})),
            "retry_config",
        ),
        (with(good.clone(), "format", json!("morse")), "format"),
        (
            with(
                good.clone(),
                "templates",
                json!({"order.placed": {"text": "{{data.x"}}),
            ),
            "templates",
        ),
        (with(good.clone(), "proxy", json!("http://evil/")), "proxy"),
        (
            with(good.clone(), "tls", json!({"ca_pem_file": "/etc/shadow"})),
            "tls",
        ),
    ];
    for (body, field) in cases {
        let a = api
            .call("POST", "/v1/webhooks", ACME, Some(body.clone()))
            .await;
        assert!(a.status == 422, "{body}: expected 422, got {a:?}");
        a.assert_problem(422, Some(field));
        let text = a.body.to_string();
        assert!(!text.contains("hunter2"), "a secret in an error: {text}");
    }
    let missing = [("name", "name"), ("url", "url"), ("events", "events")];
    for (drop, field) in missing {
        let mut body = good.clone();
        body.as_object_mut().unwrap().remove(drop);
        api.call("POST", "/v1/webhooks", ACME, Some(body))
            .await
            .assert_problem(422, Some(field));
    }
    assert!(api.list(ACME).await.is_empty(), "nothing was created");
    assert!(server.manage.is_empty());
}

#[tokio::test]
async fn bad_json_huge_bodies_and_bad_queries() {
    let bus = hookbus::Bus::new().unwrap();
    let server = Server::start(&bus, super::builder(&bus).max_body(4096)).await;
    let api = server.api();
    let rx = receiver().await;
    let created = api.create(ACME, &rx.url(), &["a"]).await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let before = api
        .call("GET", &format!("/v1/webhooks/{id}"), ACME, None)
        .await
        .body;
    for path in [
        "/v1/webhooks".to_owned(),
        format!("/v1/webhooks/{id}"),
        format!("/v1/webhooks/{id}/test"),
        format!("/v1/webhooks/{id}/retry_failed"),
        "/v1/events".to_owned(),
    ] {
        let method = if path == format!("/v1/webhooks/{id}") {
            "PATCH"
        } else {
            "POST"
        };
        for bad in [
            &b"{"[..],
            b"not json",
            b"[1,2]",
            b"\"s\"",
            b"{\"a\":}",
            b"\xff\xfe",
        ] {
            api.raw(method, &path, Some(ACME), Some(bad.to_vec()))
                .await
                .assert_problem(400, None);
        }
        let huge = serde_json::to_vec(&json!({"name": "x".repeat(10_000)})).unwrap();
        api.raw(method, &path, Some(ACME), Some(huge))
            .await
            .assert_problem(413, None);
    }
    for q in [
        "limit=0",
        "limit=100000",
        "limit=-1",
        "limit=abc",
        "cursor=zzz",
        "evil=1",
    ] {
        let a = api
            .call(
                "GET",
                &format!("/v1/webhooks/{id}/deliveries?{q}"),
                ACME,
                None,
            )
            .await;
        assert_eq!(a.status, 422, "{q}: {a:?}");
        assert_eq!(a.content_type, "application/problem+json");
    }
    let bad_patch = api
        .call(
            "PATCH",
            &format!("/v1/webhooks/{id}"),
            ACME,
            Some(json!({"url": "https://10.1.2.3/"})),
        )
        .await;
    bad_patch.assert_problem(422, Some("url"));
    let bad_since = api
        .call(
            "POST",
            &format!("/v1/webhooks/{id}/retry_failed"),
            ACME,
            Some(json!({"since": "yesterday"})),
        )
        .await;
    bad_since.assert_problem(422, Some("since"));
    let bad_event = api
        .call("POST", "/v1/events", ACME, Some(json!({"data": {}})))
        .await;
    bad_event.assert_problem(422, Some("type"));
    let bad_test = api
        .call(
            "POST",
            &format!("/v1/webhooks/{id}/test"),
            ACME,
            Some(json!({"payload": {}})),
        )
        .await;
    bad_test.assert_problem(422, Some("event_type"));
    assert_eq!(
        api.call("GET", &format!("/v1/webhooks/{id}"), ACME, None)
            .await
            .body,
        before
    );
    assert_eq!(api.list(ACME).await.len(), 1);
    assert_eq!(rx.stats().requests, 0, "nothing was sent");
    api.call("GET", "/v1/nothing", ACME, None)
        .await
        .assert_problem(404, None);
    api.call("PUT", "/v1/webhooks", ACME, None)
        .await
        .assert_problem(405, None);
}
