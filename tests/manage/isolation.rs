//! Tenants attacking each other: each attempt is a 404 (as for an id that
//! does not exist, never a 403 that would confirm it) and changes nothing.

use serde_json::{Value, json};

use super::{ACME, Api, GLOBEX, LONG, Server, receiver};

/// What acme's webhook looks like from acme (the state to compare after
/// each attack).
async fn snapshot(api: &Api, id: &str) -> Value {
    let a = api
        .call("GET", &format!("/v1/webhooks/{id}"), ACME, None)
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    a.body
}

#[tokio::test]
async fn another_tenants_token_gets_404_for_every_call_and_changes_nothing() {
    let server = Server::new().await;
    let api = server.api();
    let rx = receiver().await;
    let created = api.create(ACME, &rx.url(), &["order.*"]).await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let before = snapshot(&api, &id).await;
    let evil = receiver().await;
    let attacks: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", format!("/v1/webhooks/{id}"), None),
        (
            "PATCH",
            format!("/v1/webhooks/{id}"),
            Some(json!({"url": evil.url()})),
        ),
        ("DELETE", format!("/v1/webhooks/{id}"), None),
        ("POST", format!("/v1/webhooks/{id}/disable"), None),
        ("POST", format!("/v1/webhooks/{id}/enable"), None),
        (
            "POST",
            format!("/v1/webhooks/{id}/test"),
            Some(json!({"event_type": "order.x", "payload": {}})),
        ),
        ("GET", format!("/v1/webhooks/{id}/deliveries?limit=5"), None),
        (
            "POST",
            format!("/v1/webhooks/{id}/retry_failed"),
            Some(json!({"since": "2020-01-01T00:00:00Z"})),
        ),
    ];
    for (method, path, body) in &attacks {
        let a = api.call(method, path, GLOBEX, body.clone()).await;
        a.assert_problem(404, None);
        // The answer is the same as for an id that never existed.
        let fake = path.replace(&id, "wh_00000000000000000000000000000000");
        let b = api.call(method, &fake, GLOBEX, body.clone()).await;
        assert_eq!(
            a.body, b.body,
            "{method} {path}: a 404 that tells the id exists"
        );
    }
    assert!(
        api.list(GLOBEX).await.is_empty(),
        "globex sees none of acme's"
    );
    assert_eq!(snapshot(&api, &id).await, before);
    assert_eq!(rx.stats().requests, 0, "the test call did not send");
    assert_eq!(evil.stats().requests, 0);
    // Globex's events never reach acme's webhook.
    api.emit(GLOBEX, "order.placed", json!({})).await;
    let report = server.bus.shutdown(LONG).await;
    assert!(report.is_clean(), "{report}");
    assert_eq!(rx.stats().requests, 0);
}

#[tokio::test]
async fn guessed_ids_and_path_tricks_are_404() {
    let server = Server::new().await;
    let api = server.api();
    let rx = receiver().await;
    let created = api.create(ACME, &rx.url(), &["order.*"]).await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let before = snapshot(&api, &id).await;
    let guesses = [
        "wh_00000000000000000000000000000000".to_owned(),
        id.to_uppercase(),
        format!("{id}%20"),
        format!("{id}%00"),
        format!("%2e%2e%2f{id}"),
        format!("..%2F{id}"),
        id[..id.len() - 1].to_owned(),
        format!("{id}x"),
        "%2e%2e".to_owned(),
        "*".to_owned(),
    ];
    for g in &guesses {
        for (method, path) in [
            ("GET", format!("/v1/webhooks/{g}")),
            ("DELETE", format!("/v1/webhooks/{g}")),
            ("POST", format!("/v1/webhooks/{g}/disable")),
        ] {
            let a = api.call(method, &path, ACME, None).await;
            assert_eq!(a.status, 404, "{method} {path}: {a:?}");
            assert_eq!(a.content_type, "application/problem+json");
        }
    }
    // Paths that try to reach acme's webhook through another route.
    for path in [
        format!("/v1/webhooks/x/../{id}"),
        format!("/v1/webhooks//{id}"),
        format!("/v1//webhooks/{id}"),
        format!("/v1/webhooks/{id}/"),
        format!("/v1/webhooks/{id}/disable/x"),
    ] {
        let a = api.call("DELETE", &path, GLOBEX, None).await;
        assert!(a.status == 404 || a.status == 405, "DELETE {path}: {a:?}");
        let a = api
            .call("POST", &format!("{path}/disable"), GLOBEX, None)
            .await;
        assert!(a.status == 404 || a.status == 405, "{path}/disable: {a:?}");
    }
    assert_eq!(snapshot(&api, &id).await, before);
}

/// An id in a PATCH body naming another webhook, another tenant's or this
/// tenant's own other one, is a 404 and changes neither; fields a tenant
/// must not set (`tenant`, `status`) are refused.
#[tokio::test]
async fn ids_in_patch_bodies_change_nothing() {
    let server = Server::new().await;
    let api = server.api();
    let rx = receiver().await;
    let mine = api.create(GLOBEX, &rx.url(), &["a"]).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let theirs = api.create(ACME, &rx.url(), &["a"]).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = snapshot(&api, &theirs).await;
    let evil = receiver().await;
    let a = api
        .call(
            "PATCH",
            &format!("/v1/webhooks/{mine}"),
            GLOBEX,
            Some(json!({"id": theirs, "url": evil.url()})),
        )
        .await;
    a.assert_problem(404, None);
    for field in ["tenant", "status", "created_at"] {
        let a = api
            .call(
                "PATCH",
                &format!("/v1/webhooks/{mine}"),
                GLOBEX,
                Some(json!({field: "acme"})),
            )
            .await;
        a.assert_problem(422, Some(field));
    }
    let a = api
        .call(
            "POST",
            "/v1/webhooks",
            GLOBEX,
            Some(json!({"name": "x", "url": evil.url(), "events": ["a"], "tenant": "acme"})),
        )
        .await;
    a.assert_problem(422, Some("tenant"));
    assert_eq!(snapshot(&api, &theirs).await, before);
    let mine_now = api
        .call("GET", &format!("/v1/webhooks/{mine}"), GLOBEX, None)
        .await;
    assert_eq!(mine_now.body["url"], rx.url());
    assert_eq!(api.list(ACME).await.len(), 1);
    assert_eq!(api.list(GLOBEX).await.len(), 1);
    // An event posted with another tenant in its body is still the
    // caller's.
    let a = api
        .call(
            "POST",
            "/v1/events",
            GLOBEX,
            Some(json!({"type": "a", "data": {}, "tenant": "acme"})),
        )
        .await;
    a.assert_problem(422, Some("tenant"));
}

/// No token, an unknown token, a malformed header: 401 problem details,
/// for every route.
#[tokio::test]
async fn callers_without_a_valid_token_get_401() {
    let server = Server::new().await;
    let api = server.api();
    let rx = receiver().await;
    let id = api.create(ACME, &rx.url(), &["a"]).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for token in [
        None,
        Some("nope"),
        Some(""),
        Some("tok-acmex"),
        Some("TOK-ACME"),
    ] {
        for (method, path) in [
            ("GET", "/v1/webhooks".to_owned()),
            ("POST", "/v1/webhooks".to_owned()),
            ("GET", format!("/v1/webhooks/{id}")),
            ("DELETE", format!("/v1/webhooks/{id}")),
            ("POST", "/v1/events".to_owned()),
        ] {
            let a = api.raw(method, &path, token, Some(b"{}".to_vec())).await;
            a.assert_problem(401, None);
        }
    }
    assert_eq!(api.list(ACME).await.len(), 1);
}

/// The bus's own events carry no tenant: a tenant's webhook on
/// `hookbus.**` gets those about its own tenant's webhooks, never those
/// about another tenant's; `**` alone takes none of them.
#[tokio::test]
async fn a_hookbus_webhook_gets_the_bus_events_about_its_own_tenant_only() {
    let server = Server::new().await;
    let api = server.api();
    let (monitor, everything, plain) = (receiver().await, receiver().await, receiver().await);
    let create = async |token: &str, url: &str, events: &[&str]| {
        let a = api.create(token, url, events).await;
        assert_eq!(a.status, 201, "{a:?}");
        a.body["id"].as_str().unwrap().to_owned()
    };
    create(ACME, &monitor.url(), &["hookbus.**"]).await;
    create(ACME, &everything.url(), &["**"]).await;
    let ours = create(ACME, &plain.url(), &["order.placed"]).await;
    let theirs = create(GLOBEX, &plain.url(), &["order.placed"]).await;
    // Every bus event, as the bus emits it.
    let bus_events = hookbus::testing::BusProbe::new(&server.bus, "hookbus.**").unwrap();
    // Each tenant disables its webhook, then emits an event it refuses:
    // an `endpoint_disabled` and a `delivery_failed` about each.
    for (token, id) in [(GLOBEX, &theirs), (ACME, &ours)] {
        let a = api
            .call("POST", &format!("/v1/webhooks/{id}/disable"), token, None)
            .await;
        assert_eq!(a.status, 200, "{a:?}");
        assert_eq!(api.emit(token, "order.placed", json!({})).await.status, 202);
    }
    let about = |e: &hookbus::Event| {
        let d = e.data();
        d["webhook"]
            .as_str()
            .or(d["subscriber"].as_str())
            .unwrap_or("")
            .to_owned()
    };
    // All four emitted (and routed) before the shutdown drains the rest.
    let seen = bus_events.wait_for(4).await.unwrap();
    assert_eq!(seen.iter().filter(|e| about(e) == theirs).count(), 2);
    everything.wait_for_events(1).await.unwrap();
    let report = server.bus.shutdown(LONG).await;
    assert!(report.is_clean(), "{report}");
    let mut got: Vec<(String, String)> = monitor
        .events()
        .iter()
        .map(|e| (e.event_type().to_owned(), about(e)))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("hookbus.delivery_failed".to_owned(), ours.clone()),
            ("hookbus.endpoint_disabled".to_owned(), ours.clone()),
        ],
        "only the bus events about acme's webhook"
    );
    let all: Vec<String> = everything
        .events()
        .iter()
        .map(|e| e.event_type().to_owned())
        .collect();
    assert_eq!(
        all,
        vec!["order.placed".to_owned()],
        "`**` takes no bus event"
    );
}
