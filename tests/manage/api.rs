//! The contract, call by call, over HTTP.

use hookbus::testing::Reply;
use serde_json::json;

use super::{ACME, GLOBEX, LONG, Server, receiver, verified};

/// Create returns 201 with the id, the fields, the status and a generated
/// `whsec_` secret; the delivery of a posted event verifies with that
/// secret; list and get never show it again.
#[tokio::test]
async fn create_returns_a_secret_once_and_deliveries_verify_with_it() {
    let server = Server::new().await;
    let api = server.api();
    let rx = receiver().await;
    let created = api.create(ACME, &rx.url(), &["order.*"]).await;
    assert_eq!(created.status, 201, "{created:?}");
    let b = &created.body;
    let id = b["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("wh_"), "{id}");
    assert_eq!(b["name"], "test-endpoint");
    assert_eq!(b["url"], rx.url());
    assert_eq!(b["events"], json!(["order.*"]));
    assert_eq!(b["status"], "enabled");
    assert_eq!(b["retry_config"], json!({"max_retries": 0}));
    let secret = b["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "a Standard Webhooks secret");

    let listed = api.list(ACME).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());
    assert!(listed[0].get("secret").is_none(), "{listed:?}");
    let got = api
        .call("GET", &format!("/v1/webhooks/{id}"), ACME, None)
        .await;
    assert_eq!(got.status, 200);
    assert!(got.body.get("secret").is_none(), "{got:?}");
    assert!(!got.body.to_string().contains(&secret));

    let posted = api.emit(ACME, "order.placed", json!({"n": 1})).await;
    assert_eq!(posted.status, 202, "{posted:?}");
    let event_id = posted.body["id"].as_str().unwrap().to_owned();
    let requests = rx.wait_for(1).await.unwrap();
    let body = verified(&requests[0], &secret);
    assert_eq!(body["id"], event_id.as_str());
    assert_eq!(body["type"], "order.placed");
    assert_eq!(body["data"], json!({"n": 1}));
    assert_eq!(
        body["tenant"], "acme",
        "the tenant extension is on the event"
    );
    // A secret given at creation is the one that signs.
    let rx2 = receiver().await;
    let given = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let b2 = api
        .call(
            "POST",
            "/v1/webhooks",
            ACME,
            Some(json!({"name": "given", "url": rx2.url(), "events": ["invoice.paid"], "secret": given})),
        )
        .await;
    assert_eq!(b2.status, 201, "{b2:?}");
    assert_eq!(b2.body["secret"], given);
    api.emit(ACME, "invoice.paid", json!({})).await;
    let r2 = rx2.wait_for(1).await.unwrap();
    verified(&r2[0], given);
    assert_eq!(rx.stats().requests, 1, "order.* did not get invoice.paid");
    drop(server);
}

/// Events posted by one tenant reach only that tenant's webhooks, even on
/// the same event type (routed by the `tenant` key).
#[tokio::test]
async fn events_reach_only_their_tenants_webhooks() {
    let server = Server::new().await;
    let api = server.api();
    let (rx_acme, rx_globex) = (receiver().await, receiver().await);
    assert_eq!(
        api.create(ACME, &rx_acme.url(), &["order.placed"])
            .await
            .status,
        201
    );
    assert_eq!(
        api.create(GLOBEX, &rx_globex.url(), &["order.placed"])
            .await
            .status,
        201
    );
    for n in 0..3 {
        assert_eq!(
            api.emit(ACME, "order.placed", json!({"n": n})).await.status,
            202
        );
    }
    assert_eq!(
        api.emit(GLOBEX, "order.placed", json!({"n": 9}))
            .await
            .status,
        202
    );
    // The bus's shutdown delivers everything in flight: after it, what each
    // receiver has is all it will ever get.
    let report = server.bus.shutdown(LONG).await;
    assert!(report.is_clean(), "{report}");
    let acme: Vec<_> = rx_acme
        .events()
        .iter()
        .map(|e| e.data()["n"].clone())
        .collect();
    let globex: Vec<_> = rx_globex
        .events()
        .iter()
        .map(|e| e.data()["n"].clone())
        .collect();
    assert_eq!(acme.len(), 3, "{acme:?}");
    assert!(acme.iter().all(|n| n != 9));
    assert_eq!(globex, vec![json!(9)]);
}

/// PATCH changes fields and keeps the id, the secret and the status; the
/// next delivery goes to the new URL, signed with the same secret.
#[tokio::test]
async fn patch_changes_fields_and_keeps_the_secret() {
    let server = Server::new().await;
    let api = server.api();
    let (old, new) = (receiver().await, receiver().await);
    let created = api.create(ACME, &old.url(), &["a.b"]).await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    let patched = api
        .call(
            "PATCH",
            &format!("/v1/webhooks/{id}"),
            ACME,
            Some(json!({"url": new.url(), "name": "renamed", "events": ["c.*"]})),
        )
        .await;
    assert_eq!(patched.status, 200, "{patched:?}");
    assert_eq!(patched.body["id"], id.as_str());
    assert_eq!(patched.body["name"], "renamed");
    assert_eq!(patched.body["events"], json!(["c.*"]));
    assert!(patched.body.get("secret").is_none());
    api.emit(ACME, "c.d", json!({})).await;
    let got = new.wait_for(1).await.unwrap();
    verified(&got[0], &secret);
    assert_eq!(old.stats().requests, 0);
}

/// test sends one event now and says how it went, in the Rubric shape.
#[tokio::test]
async fn test_reports_status_code_and_body() {
    let server = Server::new().await;
    let api = server.api();
    let rx = receiver().await;
    let created = api.create(ACME, &rx.url(), &["evaluation.completed"]).await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    let t = api
        .call(
            "POST",
            &format!("/v1/webhooks/{id}/test"),
            ACME,
            Some(json!({"event_type": "evaluation.completed", "payload": {"evaluation_id": "eval_test"}})),
        )
        .await;
    assert_eq!(t.status, 200, "{t:?}");
    assert_eq!(t.body["status"], "success");
    assert_eq!(t.body["response_code"], 200);
    assert!(t.body.get("response_body").is_some());
    let req = rx.wait_for(1).await.unwrap();
    let body = verified(&req[0], &secret);
    assert_eq!(body["data"]["evaluation_id"], "eval_test");

    rx.set_default_reply(Reply::status(418)).unwrap();
    let t = api
        .call(
            "POST",
            &format!("/v1/webhooks/{id}/test"),
            ACME,
            Some(json!({"event_type": "evaluation.completed", "payload": {}})),
        )
        .await;
    assert_eq!(t.body["status"], "failed", "{t:?}");
    assert_eq!(t.body["response_code"], 418);
}

/// The delivery log pages newest first with limit and next_cursor, and
/// the pages together are the whole log, each attempt once.
#[tokio::test]
async fn deliveries_page_with_limit_and_cursor() {
    let server = Server::new().await;
    let api = server.api();
    let rx = receiver().await;
    let created = api.create(ACME, &rx.url(), &["x.y"]).await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    for n in 0..5 {
        api.emit(ACME, "x.y", json!({"n": n})).await;
    }
    rx.wait_for(5).await.unwrap();
    // The bus's shutdown waits for the deliveries under way: after it the
    // log has every attempt (the router still answers).
    let report = server.bus.shutdown(LONG).await;
    assert!(report.is_clean(), "{report}");
    let path = format!("/v1/webhooks/{id}/deliveries?limit=100");
    let all = api.call("GET", &path, ACME, None).await.body["data"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(all.len(), 5, "{all:?}");
    for d in &all {
        assert_eq!(d["success"], true);
        assert_eq!(d["event_type"], "x.y");
        assert_eq!(d["response_code"], 200);
        assert_eq!(d["attempts"], 1);
        assert!(d["event_id"].is_string() && d["at"].is_string());
    }
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            None => format!("/v1/webhooks/{id}/deliveries?limit=2"),
            Some(c) => format!("/v1/webhooks/{id}/deliveries?limit=2&cursor={c}"),
        };
        let page = api.call("GET", &path, ACME, None).await;
        assert_eq!(page.status, 200, "{page:?}");
        pages += 1;
        paged.extend(page.body["data"].as_array().unwrap().iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(paged, all);
}

/// Disable: events are refused and kept; enable + retry_failed sends them
/// again (202 with the count); delete: 204, then 404, and its events no
/// longer go anywhere.
#[tokio::test]
async fn disable_retry_failed_and_delete() {
    let server = Server::new().await;
    let api = server.api();
    let rx = receiver().await;
    let created = api.create(ACME, &rx.url(), &["job.done"]).await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    let since = "2020-01-01T00:00:00Z";

    let d = api
        .call("POST", &format!("/v1/webhooks/{id}/disable"), ACME, None)
        .await;
    assert_eq!(d.status, 200, "{d:?}");
    assert_eq!(d.body["status"], "disabled");
    assert_eq!(api.list(ACME).await[0]["status"], "disabled");
    for n in 0..2 {
        api.emit(ACME, "job.done", json!({"n": n})).await;
    }
    // Refused while disabled, and kept: the webhook shows them waiting.
    let get = format!("/v1/webhooks/{id}");
    super::until("two refused events", || async {
        api.call("GET", &get, ACME, None).await.body["failed_events"] == 2
    })
    .await;
    assert_eq!(rx.stats().requests, 0);

    let e = api
        .call("POST", &format!("/v1/webhooks/{id}/enable"), ACME, None)
        .await;
    assert_eq!(e.body["status"], "enabled");
    let r = api
        .call(
            "POST",
            &format!("/v1/webhooks/{id}/retry_failed"),
            ACME,
            Some(json!({"since": since})),
        )
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.body["retried"], 2);
    let got = rx.wait_for(2).await.unwrap();
    let mut ns: Vec<_> = got
        .iter()
        .map(|q| verified(q, &secret)["data"]["n"].clone())
        .collect();
    ns.sort_by_key(|v| v.as_i64());
    assert_eq!(ns, vec![json!(0), json!(1)]);

    let del = api
        .call("DELETE", &format!("/v1/webhooks/{id}"), ACME, None)
        .await;
    assert_eq!(del.status, 204);
    assert_eq!(del.body, serde_json::Value::Null);
    api.call("GET", &format!("/v1/webhooks/{id}"), ACME, None)
        .await
        .assert_problem(404, None);
    assert!(api.list(ACME).await.is_empty());
    api.emit(ACME, "job.done", json!({"n": 3})).await;
    let report = server.bus.shutdown(LONG).await;
    assert!(report.is_clean(), "{report}");
    assert_eq!(rx.stats().requests, 2, "a deleted webhook gets nothing");
}

/// The per-tenant limit: one more is a 409; another tenant is not counted.
#[tokio::test]
async fn the_endpoint_limit_is_per_tenant() {
    let bus = hookbus::Bus::new().unwrap();
    let server = Server::start(&bus, super::builder(&bus).max_endpoints(2)).await;
    let api = server.api();
    let rx = receiver().await;
    for _ in 0..2 {
        assert_eq!(api.create(ACME, &rx.url(), &["a"]).await.status, 201);
    }
    api.create(ACME, &rx.url(), &["a"])
        .await
        .assert_problem(409, None);
    assert_eq!(api.list(ACME).await.len(), 2);
    assert_eq!(api.create(GLOBEX, &rx.url(), &["a"]).await.status, 201);
    let id = api.list(ACME).await[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        api.call("DELETE", &format!("/v1/webhooks/{id}"), ACME, None)
            .await
            .status,
        204
    );
    assert_eq!(api.create(ACME, &rx.url(), &["a"]).await.status, 201);
}

/// The key hook on the webhook builder: a webhook subscribed with
/// `key("tenant", "acme")` gets acme's events only.
#[tokio::test]
async fn a_keyed_webhook_builder_routes_by_the_key() {
    let bus = hookbus::Bus::new().unwrap();
    let rx = receiver().await;
    let _sub = hookbus::webhook::WebhookSink::builder(rx.url())
        .events(["t"])
        .key("tenant", "acme")
        .build()
        .unwrap()
        .subscribe(&bus)
        .unwrap();
    for tenant in ["globex", "acme", "initech"] {
        bus.emit(
            hookbus::Event::builder("t")
                .data(json!({"tenant": tenant}))
                .extension("tenant", tenant)
                .build()
                .unwrap(),
        )
        .unwrap();
    }
    bus.emit(hookbus::Event::new("t", json!({"tenant": null})).unwrap())
        .unwrap();
    let report = bus.shutdown(LONG).await;
    assert!(report.is_clean(), "{report}");
    let got: Vec<_> = rx
        .events()
        .iter()
        .map(|e| e.data()["tenant"].clone())
        .collect();
    assert_eq!(got, vec![json!("acme")]);
}

/// A CloudEvent in structured mode is accepted as posted (its id, source,
/// subject, time); the tenant is always the caller's.
#[tokio::test]
async fn a_posted_cloudevent_keeps_its_attributes() {
    let server = Server::new().await;
    let api = server.api();
    let rx = receiver().await;
    let secret = api.create(ACME, &rx.url(), &["invoice.paid"]).await.body["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let ce = json!({
        "specversion": "1.0",
        "id": "evt-42",
        "source": "/billing",
        "type": "invoice.paid",
        "subject": "inv_7",
        "time": "2024-03-15T10:00:00Z",
        "datacontenttype": "application/json",
        "data": {"amount": 12},
    });
    let a = api.call("POST", "/v1/events", ACME, Some(ce.clone())).await;
    assert_eq!(a.status, 202, "{a:?}");
    assert_eq!(a.body["id"], "evt-42");
    let got = rx.wait_for(1).await.unwrap();
    let body = verified(&got[0], &secret);
    for k in ["id", "source", "type", "subject", "data"] {
        assert_eq!(body[k], ce[k], "{k}");
    }
    assert_eq!(body["time"], "2024-03-15T10:00:00Z");
    assert_eq!(body["tenant"], "acme");
    let mut other = ce.clone();
    other["specversion"] = json!("0.3");
    api.call("POST", "/v1/events", ACME, Some(other))
        .await
        .assert_problem(422, Some("specversion"));
    let mut spoof = ce;
    spoof["tenant"] = json!("globex");
    api.call("POST", "/v1/events", ACME, Some(spoof))
        .await
        .assert_problem(422, Some("tenant"));
}

/// The OpenAPI document: 3.1, served without a caller, every route of the
/// router in it with its methods, and (where the Python validator is
/// installed) valid against the OpenAPI 3.1 schema.
#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let server = Server::new().await;
    let api = server.api();
    let a = api.raw("GET", "/v1/openapi.json", None, None).await;
    assert_eq!(a.status, 200, "{a:?}");
    let doc = a.body;
    assert_eq!(doc["openapi"], "3.1.0");
    let routes = [
        ("/v1/webhooks", &["post", "get"][..]),
        ("/v1/webhooks/{id}", &["get", "patch", "delete"]),
        ("/v1/webhooks/{id}/disable", &["post"]),
        ("/v1/webhooks/{id}/enable", &["post"]),
        ("/v1/webhooks/{id}/test", &["post"]),
        ("/v1/webhooks/{id}/deliveries", &["get"]),
        ("/v1/webhooks/{id}/retry_failed", &["post"]),
        ("/v1/webhooks/{id}/replay", &["post"]),
        ("/v1/webhooks/{id}/rotate_secret", &["post"]),
        ("/v1/events", &["post"]),
        ("/v1/openapi.json", &["get"]),
    ];
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(paths.len(), routes.len(), "{:?}", paths.keys());
    for (path, methods) in routes {
        let item = paths.get(path).unwrap_or_else(|| panic!("{path} missing"));
        for m in methods {
            assert!(item.get(*m).is_some(), "{m} {path} missing");
        }
    }
    // The document's methods are the router's: any other is a 405.
    let rx = receiver().await;
    let id = api.create(ACME, &rx.url(), &["a"]).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (path, methods) in routes {
        let concrete = path.replace("{id}", &id);
        for m in ["get", "post", "patch", "delete", "put"] {
            if !methods.contains(&m) {
                let a = api.call(&m.to_uppercase(), &concrete, ACME, None).await;
                assert_eq!(a.status, 405, "{m} {concrete}: {a:?}");
            }
        }
    }
    if super::python_can(&["openapi_spec_validator"]) {
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import json,sys\nfrom openapi_spec_validator import validate\nvalidate(json.load(sys.stdin))\nprint('valid')",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(doc.to_string().as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!(
            "the_openapi_document_describes_every_route: openapi_spec_validator not installed; validation skipped"
        );
    }
}

/// Replay without a store that keeps delivered events: 409, nothing sent.
#[tokio::test]
async fn replay_without_kept_deliveries_is_a_conflict() {
    let server = Server::new().await;
    let api = server.api();
    let rx = receiver().await;
    let id = api.create(ACME, &rx.url(), &["a"]).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.call(
        "POST",
        &format!("/v1/webhooks/{id}/replay"),
        ACME,
        Some(json!({})),
    )
    .await
    .assert_problem(409, None);
    api.call(
        "POST",
        &format!("/v1/webhooks/{id}/replay"),
        GLOBEX,
        Some(json!({})),
    )
    .await
    .assert_problem(404, None);
    assert_eq!(rx.stats().requests, 0);
}

/// Whether a delivery verifies with `secret`.
fn verifies(req: &hookbus::testing::ReceivedRequest, secret: &str) -> bool {
    hookbus::verify::Verifier::standard_webhooks(secret)
        .unwrap()
        .verify(&req.headers, &req.body)
        .is_ok()
}

/// rotate_secret: the new secret comes back (once); during the grace each
/// delivery carries a signature for the new and one for the old secret;
/// with no grace the old one stops at once; after the grace it stops too.
#[tokio::test]
async fn rotate_secret_signs_with_both_during_the_grace() {
    let server = Server::new().await;
    let api = server.api();
    let rx = receiver().await;
    let created = api.create(ACME, &rx.url(), &["a"]).await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let old = created.body["secret"].as_str().unwrap().to_owned();
    let rotate = format!("/v1/webhooks/{id}/rotate_secret");
    let r = api.call("POST", &rotate, ACME, Some(json!({}))).await;
    assert_eq!(r.status, 200, "{r:?}");
    let new = r.body["secret"].as_str().unwrap().to_owned();
    assert!(new.starts_with("whsec_") && new != old);
    assert!(r.body["previous_valid_until"].is_string());
    let listed = api.list(ACME).await.to_vec();
    assert!(!serde_json::to_string(&listed).unwrap().contains(&new));
    // Another tenant cannot rotate it.
    api.call("POST", &rotate, GLOBEX, Some(json!({})))
        .await
        .assert_problem(404, None);

    api.emit(ACME, "a", json!({"n": 1})).await;
    let got = rx.wait_for(1).await.unwrap();
    assert!(verifies(&got[0], &new), "the new secret signs");
    assert!(
        verifies(&got[0], &old),
        "the old one still signs during the grace"
    );
    let sigs = got[0].header("webhook-signature").unwrap();
    assert_eq!(sigs.split(' ').count(), 2, "{sigs}");

    // No grace: the old one stops at once.
    let newer = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let r = api
        .call(
            "POST",
            &rotate,
            ACME,
            Some(json!({"secret": newer, "grace_seconds": 0})),
        )
        .await;
    assert_eq!(r.body["secret"], newer);
    assert!(r.body["previous_valid_until"].is_null());
    api.emit(ACME, "a", json!({"n": 2})).await;
    let got = rx.wait_for(2).await.unwrap();
    assert!(verifies(&got[1], newer));
    assert!(!verifies(&got[1], &new));

    // A one-second grace ends by itself.
    let r = api
        .call("POST", &rotate, ACME, Some(json!({"grace_seconds": 1})))
        .await;
    let last = r.body["secret"].as_str().unwrap().to_owned();
    let test = format!("/v1/webhooks/{id}/test");
    let mut seen = 2;
    super::until("the old secret to stop signing", || {
        seen += 1;
        let (api, test, rx, last) = (&api, &test, &rx, &last);
        let n = seen;
        async move {
            api.call("POST", test, ACME, Some(json!({"event_type": "a"})))
                .await;
            let got = rx.wait_for(n).await.unwrap();
            assert!(verifies(&got[n - 1], last));
            !verifies(&got[n - 1], newer)
        }
    })
    .await;

    // Bad input.
    for (body, field) in [
        (json!({"secret": "nope"}), "secret"),
        (json!({"grace_seconds": -1}), "grace_seconds"),
        (json!({"grace_seconds": 10_000_000}), "grace_seconds"),
        (json!({"secret": last.clone()}), "secret"),
        (json!({"tenant": "x"}), "tenant"),
    ] {
        api.call("POST", &rotate, ACME, Some(body))
            .await
            .assert_problem(422, Some(field));
    }
}

/// The per-tenant rate limit of an embedded API: a burst, then 429 with
/// Retry-After for that tenant only; the OpenAPI document is not counted.
/// A burst without a rate is refused at build.
#[tokio::test]
async fn the_rate_limit_is_per_tenant_and_answers_429() {
    let bus = hookbus::Bus::new().unwrap();
    let server = Server::start(
        &bus,
        super::builder(&bus)
            .rate_limit(1, std::time::Duration::from_secs(3600))
            .rate_burst(2),
    )
    .await;
    let api = server.api();
    for _ in 0..2 {
        assert_eq!(
            api.call("GET", "/v1/webhooks", ACME, None).await.status,
            200
        );
    }
    let refused = api.emit(ACME, "a.b", json!({})).await;
    refused.assert_problem(429, None);
    assert_eq!(refused.body["type"], "urn:hookbus:problem:rate-limited");
    assert_eq!(
        api.call("GET", "/v1/webhooks", GLOBEX, None).await.status,
        200
    );
    assert_eq!(
        api.raw("GET", "/v1/openapi.json", None, None).await.status,
        200
    );
    // No token: 401 before any budget is looked at.
    api.raw("GET", "/v1/webhooks", None, None)
        .await
        .assert_problem(401, None);

    let err = super::builder(&bus).rate_burst(5).build().unwrap_err();
    assert!(err.to_string().contains("rate_burst"), "{err}");
    let err = super::builder(&bus)
        .rate_limit(0, std::time::Duration::from_secs(1))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("rate_limit"), "{err}");
}

/// A webhook is routed by its event types (and its tenant's key), not by a
/// condition: the operator's view shows its patterns, and a PATCH of its
/// events re-routes the same subscription (the new types start, the old
/// ones stop).
#[tokio::test]
async fn webhooks_are_routed_by_their_events_and_a_patch_re_routes_them() {
    let server = Server::new().await;
    let api = server.api();
    let rx = receiver().await;
    let created = api.create(ACME, &rx.url(), &["a.b", "c.*"]).await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let info = &server.manage.webhooks().list()[0];
    assert_eq!(info.events, vec!["a.b".to_owned(), "c.*".to_owned()]);
    let subs = server.bus.stats().subscribers;
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].pattern, "a.b, c.* [tenant=acme]");
    let patched = api
        .call(
            "PATCH",
            &format!("/v1/webhooks/{id}"),
            ACME,
            Some(json!({"events": ["d.e"]})),
        )
        .await;
    assert_eq!(patched.status, 200, "{patched:?}");
    let after = server.bus.stats().subscribers;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].id, subs[0].id, "the same subscription");
    assert_eq!(after[0].pattern, "d.e [tenant=acme]");
    assert_eq!(
        server.manage.webhooks().list()[0].events,
        vec!["d.e".to_owned()]
    );
    for (ty, n) in [("a.b", 1), ("c.x", 2), ("d.e", 3)] {
        assert_eq!(api.emit(ACME, ty, json!({"n": n})).await.status, 202);
    }
    let report = server.bus.shutdown(LONG).await;
    assert!(report.is_clean(), "{report}");
    let got: Vec<_> = rx.events().iter().map(|e| e.data()["n"].clone()).collect();
    assert_eq!(got, vec![json!(3)]);
}
