//! The operator's tools, as library calls and as `hookbus store ...`:
//! summary, check, redrive, backup while the bus runs, compact.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use hookbus::store::{OpenProblem, Redrive, Store, StoreError};
use hookbus::{Bus, Event, Pattern};
use serde_json::json;
use tokio::sync::Notify;

use super::{event, gated};

/// A store with 10 dead letters of `picky` (every third of 30 order
/// events) and 5 of its audit events dead too.
async fn store_with_dead_letters(path: &std::path::Path) {
    let store = Store::open(path).unwrap();
    let bus = Bus::new().unwrap();
    bus.subscriber("*")
        .name("picky")
        .durable(&store)
        .on(|e| {
            if e.event_type() == "audit.read" || e.data()["n"].as_u64().unwrap() % 3 == 0 {
                Err("refused")
            } else {
                Ok(())
            }
        })
        .unwrap()
        .detach();
    for i in 0..30 {
        bus.emit(event(i)).unwrap();
    }
    for i in 0..5 {
        bus.emit(Event::new("audit.read", json!({"n": i})).unwrap())
            .unwrap();
    }
    bus.shutdown(Duration::from_secs(10)).await;
    assert_eq!(store.stats().dead_lettered, 15);
}

#[tokio::test]
async fn redrive_moves_chosen_dead_letters_back_and_a_restart_delivers_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");
    store_with_dead_letters(&path).await;
    let store = Store::open(&path).unwrap();
    let dead_before: Vec<String> = store
        .dead_letters(Some("picky"), 100)
        .unwrap()
        .iter()
        .filter(|d| d.event.event_type() == "order.placed")
        .map(|d| d.event.id().to_owned())
        .collect();
    assert_eq!(dead_before.len(), 10);
    // Nothing failed in the future, nothing of someone else.
    let later = SystemTime::now() + Duration::from_secs(3600);
    assert_eq!(
        store
            .redrive("picky", &Redrive::all().failed_since(later))
            .unwrap(),
        0
    );
    assert_eq!(store.redrive("nobody", &Redrive::all()).unwrap(), 0);
    // The order events only.
    let filter = Redrive::all()
        .event_type(Pattern::new("order.*").unwrap())
        .failed_before(later);
    assert_eq!(store.redrive("picky", &filter).unwrap(), 10);
    assert_eq!(store.pending("picky").unwrap(), 10);
    let left = store.dead_letters(Some("picky"), 100).unwrap();
    assert_eq!(left.len(), 5);
    assert!(left.iter().all(|d| d.event.event_type() == "audit.read"));
    assert_eq!(store.summary().unwrap().pending["picky"], 10);
    assert!(store.check().unwrap().is_clean());
    drop(store);

    // The next start delivers them, same ids, oldest first.
    let store = Store::open(&path).unwrap();
    let bus = Bus::new().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    bus.subscriber("*")
        .name("picky")
        .durable(&store)
        .on(move |e| s.lock().unwrap().push(e.id().to_owned()))
        .unwrap()
        .detach();
    bus.shutdown(Duration::from_secs(10)).await;
    assert_eq!(*seen.lock().unwrap(), dead_before);
    assert_eq!(store.pending("picky").unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_the_bus_runs_is_a_consistent_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("outbox.redb")).unwrap();
    let bus = Bus::new().unwrap();
    let gate = Arc::new(Notify::new());
    let _durable = bus
        .subscriber("order.*")
        .name("orders")
        .durable(&store)
        .capacity(100_000)
        .on_async(gated(&gate))
        .unwrap();
    for i in 0..500 {
        bus.emit(event(i)).unwrap();
    }
    store.sync().await.unwrap();
    // More events keep coming while the backup is taken.
    let emitter = {
        let bus = bus.clone();
        tokio::spawn(async move {
            for i in 500..2500 {
                bus.publish(event(i)).await.unwrap();
            }
        })
    };
    let dest = dir.path().join("backup.redb");
    let copied = store.backup(&dest).unwrap();
    emitter.await.unwrap();
    assert!(copied >= 500, "{copied}");
    // A backup never overwrites.
    let again = store.backup(&dest).unwrap_err();
    assert!(
        matches!(&again, StoreError::Open { path, problem: OpenProblem::Exists } if path == &dest),
        "{again}"
    );

    let backup = Store::open(&dest).unwrap();
    let report = backup.check().unwrap();
    assert!(report.is_clean(), "{report:?}");
    let held = report.pending["orders"];
    assert!((500..=2500).contains(&held), "{held}");
    assert_eq!(backup.summary().unwrap().pending["orders"], held);
    // Its events are the first `held` ones, in order.
    let events = backup.pending_events("orders", 10_000).unwrap();
    let ns: Vec<u64> = events
        .iter()
        .map(|e| e.data()["n"].as_u64().unwrap())
        .collect();
    assert_eq!(ns, (0..held).collect::<Vec<_>>());
    bus.shutdown(Duration::ZERO).await;
}

#[tokio::test]
async fn compact_gives_space_back_and_keeps_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");
    {
        let store = Store::open(&path).unwrap();
        let bus = Bus::new().unwrap();
        // Each delivery takes a permit: none until every event is on disk.
        let permits = Arc::new(tokio::sync::Semaphore::new(0));
        let p = permits.clone();
        let _durable = bus
            .subscriber("order.*")
            .name("orders")
            .durable(&store)
            .capacity(100_000)
            .on_async(move |_| {
                let p = p.clone();
                Box::pin(async move {
                    p.acquire().await.unwrap().forget();
                    Ok::<(), hookbus::DeliveryError>(())
                })
            })
            .unwrap();
        let big = "x".repeat(2000);
        for i in 0..3000 {
            bus.emit(Event::new("order.placed", json!({"n": i, "pad": big})).unwrap())
                .unwrap();
        }
        store.sync().await.unwrap();
        // 2,990 of them delivered: their records are deleted.
        permits.add_permits(2990);
        while store.stats().delivered < 2990 {
            tokio::task::yield_now().await;
        }
        store.sync().await.unwrap();
        bus.shutdown(Duration::ZERO).await;
    }
    let held = Store::open(&path).unwrap().pending("orders").unwrap();
    assert_eq!(held, 10);
    let (before, after) = Store::compact(&path).unwrap();
    assert!(after < before, "{before} -> {after}");
    let store = Store::open(&path).unwrap();
    assert_eq!(store.pending("orders").unwrap(), held);
    assert!(store.check().unwrap().is_clean());
    // Not while the store is open.
    let err = Store::compact(&path).unwrap_err();
    assert!(err.to_string().contains("already open"), "{err}");
}

/// `hookbus store ...` on a real store file: the library calls above, for
/// an operator.
#[cfg(feature = "cli")]
mod cli {
    use std::process::Command;

    use super::*;

    fn hookbus(args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_hookbus"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    #[tokio::test]
    async fn the_store_command_inspects_checks_redrives_backs_up_and_compacts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.redb");
        store_with_dead_letters(&path).await;
        let file = path.to_str().unwrap();

        let (code, out, err) = hookbus(&["store", "stats", file]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("dead letters: 15"), "{out}");
        assert!(out.contains("pending: 0"), "{out}");

        let (code, out, _) = hookbus(&["store", "dead-letters", file, "--subscriber", "picky"]);
        assert_eq!(code, 0);
        assert_eq!(out.lines().count(), 15, "{out}");
        let first: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
        assert!(
            first["reason"].as_str().unwrap().contains("refused"),
            "{first}"
        );
        assert_eq!(first["event"]["type"], "order.placed");

        let (code, out, err) = hookbus(&[
            "store",
            "redrive",
            file,
            "--subscriber",
            "picky",
            "--type",
            "audit.*",
        ]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("redriven: 5"), "{out}");
        let (_, out, _) = hookbus(&["store", "pending", file]);
        assert_eq!(out.trim(), "picky: 5");
        let (_, out, _) = hookbus(&["store", "pending", file, "--subscriber", "picky"]);
        assert_eq!(out.lines().count(), 5, "{out}");

        let (code, out, err) = hookbus(&["store", "check", file]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("ok: every record reads back"), "{out}");

        let backup = dir.path().join("copy.redb");
        let (code, out, err) =
            hookbus(&["store", "backup", file, "--to", backup.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("records copied"), "{out}");
        let (code, out, _) = hookbus(&["store", "stats", backup.to_str().unwrap()]);
        assert_eq!(code, 0);
        assert!(out.contains("picky: 5"), "{out}");

        let (code, out, err) = hookbus(&["store", "compact", file]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("compacted:"), "{out}");

        // Bad input and damaged files: clear errors, distinct exit codes.
        let (code, _, err) = hookbus(&[
            "store",
            "redrive",
            file,
            "--subscriber",
            "picky",
            "--since",
            "yesterday",
        ]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("RFC 3339"), "{err}");
        let junk = dir.path().join("junk.redb");
        std::fs::write(&junk, b"not a store").unwrap();
        let (code, _, err) = hookbus(&["store", "check", junk.to_str().unwrap()]);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("not a hookbus store"), "{err}");
        let (code, _, err) = hookbus(&[
            "store",
            "stats",
            dir.path().join("none/x.redb").to_str().unwrap(),
        ]);
        assert_eq!(code, 3, "{err}");
    }
}
