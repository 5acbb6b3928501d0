//! Damaged store files: real stores written by a bus, then truncated, with
//! bytes flipped or pages zeroed, and files that were never a store. Every
//! outcome is a clear error or an open store whose counts add up; never a
//! panic, never a file silently replaced.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hookbus::store::{CheckReport, OpenProblem, Operation, Store, StoreError};
use hookbus::{Bus, Event};
use proptest::prelude::*;
use serde_json::json;
use tokio::sync::Notify;

/// What the base store holds: pending events of `orders`, dead letters and
/// kept deliveries of `picky`.
const ORDERS: u64 = 300;
const DEAD: u64 = 10;
const KEPT: u64 = 20;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The bytes of a cleanly closed store, written once by a real bus.
fn base_store() -> &'static [u8] {
    static BASE: OnceLock<Vec<u8>> = OnceLock::new();
    BASE.get_or_init(|| {
        // Its own thread: the tests calling this may run inside a runtime.
        std::thread::spawn(|| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("base.redb");
            runtime().block_on(async {
                let store = Store::builder(&path)
                    .keep_delivered(Duration::from_secs(3600), 1000)
                    .open()
                    .unwrap();
                let bus = Bus::new().unwrap();
                let gate = Arc::new(Notify::new());
                let _orders = bus
                    .subscriber("order.*")
                    .name("orders")
                    .durable(&store)
                    .on_async(super::gated(&gate))
                    .unwrap();
                bus.subscriber("audit.*")
                    .name("picky")
                    .durable(&store)
                    .on(|e| {
                        if e.data()["n"].as_u64().unwrap() % 3 == 0 {
                            Err("multiples of three are refused")
                        } else {
                            Ok(())
                        }
                    })
                    .unwrap()
                    .detach();
                for i in 0..ORDERS {
                    let e = Event::new("order.placed", json!({"n": i, "pad": "p".repeat(200)}));
                    bus.emit(e.unwrap()).unwrap();
                }
                for i in 0..(DEAD + KEPT) {
                    bus.emit(Event::new("audit.read", json!({"n": i})).unwrap())
                        .unwrap();
                }
                // `picky` is done when its events are dead letters or kept.
                while store.stats().dead_lettered < DEAD || store.stats().delivered < KEPT {
                    tokio::task::yield_now().await;
                }
                store.sync().await.unwrap();
                bus.shutdown(Duration::ZERO).await;
            });
            std::fs::read(&path).unwrap()
        })
        .join()
        .unwrap()
    })
}

/// What a damaged file gave.
#[derive(Debug)]
enum Outcome {
    /// Refused at open with this error.
    Refused(#[allow(dead_code)] StoreError),
    /// Opened: the check's report (or the error it stopped at), and the
    /// attach of `orders` (the events recovered, or why it was refused).
    Opened {
        check: Result<CheckReport, StoreError>,
        attach: Result<u64, String>,
    },
}

/// Opens a (damaged) store file, checks it and attaches `orders` to a bus
/// the way an application does, asserting that whatever happens is said
/// clearly and adds up. A panic anywhere fails the test.
fn examine(path: &Path) -> Outcome {
    let name = path.file_name().unwrap().to_str().unwrap().to_owned();
    let store = match Store::open(path) {
        Ok(store) => store,
        Err(e) => {
            assert!(
                matches!(e, StoreError::Corrupted { .. } | StoreError::Open { .. }),
                "{e}"
            );
            assert!(
                e.to_string().contains(&name),
                "the error names the file: {e}"
            );
            return Outcome::Refused(e);
        }
    };
    let check = store.check();
    if let Err(e) = &check {
        assert!(matches!(e, StoreError::Corrupted { .. }), "{e}");
    }
    let attach = runtime().block_on(async {
        let bus = Bus::new().unwrap();
        let gate = Arc::new(Notify::new());
        let attached = bus
            .subscriber("order.*")
            .name("orders")
            .durable(&store)
            .on_async(super::gated(&gate));
        // Never delivered: the handler waits for a gate that never opens,
        // so nothing is written back to the damaged file.
        let recovered = store.stats().recovered;
        bus.shutdown(Duration::ZERO).await;
        match attached {
            Ok(_) => Ok(recovered),
            Err(e) => Err(e.to_string()),
        }
    });
    if let Err(e) = &attach {
        assert!(e.contains("damaged"), "the refusal says why: {e}");
    }
    if let (Ok(report), Ok(recovered)) = (&check, &attach) {
        // What the check read of `orders` is what the attach recovered.
        let readable = report.pending.get("orders").copied().unwrap_or(0);
        assert_eq!(*recovered, readable, "{report:?}");
        // Nothing lost unseen: a store that checks clean holds everything;
        // otherwise every record was recovered or counted as unreadable,
        // or the check says what is wrong.
        let unreadable = store.stats().unreadable;
        if report.is_clean() {
            assert_eq!((*recovered, unreadable), (ORDERS, 0), "{report:?}");
        } else {
            assert!(
                recovered + unreadable == ORDERS
                    || !report.unreadable.is_empty()
                    || report.missing > 0,
                "{report:?}"
            );
        }
    }
    Outcome::Opened { check, attach }
}

/// One kind of damage to a file's bytes.
#[derive(Debug, Clone)]
enum Damage {
    /// XOR the byte at this offset (modulo the length) with a non-zero mask.
    Flip(usize, u8),
    /// Zero this 4 KiB page (modulo the page count).
    ZeroPage(usize),
    /// Keep only this many bytes (modulo the length).
    Truncate(usize),
}

fn damaged(base: &[u8], damage: &[Damage]) -> Vec<u8> {
    let mut bytes = base.to_vec();
    for d in damage {
        if bytes.is_empty() {
            break;
        }
        match *d {
            Damage::Flip(at, mask) => {
                let at = at % bytes.len();
                bytes[at] ^= mask;
            }
            Damage::ZeroPage(page) => {
                let start = (page % bytes.len().div_ceil(4096)) * 4096;
                let end = (start + 4096).min(bytes.len());
                bytes[start..end].fill(0);
            }
            Damage::Truncate(len) => {
                let len = len % bytes.len();
                bytes.truncate(len);
            }
        }
    }
    bytes
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The offsets of the bytes that a store's content lives in: where the base
/// file differs from a store that holds nothing (the rest is free space,
/// where a flip changes nothing that is read).
fn used_offsets(base: &[u8]) -> Vec<usize> {
    (0..base.len()).filter(|&i| base[i] != 0).collect()
}

#[test]
fn the_undamaged_base_store_checks_clean_and_recovers_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "base.redb", base_store());
    match examine(&path) {
        Outcome::Opened {
            check: Ok(report),
            attach: Ok(recovered),
        } => {
            assert!(report.is_clean(), "{report:?}");
            assert_eq!(recovered, ORDERS);
            assert_eq!(report.pending.get("orders"), Some(&ORDERS));
            assert_eq!(report.dead_letters, DEAD);
            assert_eq!(report.delivered, KEPT);
        }
        other => panic!("{other:?}"),
    }
}

/// An emptied file was opened as a new, empty store: everything pending
/// in it gone, unseen. It is refused and left as it is.
#[test]
fn an_empty_file_is_refused_not_recreated() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "emptied.redb", &[]);
    let err = Store::open(&path).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Corrupted {
                damage: hookbus::store::Damage::Empty,
                during: Operation::Open,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("empty"), "{err}");
    assert!(err.to_string().contains("emptied.redb"), "{err}");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "left untouched");
}

#[test]
fn files_that_are_not_stores_are_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("junk.redb", vec![0x5a; 64 * 1024]),
        ("notes.txt", b"remember the milk\n".to_vec()),
        ("zeros.redb", vec![0; 8192]),
        ("one-byte.redb", vec![b'r']),
    ] {
        let path = write(dir.path(), name, &bytes);
        let err = Store::open(&path).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Corrupted {
                    damage: hookbus::store::Damage::NotAStore | hookbus::store::Damage::Fault(_),
                    during: Operation::Open,
                    ..
                }
            ),
            "{name}: {err:?}"
        );
        assert!(err.to_string().contains(name), "{err}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "{name} left untouched"
        );
    }
}

/// As root the system lets any process write a 0444 file; a store does
/// not take that as leave to write it.
#[test]
fn a_read_only_store_file_is_refused_for_writing() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "readonly.redb", base_store());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Open {
                problem: OpenProblem::ReadOnly,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("read-only"), "{err}");
    assert!(err.to_string().contains("readonly.redb"), "{err}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        base_store(),
        "left untouched"
    );
}

#[test]
fn truncated_stores_are_refused_or_open_with_what_they_hold() {
    let base = base_store();
    let dir = tempfile::tempdir().unwrap();
    let mut lengths = vec![1, 9, 100, 512, 4095, 4096, 4097, 8192, 16384];
    lengths.extend((1..16).map(|k| base.len() * k / 16));
    lengths.extend([base.len() - 4096, base.len() - 1]);
    for len in lengths {
        let path = write(dir.path(), &format!("truncated-{len}.redb"), &base[..len]);
        examine(&path);
    }
}

/// About one single-byte flip in seventy made the attach panic.
#[test]
fn single_byte_flips_never_panic_and_what_opens_adds_up() {
    let base = base_store();
    let used = used_offsets(base);
    let dir = tempfile::tempdir().unwrap();
    // About 500 of the bytes that hold something, evenly spread, with two
    // masks in turn.
    let mut refused = 0;
    let mut opened = 0;
    let step = (used.len() / 500).max(1);
    for (n, &at) in used.iter().step_by(step).enumerate() {
        let mask = if n % 2 == 0 { 0x01 } else { 0x80 };
        let path = write(
            dir.path(),
            "flipped.redb",
            &damaged(base, &[Damage::Flip(at, mask)]),
        );
        match examine(&path) {
            Outcome::Refused(_) => refused += 1,
            Outcome::Opened { .. } => opened += 1,
        }
    }
    println!(
        "single-byte flips of {} used bytes (file {}): {opened} opened, {refused} refused",
        used.len(),
        base.len()
    );
    assert!(opened + refused > 100);
}

#[test]
fn zeroed_pages_never_panic_and_what_opens_adds_up() {
    let base = base_store();
    let dir = tempfile::tempdir().unwrap();
    let pages = base.len().div_ceil(4096);
    for page in 0..pages {
        // Pages that are all zero already would change nothing.
        let start = page * 4096;
        if base[start..(start + 4096).min(base.len())]
            .iter()
            .all(|b| *b == 0)
        {
            continue;
        }
        let path = write(
            dir.path(),
            "zeroed.redb",
            &damaged(base, &[Damage::ZeroPage(page)]),
        );
        examine(&path);
    }
}

fn damage_strategy() -> impl Strategy<Value = Vec<Damage>> {
    let one = prop_oneof![
        4 => (any::<usize>(), 1u8..=255).prop_map(|(at, mask)| Damage::Flip(at, mask)),
        2 => any::<usize>().prop_map(Damage::ZeroPage),
        1 => any::<usize>().prop_map(Damage::Truncate),
    ];
    proptest::collection::vec(one, 1..6)
}

/// Cases per run: 64 in the normal `cargo test` (CI), more with
/// `HOOKBUS_DAMAGE_CASES`.
fn damage_cases() -> u32 {
    std::env::var("HOOKBUS_DAMAGE_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: damage_cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random damage to the used part of a real store: flips (aimed at
    /// bytes that hold something), zeroed pages, truncations.
    #[test]
    fn damaged_stores_never_panic_and_what_opens_adds_up(damage in damage_strategy()) {
        let base = base_store();
        let used = used_offsets(base);
        let aimed: Vec<Damage> = damage
            .into_iter()
            .map(|d| match d {
                Damage::Flip(at, mask) => Damage::Flip(used[at % used.len()], mask),
                other => other,
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "damaged.redb", &damaged(base, &aimed));
        examine(&path);
    }
}

/// One record whose event no longer parses (its bytes damaged, its key
/// intact): the attach recovers the others, counts it, and the check names
/// it by key; it stays in the file.
#[test]
fn an_unreadable_record_is_counted_and_named_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");
    let marker = b"MARKER-0042-MARKER";
    runtime().block_on(async {
        let store = Store::open(&path).unwrap();
        let bus = Bus::new().unwrap();
        let gate = Arc::new(Notify::new());
        let _orders = bus
            .subscriber("order.*")
            .name("orders")
            .durable(&store)
            .on_async(super::gated(&gate))
            .unwrap();
        for i in 0..100u64 {
            let tag = if i == 42 {
                "MARKER-0042-MARKER"
            } else {
                "plain"
            };
            bus.emit(Event::new("order.placed", json!({"n": i, "tag": tag})).unwrap())
                .unwrap();
        }
        store.sync().await.unwrap();
        bus.shutdown(Duration::ZERO).await;
    });
    // Break the JSON of event 42 wherever its bytes are in the file.
    let mut bytes = std::fs::read(&path).unwrap();
    let mut hits = 0;
    for at in 0..bytes.len() - marker.len() {
        if &bytes[at..at + marker.len()] == marker {
            bytes[at - 1] = 0x01; // its opening quote: not JSON any more
            hits += 1;
        }
    }
    assert!(hits >= 1);
    std::fs::write(&path, &bytes).unwrap();

    let store = Store::open(&path).unwrap();
    let report = store.check().unwrap();
    assert_eq!(report.pending["orders"], 99, "{report:?}");
    assert_eq!(report.unreadable.len(), 1, "{report:?}");
    assert_eq!(report.unreadable[0].table, "pending");
    assert!(
        report.unreadable[0].key.starts_with("orders/"),
        "{report:?}"
    );
    assert_eq!(report.missing, 0);
    assert!(!report.is_clean());
    let recovered = runtime().block_on(async {
        let bus = Bus::new().unwrap();
        let gate = Arc::new(Notify::new());
        let _orders = bus
            .subscriber("order.*")
            .name("orders")
            .durable(&store)
            .on_async(super::gated(&gate))
            .unwrap();
        let stats = store.stats();
        bus.shutdown(Duration::ZERO).await;
        stats
    });
    assert_eq!((recovered.recovered, recovered.unreadable), (99, 1));
    // Kept in the file: counted as pending, for an operator to see.
    assert_eq!(store.pending("orders").unwrap(), 100);
}
