//! Regression: a subscriber that finishes as soon as the channel closes is
//! still in the shutdown report (it used to be forgotten when its "ended"
//! notice reached the bus before the shutdown request did).

use std::time::Duration;

use hookbus::Bus;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_subscribers_are_always_in_the_shutdown_report() {
    for round in 0..300 {
        let bus = Bus::new().unwrap();
        bus.on("decision.*", |_| {}).unwrap().detach();
        let report = bus.shutdown(Duration::from_secs(5)).await;
        assert_eq!(report.subscribers.len(), 1, "round {round}: {report}");
    }
}
