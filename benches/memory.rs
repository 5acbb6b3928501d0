//! Memory stays bounded by the mailbox: 1,000,000 events into a stalled
//! `DropOldest` subscriber. Prints peak RSS (VmHWM) before and after, and
//! exits non-zero if the growth is anywhere near what keeping every event
//! would cost. Then: what an idle subscriber costs (10,000 of them, RSS
//! before and after), and how long subscribing them takes. Run with
//! `cargo bench --bench memory`.

use std::sync::Arc;
use std::time::Duration;

use hookbus::{Bus, Event, OverflowPolicy};
use serde_json::json;
use tokio::sync::Notify;

const EVENTS: u64 = 1_000_000;
const MAILBOX: usize = 1024;

fn status_kib(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // special: both run the same short measurement.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let bus = Bus::new().unwrap();
        let stall = Arc::new(Notify::new());
        let s = stall.clone();
        bus.subscriber("load.*")
            .name("stalled")
            .capacity(MAILBOX)
            .overflow(OverflowPolicy::DropOldest)
            .on_async(move |_e| {
                let s = s.clone();
                async move { s.notified().await }
            })
            .unwrap()
            .detach();
        let start_rss = status_kib("VmRSS:").unwrap_or(0);
        let start_hwm = status_kib("VmHWM:").unwrap_or(0);
        let payload = json!({"decision_id": "abc123", "confidence": 0.91, "note": "x".repeat(200)});
        for i in 0..EVENTS {
            let e = Event::new("load.tick", payload.clone()).unwrap();
            let _ = i;
            bus.publish(e).await.unwrap();
        }
        let stats = bus.stats();
        let s = stats.subscriber("stalled").unwrap();
        let peak = status_kib("VmHWM:").unwrap_or(0);
        let approx_event = std::mem::size_of::<Event>() as u64 + 300;
        let unbounded_kib = EVENTS * approx_event / 1024;
        println!("memory/stalled_drop_oldest: {EVENTS} events, mailbox {MAILBOX}");
        println!("  accepted {}, dropped {}, in mailbox {}, in handler {}", s.accepted, s.dropped, s.mailbox_len, s.in_flight);
        println!("  RSS at start {start_rss} KiB (peak so far {start_hwm} KiB); peak after {peak} KiB; growth {} KiB", peak.saturating_sub(start_hwm));
        println!("  keeping every event would need about {unbounded_kib} KiB");
        stall.notify_waiters();
        let _ = bus.shutdown(Duration::from_millis(100)).await;
        assert_eq!(s.accepted, EVENTS);
        assert_eq!(s.dropped + s.mailbox_len + s.in_flight, EVENTS);
        if peak.saturating_sub(start_hwm) > unbounded_kib / 10 {
            eprintln!("memory grew with the number of events: not bounded by the mailbox");
            std::process::exit(1);
        }
    });
    idle_subscribers(&rt);
}

/// 10,000 idle subscribers: RSS per subscriber, and the time to subscribe.
fn idle_subscribers(rt: &tokio::runtime::Runtime) {
    const S: usize = 10_000;
    rt.block_on(async {
        let types: Vec<String> = (0..S).map(|i| format!("tenant{i}.order.placed")).collect();
        let bus = Bus::new().unwrap();
        let before = status_kib("VmRSS:").unwrap_or(0);
        let started = std::time::Instant::now();
        for ty in &types {
            bus.on(ty.as_str(), |_e| {}).unwrap().detach();
        }
        let took = started.elapsed();
        // Let every task run once and park.
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        let after = status_kib("VmRSS:").unwrap_or(0);
        let per = (after.saturating_sub(before) * 1024) / S as u64;
        println!("memory/idle_subscribers: {S} subscribers subscribed in {took:?}; RSS {before} -> {after} KiB, about {per} bytes each");
        let started = std::time::Instant::now();
        let report = bus.shutdown(Duration::from_secs(30)).await;
        println!("  shutdown of {} subscribers took {:?}", report.subscribers.len(), started.elapsed());
        if per > 2048 {
            eprintln!("an idle subscriber costs more than 2 KiB");
            std::process::exit(1);
        }
    });
}
