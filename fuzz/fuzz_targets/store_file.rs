//! Damaged store files: a real store (written once by a bus with pending
//! events, dead letters and kept deliveries) with the fuzzer's damage
//! applied, then opened, checked, read and attached as an application
//! would. Never a panic; every outcome an error or an open store.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hookbus::store::Store;
use hookbus::{Bus, Event};
use libfuzzer_sys::fuzz_target;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The bytes of a cleanly closed store.
fn base() -> &'static [u8] {
    static BASE: OnceLock<Vec<u8>> = OnceLock::new();
    BASE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("base.redb");
        runtime().block_on(async {
            let store = Store::builder(&path)
                .keep_delivered(Duration::from_secs(3600), 100)
                .open()
                .unwrap();
            let bus = Bus::new().unwrap();
            let gate = Arc::new(tokio::sync::Notify::new());
            let g = gate.clone();
            let _orders = bus
                .subscriber("order.*")
                .name("orders")
                .durable(&store)
                .on_async(move |_| {
                    let g = g.clone();
                    Box::pin(async move {
                        g.notified().await;
                        Ok::<(), hookbus::DeliveryError>(())
                    })
                })
                .unwrap();
            bus.subscriber("audit.*")
                .name("picky")
                .durable(&store)
                .on(|e| if e.data()["n"].as_u64() == Some(0) { Err("no") } else { Ok(()) })
                .unwrap()
                .detach();
            for i in 0..100u64 {
                let data = serde_json::json!({ "n": i });
                bus.emit(Event::new("order.placed", data.clone()).unwrap()).unwrap();
                if i < 10 {
                    bus.emit(Event::new("audit.read", data).unwrap()).unwrap();
                }
            }
            while store.stats().dead_lettered + store.stats().delivered < 10 {
                tokio::task::yield_now().await;
            }
            store.sync().await.unwrap();
            bus.shutdown(Duration::ZERO).await;
        });
        std::fs::read(&path).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    // libfuzzer-sys's panic hook aborts on every panic, also one the store
    // catches (a panic inside redb is what its guards are for). Silence
    // the hook: a panic that reaches this target still aborts, through
    // libfuzzer-sys's own catch_unwind around each run.
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    // Input: 5-byte damage records [kind][offset u32 LE]: kind % 4 is a
    // flipped byte (mask = kind | 1), a zeroed 4 KiB page, a truncation, or
    // a byte set to the kind itself.
    let mut bytes = base().to_vec();
    for op in data.chunks_exact(5) {
        if bytes.is_empty() {
            break;
        }
        let at = u32::from_le_bytes([op[1], op[2], op[3], op[4]]) as usize % bytes.len();
        match op[0] % 4 {
            0 => bytes[at] ^= op[0] | 1,
            1 => {
                let start = at / 4096 * 4096;
                let end = (start + 4096).min(bytes.len());
                bytes[start..end].fill(0);
            }
            2 => bytes.truncate(at),
            _ => bytes[at] = op[0],
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("damaged.redb");
    std::fs::write(&path, &bytes).unwrap();
    let Ok(store) = Store::open(&path) else {
        return;
    };
    let _ = store.check();
    let _ = store.pending("orders");
    let _ = store.pending_events("orders", 1000);
    let _ = store.dead_letters(None, 1000);
    let _ = store.delivered_since("picky", std::time::UNIX_EPOCH, 1000);
    runtime().block_on(async {
        let bus = Bus::new().unwrap();
        let _ = bus
            .subscriber("order.*")
            .name("orders")
            .durable(&store)
            .on(|_| ());
        bus.shutdown(Duration::ZERO).await;
    });
});
