#![cfg(feature = "webhook")]
//! The process-wide default bus: emitting before setup, setup from a webhook
//! URL, replacing it, shutting down, setup from a bus, and refused setups.
//!
//! These share process-wide state, so one test walks the scenarios in order
//! (this file holds no other test).

mod webhook_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookbus::catalog::decision::DriftDetected;
use hookbus::{Bus, DefaultEmitError, EmitError, NoDefaultBus, Setup, SetupError};
use serde_json::json;
use webhook_support::{Receiver, hmac_hex};

const SECRET: &str = "my-secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_bus_lifecycle() {
    // 1. Before setup: a clear error with the event back, for every helper.
    let err = hookbus::emit("decision.captured", json!({"decision_id": "abc123"})).unwrap_err();
    assert!(matches!(err, DefaultEmitError::NotSetUp(_)), "{err:?}");
    assert!(err.to_string().contains("call hookbus::setup"), "{err}");
    let event = err.into_event().unwrap();
    assert_eq!(event.event_type(), "decision.captured");
    assert_eq!(event.data()["decision_id"], "abc123");
    let err = hookbus::global::emit_low_confidence(json!({"confidence": 0.5})).unwrap_err();
    assert_eq!(
        err.into_event().unwrap().event_type(),
        "decision.low_confidence"
    );
    let err = hookbus::global::emit_drift_detected(json!({"window": "1h"})).unwrap_err();
    assert_eq!(
        err.into_event().unwrap().event_type(),
        "decision.drift_detected"
    );
    // The verbs a `Bus` has, likewise.
    let err = hookbus::emit_payload("decision.scored", 7u32).unwrap_err();
    assert!(matches!(err, DefaultEmitError::NotSetUp(_)), "{err:?}");
    let err = hookbus::emit_json("decision.reviewed", json!({"by": "ops"})).unwrap_err();
    assert_eq!(err.into_event().unwrap().data()["by"], "ops");
    let err = hookbus::publish(DriftDetected {
        window: "0h".into(),
        drift_score: 0.0,
    })
    .await
    .unwrap_err();
    assert!(matches!(err, DefaultEmitError::NotSetUp(_)), "{err:?}");
    assert_eq!(
        hookbus::shutdown(Duration::from_secs(1)).await.unwrap_err(),
        NoDefaultBus::NotSetUp
    );
    assert!(hookbus::default_bus().is_none());
    // An invalid type is refused as invalid, set up or not.
    let err = hookbus::emit("not a type", json!({})).unwrap_err();
    assert!(
        matches!(err, DefaultEmitError::Bus(EmitError::Invalid(_))),
        "{err:?}"
    );

    // 2. setup(webhook_url, webhook_secret, events): only those types go out, signed.
    let mut first = Receiver::ok().await;
    hookbus::setup(Setup::webhook(
        &first.url,
        SECRET,
        ["decision.low_confidence", "decision.drift_detected"],
    ))
    .unwrap();
    let first_bus = hookbus::default_bus().expect("a default bus after setup");
    hookbus::emit("decision.captured", json!({"decision_id": "skipped"})).unwrap();
    hookbus::global::emit_low_confidence(json!({"decision_id": "abc123", "confidence": 0.72}))
        .unwrap();
    let r = first.next().await;
    assert_eq!(r.header("ce-type"), Some("decision.low_confidence"));
    assert_eq!(r.json()["decision_id"], "abc123");
    let expected = format!("sha256={}", hmac_hex(SECRET.as_bytes(), &r.body));
    assert_eq!(r.header("X-Briefcase-Signature"), Some(expected.as_str()));
    // A typed catalog event through the generic helper.
    hookbus::emit_event(DriftDetected {
        window: "1h".into(),
        drift_score: 0.18,
    })
    .unwrap();
    let r = first.next().await;
    assert_eq!(r.header("ce-type"), Some("decision.drift_detected"));
    assert_eq!(r.json(), json!({"window": "1h", "drift_score": 0.18}));

    // 3. Replacing: the old bus drains what it had, later emits go to the new one.
    let mut second = Receiver::ok().await;
    hookbus::global::emit_drift_detected(json!({"window": "before-replace", "drift_score": 0.2}))
        .unwrap();
    hookbus::setup(Setup::webhook(&second.url, SECRET, ["decision.*"])).unwrap();
    hookbus::global::emit_drift_detected(json!({"window": "after-replace", "drift_score": 0.3}))
        .unwrap();
    assert_eq!(first.next().await.json()["window"], "before-replace");
    assert_eq!(second.next().await.json()["window"], "after-replace");

    // 4. shutdown: flushes the current bus, waits for the replaced one.
    let report = hookbus::shutdown(Duration::from_secs(10)).await.unwrap();
    assert!(report.is_clean(), "{report}");
    let webhook = report
        .subscriber(hookbus::global::SETUP_WEBHOOK_NAME)
        .unwrap();
    assert_eq!(webhook.stats.delivered, 1);
    assert!(first_bus.is_closed(), "the replaced bus was shut down");
    assert_eq!(first.requests(), 3);
    assert_eq!(second.requests(), 1);
    let err = hookbus::global::emit_low_confidence(json!({"confidence": 0.1})).unwrap_err();
    assert!(matches!(err, DefaultEmitError::ShutDown(_)), "{err:?}");
    assert!(err.to_string().contains("setup"), "{err}");
    assert_eq!(
        hookbus::shutdown(Duration::from_secs(1)).await.unwrap_err(),
        NoDefaultBus::ShutDown
    );

    // 5. setup(event_bus): closure subscribers on a bus of our own.
    let bus = Bus::new().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    bus.on("decision.*", move |e| {
        s.lock().unwrap().push(e.event_type().to_owned())
    })
    .unwrap()
    .detach();
    hookbus::setup(bus.clone()).unwrap();
    hookbus::global::emit_low_confidence(json!({"confidence": 0.4})).unwrap();
    hookbus::global::emit_drift_detected(json!({"drift_score": 0.4})).unwrap();
    // The same verbs as on a `Bus`.
    hookbus::emit_payload(format!("decision.{}", "scored"), 7u32).unwrap();
    hookbus::emit_json("decision.reviewed", json!({"by": "ops"})).unwrap();
    hookbus::publish(DriftDetected {
        window: "2h".into(),
        drift_score: 0.5,
    })
    .await
    .unwrap();
    assert!(hookbus::emit_payload("not a type", 1u8).is_err());

    // 6. Refused setups leave the configuration in place.
    let no_runtime = std::thread::spawn(|| {
        hookbus::setup(Setup::webhook("http://127.0.0.1:9/hook", SECRET, ["x"]))
    })
    .join()
    .unwrap();
    assert_eq!(no_runtime.unwrap_err(), SetupError::NoRuntime);
    let insecure = hookbus::setup(Setup::webhook("http://hooks.example.com/x", SECRET, ["x"]));
    let msg = insecure.unwrap_err().to_string();
    assert!(msg.contains("https") && !msg.contains(SECRET), "{msg}");
    let closed = Bus::new().unwrap();
    closed.shutdown(Duration::from_secs(1)).await;
    assert_eq!(hookbus::setup(closed).unwrap_err(), SetupError::BusClosed);
    // Emitting from a thread outside the runtime works.
    std::thread::spawn(|| hookbus::emit("decision.captured", json!({"decision_id": "t"})).unwrap())
        .join()
        .unwrap();

    // 7. Replacing a bus that was given: it is detached, not shut down.
    let mut third = Receiver::ok().await;
    let emitter = hookbus::webhook::WebhookEmitter::builder(&third.url)
        .secret(SECRET)
        .build_emitter()
        .unwrap();
    hookbus::setup(emitter.clone()).unwrap();
    assert!(
        !bus.is_closed(),
        "a bus passed by the user is never shut down by setup"
    );
    hookbus::emit("order.placed", json!({"order": 1})).unwrap();
    assert_eq!(third.next().await.data(), json!({"order": 1}));
    hookbus::shutdown(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        emitter.sink().stats().delivered,
        1,
        "the emitter's stats are shared"
    );
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "decision.low_confidence",
            "decision.drift_detected",
            "decision.scored",
            "decision.reviewed",
            "decision.drift_detected",
            "decision.captured"
        ]
    );
    assert!(!bus.is_closed());
    bus.shutdown(Duration::from_secs(1)).await;
}
