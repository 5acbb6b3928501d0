//! One hookbus posting to another with nothing chosen but the URL and the
//! secret: the default webhook's signature scheme and wire mode are what a
//! default ingress accepts, and every attribute of the event arrives.

use std::time::Duration;

use hookbus::ingress::Ingress;
use hookbus::signature::{Secret, SignatureScheme};
use hookbus::verify::Verifier;
use hookbus::webhook::{WebhookEmitter, WebhookSink};
use hookbus::{Bus, Event};
use serde_json::json;
use tokio::sync::mpsc;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A bus behind an ingress whose CloudEvents route verifies the default
/// scheme, served from its own task; the URL and what arrives on the bus.
async fn receiving_bus() -> (String, mpsc::UnboundedReceiver<Event>) {
    let bus = Bus::new().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    bus.on("order.*", move |e: &Event| {
        let _ = tx.send(e.clone());
    })
    .unwrap()
    .detach();
    let verifier =
        Verifier::for_scheme(&SignatureScheme::default(), &[Secret::new(SECRET)]).unwrap();
    let app = Ingress::new(bus)
        .cloudevents("/events", verifier)
        .into_router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/events"), rx)
}

/// An event with every optional attribute and an extension of each type.
fn full_event() -> Event {
    Event::builder("order.paid")
        .source("https://shop.example.com/orders")
        .subject("order/42")
        .dataschema("https://shop.example.com/schemas/order-paid.json")
        .extension("tenant", "acme")
        .extension("attempt", 3)
        .extension("priority", true)
        .data(json!({"order_id": 42, "total": {"amount": 1999, "currency": "EUR"}, "note": "Zoë \"quoted\" 100%"}))
        .build()
        .unwrap()
}

/// Fails the test instead of hanging if an event never arrives (a guard,
/// not a synchronisation: the event is awaited on the channel).
async fn next(rx: &mut mpsc::UnboundedReceiver<Event>) -> Event {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("no event arrived within 20 s")
        .expect("the receiving bus is alive")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_default_webhook_to_a_default_ingress_arrives_intact() {
    let (url, mut received) = receiving_bus().await;
    let sending = Bus::new().unwrap();
    let _subscription = WebhookSink::builder(&url)
        .secret(SECRET)
        .build()
        .unwrap()
        .subscribe(&sending)
        .unwrap();
    let sent = full_event();
    sending.emit(sent.clone()).unwrap();
    let got = next(&mut received).await;
    assert_eq!(got, sent, "every attribute arrives as sent");
    assert_eq!(got.extensions(), sent.extensions());
    assert_eq!(got.time_rfc3339(), sent.time_rfc3339());
}

#[tokio::test]
async fn a_default_emitter_to_a_default_ingress_is_accepted() {
    let (url, mut received) = receiving_bus().await;
    let emitter = WebhookEmitter::builder(&url)
        .secret(SECRET)
        .build_emitter()
        .unwrap();
    let sent = full_event();
    let outcome = emitter.emit(sent.clone()).await;
    assert!(outcome.is_delivered(), "{outcome:?}");
    assert_eq!(outcome.status_code, Some(200));
    assert_eq!(next(&mut received).await, sent);
}

#[test]
fn the_default_scheme_is_standard_webhooks() {
    assert_eq!(
        SignatureScheme::default(),
        SignatureScheme::standard_webhooks()
    );
}
