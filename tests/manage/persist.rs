//! Restarts (feature `durable`): endpoints, their secrets, their state and
//! their pending deliveries survive; secrets sit in a 0600 file and
//! nowhere else.

use std::path::Path;
use std::time::Duration;

use hookbus::Bus;
use hookbus::store::Store;
use hookbus::testing::Reply;
use serde_json::json;

use super::{ACME, GLOBEX, LONG, Server, receiver, verified};

async fn open(dir: &Path) -> (Server, Store) {
    let store = Store::open(dir.join("hookbus.redb")).unwrap();
    let bus = Bus::new().unwrap();
    let server = Server::start(
        &bus,
        super::builder(&bus).durable(&store, dir.join("secrets.json")),
    )
    .await;
    (server, store)
}

async fn close(server: Server, store: Store, deadline: Duration) {
    let bus = server.stop().await;
    let _ = bus.shutdown(deadline).await;
    drop(store);
}

#[tokio::test]
async fn endpoints_secrets_and_state_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (rx_a, rx_b) = (receiver().await, receiver().await);
    let (server, store) = open(dir.path()).await;
    let api = server.api();
    let a = api.create(ACME, &rx_a.url(), &["order.*"]).await;
    assert_eq!(a.status, 201, "{a:?}");
    let a_id = a.body["id"].as_str().unwrap().to_owned();
    let a_secret = a.body["secret"].as_str().unwrap().to_owned();
    let patched = api
        .call(
            "PATCH",
            &format!("/v1/webhooks/{a_id}"),
            ACME,
            Some(json!({"name": "orders"})),
        )
        .await;
    assert_eq!(patched.status, 200, "{patched:?}");
    let b = api.create(GLOBEX, &rx_b.url(), &["order.*"]).await;
    let b_id = b.body["id"].as_str().unwrap().to_owned();
    let b_secret = b.body["secret"].as_str().unwrap().to_owned();
    let d = api
        .call(
            "POST",
            &format!("/v1/webhooks/{b_id}/disable"),
            GLOBEX,
            None,
        )
        .await;
    assert_eq!(d.body["status"], "disabled");
    // A durable webhook's PATCH updates it in place: still disabled after.
    let p = api
        .call(
            "PATCH",
            &format!("/v1/webhooks/{b_id}"),
            GLOBEX,
            Some(json!({"name": "globex-orders"})),
        )
        .await;
    assert_eq!(p.status, 200, "{p:?}");
    assert_eq!(p.body["status"], "disabled");
    let deleted = api.create(ACME, &rx_a.url(), &["gone"]).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        api.call("DELETE", &format!("/v1/webhooks/{deleted}"), ACME, None)
            .await
            .status,
        204
    );
    let before_a = api.list(ACME).await;
    let before_b = api.list(GLOBEX).await;
    close(server, store, LONG).await;

    // Secrets at rest: only in the 0600 file, not in the store.
    let secrets = dir.path().join("secrets.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secrets).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let kept = std::fs::read_to_string(&secrets).unwrap();
    assert!(kept.contains(&a_secret) && kept.contains(&b_secret));
    assert!(
        !kept.contains(&deleted),
        "a deleted webhook's secret is gone"
    );
    let file = std::fs::read(dir.path().join("hookbus.redb")).unwrap();
    for s in [&a_secret, &b_secret] {
        assert!(
            !file.windows(s.len()).any(|w| w == s.as_bytes()),
            "a secret in the store file"
        );
    }

    let (server, store) = open(dir.path()).await;
    let api = server.api();
    assert_eq!(api.list(ACME).await, before_a);
    assert_eq!(api.list(GLOBEX).await, before_b);
    assert_eq!(before_a[0]["name"], "orders");
    assert_eq!(before_b[0]["status"], "disabled");
    assert_eq!(before_b[0]["name"], "globex-orders");
    // Acme's webhook still signs with the secret it was given, and still
    // gets acme's events only.
    api.emit(GLOBEX, "order.placed", json!({"n": 1})).await;
    api.emit(ACME, "order.placed", json!({"n": 2})).await;
    let got = rx_a.wait_for(1).await.unwrap();
    assert_eq!(verified(&got[0], &a_secret)["data"]["n"], 2);
    // Globex's, disabled before the restart, kept its event for
    // retry_failed; enabled, it delivers it, signed with its secret.
    let get = format!("/v1/webhooks/{b_id}");
    super::until("globex's refused event", || async {
        api.call("GET", &get, GLOBEX, None).await.body["failed_events"] == 1
    })
    .await;
    api.call("POST", &format!("/v1/webhooks/{b_id}/enable"), GLOBEX, None)
        .await;
    let r = api
        .call(
            "POST",
            &format!("/v1/webhooks/{b_id}/retry_failed"),
            GLOBEX,
            Some(json!({})),
        )
        .await;
    assert_eq!(r.body["retried"], 1, "{r:?}");
    let got = rx_b.wait_for(1).await.unwrap();
    assert_eq!(verified(&got[0], &b_secret)["data"]["n"], 1);
    close(server, store, LONG).await;
}

/// Deliveries still pending at a shutdown (waiting for a retry) are sent
/// after the restart.
#[tokio::test]
async fn pending_deliveries_resume_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rx = receiver().await;
    rx.set_default_reply(Reply::unavailable()).unwrap();
    let (server, store) = open(dir.path()).await;
    let api = server.api();
    let created = api
        .call(
            "POST",
            "/v1/webhooks",
            ACME,
            Some(json!({
                "name": "slow",
                "url": rx.url(),
                "events": ["job.*"],
                "retry_config": {"max_retries": 10, "initial_delay_ms": 200, "max_delay_ms": 200},
            })),
        )
        .await;
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    for n in 0..3 {
        api.emit(ACME, "job.done", json!({"n": n})).await;
    }
    // Each was tried once and is waiting for its retry: stop now.
    rx.wait_for(3).await.unwrap();
    close(server, store, Duration::ZERO).await;

    rx.set_default_reply(Reply::ok()).unwrap();
    let (server, store) = open(dir.path()).await;
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
    close(server, store, LONG).await;
}

/// A secrets file others can read is made 0600 at open; one that is not a
/// secrets file is an error that does not quote it.
#[cfg(unix)]
#[tokio::test]
async fn the_secrets_file_is_kept_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets.json");
    std::fs::write(&path, "{}").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let store = Store::open(dir.path().join("s.redb")).unwrap();
    let bus = Bus::new().unwrap();
    super::builder(&bus).durable(&store, &path).build().unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    std::fs::write(&path, "whsec_TOPSECRETVALUE not json").unwrap();
    let err = super::builder(&bus)
        .durable(&store, &path)
        .build()
        .unwrap_err();
    assert!(!err.to_string().contains("TOPSECRET"), "{err}");
    assert!(
        matches!(err, hookbus::manage::ManageError::Secrets { .. }),
        "{err:?}"
    );
}

/// Replay (a store that keeps delivered events): the events delivered since
/// a time are sent again, with the same ids, signed with the same secret.
#[tokio::test]
async fn replay_sends_delivered_events_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::builder(dir.path().join("hookbus.redb"))
        .keep_delivered(Duration::from_secs(3600), 1000)
        .open()
        .unwrap();
    let bus = Bus::new().unwrap();
    let server = Server::start(
        &bus,
        super::builder(&bus).durable(&store, dir.path().join("secrets.json")),
    )
    .await;
    let api = server.api();
    let rx = receiver().await;
    let created = api.create(ACME, &rx.url(), &["a.*"]).await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    let mut ids = Vec::new();
    for n in 0..2 {
        ids.push(
            api.emit(ACME, "a.b", json!({"n": n})).await.body["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    rx.wait_for(2).await.unwrap();
    // The delivered mark is written when the delivery ends: wait until the
    // store has both (a replay before would find fewer).
    super::until("both kept as delivered", || async {
        store.sync().await.unwrap();
        store.summary().unwrap().delivered == 2
    })
    .await;
    let r = api
        .call(
            "POST",
            &format!("/v1/webhooks/{id}/replay"),
            ACME,
            Some(json!({"since": "2020-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.body["retried"], 2);
    let got = rx.wait_for(4).await.unwrap();
    let mut again: Vec<String> = got[2..]
        .iter()
        .map(|q| verified(q, &secret)["id"].as_str().unwrap().to_owned())
        .collect();
    again.sort();
    ids.sort();
    assert_eq!(again, ids);
    close(server, store, LONG).await;
}

/// A rotation survives a restart: the new secret and, during its grace,
/// the old one keep signing.
#[tokio::test]
async fn a_rotated_secret_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rx = receiver().await;
    let (server, store) = open(dir.path()).await;
    let api = server.api();
    let created = api.create(ACME, &rx.url(), &["a"]).await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let old = created.body["secret"].as_str().unwrap().to_owned();
    let r = api
        .call(
            "POST",
            &format!("/v1/webhooks/{id}/rotate_secret"),
            ACME,
            Some(json!({"grace_seconds": 3600})),
        )
        .await;
    let new = r.body["secret"].as_str().unwrap().to_owned();
    close(server, store, LONG).await;
    let (server, store) = open(dir.path()).await;
    server.api().emit(ACME, "a", json!({})).await;
    let got = rx.wait_for(1).await.unwrap();
    verified(&got[0], &new);
    verified(&got[0], &old);
    close(server, store, LONG).await;
}

/// A PATCH that changes a durable webhook's events or filters re-routes it
/// in place: every event emitted all through the PATCHes, from another
/// thread, reaches the receiver. (The webhook used to be unsubscribed and
/// subscribed again, and what was emitted between the two was lost to it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_of_a_durable_webhook_misses_no_event() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let dir = tempfile::tempdir().unwrap();
    let rx = receiver().await;
    let (server, store) = open(dir.path()).await;
    let api = server.api();
    let created = api.create(ACME, &rx.url(), &["order.placed"]).await;
    assert_eq!(created.status, 201, "{created:?}");
    let id = created.body["id"].as_str().unwrap().to_owned();

    // Emits order.placed for acme, one after another, until told to stop
    // (then ten more); returns how many.
    let patched = Arc::new(AtomicBool::new(false));
    let emitter = {
        let bus = server.bus.clone();
        let patched = patched.clone();
        tokio::spawn(async move {
            let (mut n, mut after) = (0u64, 0);
            while after < 10 {
                let e = hookbus::Event::builder("order.placed")
                    .data(json!({"n": n, "kind": "a"}))
                    .extension("tenant", "acme")
                    .build()
                    .unwrap();
                bus.publish(e).await.unwrap();
                n += 1;
                if patched.load(Ordering::SeqCst) {
                    after += 1;
                }
                tokio::task::yield_now().await;
            }
            n
        })
    };
    // The emitter is under way.
    rx.wait_for(5).await.unwrap();
    // Each changes what the subscription used to be made of; each still
    // takes every order.placed of kind a.
    for body in [
        json!({"events": ["order.*", "invoice.*"]}),
        json!({"filters": {"kind": ["a"]}, "events": ["order.placed"]}),
        json!({"events": ["order.placed", "refund.*"], "retry_config": {"max_retries": 3}}),
        json!({"url": rx.url(), "name": "renamed"}),
    ] {
        let a = api
            .call("PATCH", &format!("/v1/webhooks/{id}"), ACME, Some(body))
            .await;
        assert_eq!(a.status, 200, "{a:?}");
    }
    patched.store(true, Ordering::SeqCst);
    let n = emitter.await.unwrap();
    let got = |reqs: &[hookbus::testing::ReceivedRequest]| {
        let mut ns: Vec<u64> = reqs
            .iter()
            .map(|r| r.json().unwrap()["data"]["n"].as_u64().unwrap())
            .collect();
        ns.sort();
        ns.dedup();
        ns
    };
    rx.wait_until("every event emitted", |reqs| got(reqs).len() as u64 == n)
        .await
        .unwrap_or_else(|_| {
            let ns = got(&rx.requests());
            let missing: Vec<u64> = (0..n).filter(|k| ns.binary_search(k).is_err()).collect();
            panic!(
                "{} of {n} events never reached the webhook: {missing:?}",
                missing.len()
            )
        });
    close(server, store, LONG).await;
}
