//! Shutdown racing subscribers and emitters: the report stays exact.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hookbus::{Bus, SubscribeError};

use super::{LONG, ev};

/// A thread subscribes and emits without pause while the bus shuts down
/// (with a tap open that never reads): every subscription `on` returned is
/// in the report, every emit that returned `Ok` was delivered exactly once,
/// and nothing else was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_and_emit_racing_shutdown_keep_the_report_exact() {
    for round in 0..20 {
        let bus = Bus::new().unwrap();
        let _tap = bus.tap("*").unwrap();
        let handled = Arc::new(AtomicU64::new(0));
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
        let racer = {
            let (bus, handled) = (bus.clone(), handled.clone());
            std::thread::spawn(move || {
                let mut started = Some(started_tx);
                let mut created: HashMap<u64, String> = HashMap::new();
                let mut emitted_ok: HashSet<String> = HashSet::new();
                for i in 0.. {
                    let ty = format!("race.t{i}");
                    let h = handled.clone();
                    match bus.on(ty.as_str(), move |_| {
                        h.fetch_add(1, Ordering::SeqCst);
                    }) {
                        Ok(sub) => {
                            created.insert(sub.id(), ty.clone());
                            sub.detach();
                        }
                        Err(SubscribeError::Closed) => break,
                        Err(e) => panic!("{e}"),
                    }
                    if bus.emit(ev(&ty, i)).is_ok() {
                        emitted_ok.insert(ty);
                    }
                    if i == 50
                        && let Some(tx) = started.take()
                    {
                        let _ = tx.send(());
                    }
                }
                (created, emitted_ok)
            })
        };
        started_rx.await.unwrap();
        let report = bus.shutdown(LONG).await;
        let (created, emitted_ok) = racer.join().unwrap();

        let in_report: HashMap<u64, &hookbus::SubscriberReport> =
            report.subscribers.iter().map(|s| (s.stats.id, s)).collect();
        for (id, ty) in &created {
            let s = in_report.get(id).unwrap_or_else(|| {
                panic!("round {round}: subscriber {ty} missing from the report")
            });
            let expected = u64::from(emitted_ok.contains(ty));
            assert_eq!(s.stats.received, expected, "round {round}: {ty}");
            assert_eq!(s.stats.delivered, expected, "round {round}: {ty}");
            assert!(s.completed && s.pending == 0, "round {round}: {ty}");
        }
        assert_eq!(in_report.len(), created.len(), "round {round}");
        assert_eq!(
            handled.load(Ordering::SeqCst),
            emitted_ok.len() as u64,
            "round {round}: every Ok emit handled once, nothing else"
        );
        assert_eq!(report.emitted, emitted_ok.len() as u64, "round {round}");
    }
}
