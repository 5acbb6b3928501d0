//! A durable webhook deleted and registered again under the same name
//! (through [`WebhookManager`], as the management API's callers do).

use std::time::Duration;

use hookbus::Bus;
use hookbus::store::Store;
use hookbus::webhook::{RetryPolicy, WebhookManager, WebhookSink};

use super::event;
use super::webhook_support::Receiver;

/// A guard against a hang, not a synchronisation.
const WATCHDOG: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_durable_webhook_registered_again_right_after_its_delete_delivers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("outbox.redb")).unwrap();
    let mut receiver = Receiver::ok().await;
    let bus = Bus::new().unwrap();
    let manager = WebhookManager::new(&bus);
    let url = receiver.url.clone();
    let hook = || {
        WebhookSink::builder(url.clone())
            .name("crm")
            .allow_http(true)
            .retry(RetryPolicy::none())
            .durable(&store)
    };
    let id = manager.register(hook()).unwrap();
    let first = event(0);
    let first_id = first.id().to_owned();
    bus.publish(first).await.unwrap();
    let got = tokio::time::timeout(WATCHDOG, receiver.next())
        .await
        .unwrap();
    assert_eq!(got.event_id(), Some(first_id));

    manager.delete(&id).unwrap();
    let id = manager
        .register(hook())
        .expect("the name is free again once the webhook is deleted");
    assert!(manager.get(&id).unwrap().enabled);
    for i in 1..=3 {
        let e = event(i);
        let want = e.id().to_owned();
        bus.publish(e).await.unwrap();
        let got = tokio::time::timeout(WATCHDOG, receiver.next())
            .await
            .expect("no delivery after the webhook was registered again");
        assert_eq!(got.event_id(), Some(want));
    }
    bus.shutdown(Duration::from_secs(10)).await;
    store.sync().await.unwrap();
    assert_eq!(store.pending("crm").unwrap(), 0);
}

/// A subscriber that takes over the name of one unsubscribed while it
/// still holds events leaves those to it: each event is delivered once.
#[tokio::test]
async fn taking_over_a_name_leaves_the_old_subscriber_its_events() {
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("outbox.redb")).unwrap();
    let bus = Bus::new().unwrap();
    let got: Arc<Mutex<Vec<(char, String)>>> = Arc::default();
    let (open_tx, open_rx) = tokio::sync::watch::channel(false);
    let g = got.clone();
    let old = bus
        .subscriber("order.*")
        .name("orders")
        .durable(&store)
        .on_async(move |e: Arc<hookbus::Event>| {
            let mut open = open_rx.clone();
            let g = g.clone();
            async move {
                let _ = open.wait_for(|o| *o).await;
                g.lock().unwrap().push(('a', e.id().to_owned()));
            }
        })
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        let e = event(i);
        ids.push(e.id().to_owned());
        bus.publish(e).await.unwrap();
    }
    // Unsubscribed with its 5 events held (one at the gate, four in its
    // mailbox, all on disk); the name is taken over at once.
    old.unsubscribe();
    let g = got.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let new = bus
        .subscriber("order.*")
        .name("orders")
        .durable(&store)
        .on(move |e| {
            g.lock().unwrap().push(('b', e.id().to_owned()));
            let _ = tx.send(());
        })
        .expect("the name is free once its subscriber is unsubscribed");
    assert_eq!(
        store.stats().recovered,
        0,
        "the old subscriber's events are its own"
    );
    let e = event(5);
    ids.push(e.id().to_owned());
    bus.publish(e).await.unwrap();
    tokio::time::timeout(WATCHDOG, rx.recv()).await.unwrap();
    open_tx.send_replace(true);
    bus.shutdown(Duration::from_secs(10)).await;
    drop(new);
    let got = got.lock().unwrap().clone();
    let mut delivered: Vec<String> = got.iter().map(|(_, id)| id.clone()).collect();
    delivered.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(delivered, want, "each event once: {got:?}");
    assert!(
        got.iter().filter(|(w, _)| *w == 'a').count() == 5,
        "{got:?}"
    );
    store.sync().await.unwrap();
    assert_eq!(store.pending("orders").unwrap(), 0);
}
