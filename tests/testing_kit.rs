#![cfg(feature = "testing")]
//! The testing kit against real hookbus webhook subscribers: the receiver's
//! fault injection drives retries, 410 disables, a paused-clock retry
//! schedule runs to disabled with its announcement, the probe records, and
//! bad configuration is an error at construction.

use std::time::Duration;

use hookbus::testing::{self, BusProbe, ClockError, ReceiverError, Reply, TestReceiver, WaitError};
use hookbus::{Bus, Event};
use serde_json::json;

const SECOND: Duration = Duration::from_secs(1);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

#[tokio::test]
async fn bad_configuration_is_an_error_at_start() {
    let err = TestReceiver::builder()
        .fail_rate(1.5)
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(err, ReceiverError::FailRate(r) if r == 1.5),
        "{err}"
    );
    assert!(err.to_string().contains("outside 0..=1"), "{err}");
    let err = TestReceiver::builder()
        .fail_rate(f64::NAN)
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, ReceiverError::FailRate(_)), "{err}");

    for (reply, says) in [
        (Reply::status(42), "status 42"),
        (Reply::ok().header("bad name", "x"), "not a header name"),
        (
            Reply::ok().header("x-ok", "line\nbreak"),
            "not visible ASCII",
        ),
        (Reply::ok().slow_body(0, SECOND), "at least 1 byte"),
    ] {
        let err = TestReceiver::builder()
            .script([reply.clone()])
            .start()
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ReceiverError::Reply(m) if m.contains(says)),
            "{reply:?}: {err}"
        );
    }

    // Replies added while running are checked too, and a bad one changes nothing.
    let receiver = TestReceiver::start().await.unwrap();
    assert!(receiver.enqueue([Reply::status(1000)]).is_err());
    assert!(receiver.set_default_reply(Reply::status(7)).is_err());

    // The port in use: the bind error names the address.
    let taken = receiver.addr();
    let err = TestReceiver::builder()
        .bind(taken)
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ReceiverError::Bind { addr, .. } if *addr == taken),
        "{err}"
    );
    assert!(err.to_string().contains(&taken.to_string()), "{err}");
}

#[cfg(feature = "webhook")]
mod with_webhooks {
    use super::*;
    use hookbus::FailureKind;
    use hookbus::testing::{AnsweredBy, SignatureCheck};

    fn event(n: u32) -> Event {
        Event::new(
            "decision.captured",
            json!({"decision_id": format!("d-{n}")}),
        )
        .unwrap()
    }
    use hookbus::signature::{Secret, SignatureScheme};
    use hookbus::verify::{ReplayGuard, Verifier, VerifyError};
    use hookbus::webhook::{DeliveryStatus, RetryPolicy, WebhookEmitter, WebhookSink, WireFormat};
    use std::sync::Arc;

    /// Fast retries: `n` attempts 1 ms apart.
    fn fast(n: u32) -> RetryPolicy {
        RetryPolicy::exponential(n, Duration::from_millis(1), Duration::from_millis(1))
            .with_jitter(0.0)
    }

    /// Every scheme the receiver verifies, with a subscriber signing in it:
    /// all verify; the wrong secret is rejected with the reason, answered
    /// 401, final.
    #[tokio::test]
    async fn every_scheme_verifies_and_a_wrong_secret_is_rejected_with_the_reason() {
        let standard_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let schemes = [
            ("briefcase", SignatureScheme::briefcase(), "s3cret"),
            (
                "timestamped",
                SignatureScheme::timestamped("Rubric").unwrap(),
                "s3cret",
            ),
            (
                "standard",
                SignatureScheme::standard_webhooks(),
                standard_secret,
            ),
            ("github", SignatureScheme::github(), "s3cret"),
            ("slack", SignatureScheme::slack(), "s3cret"),
            ("stripe", SignatureScheme::stripe(), "whsec_s3cret"),
        ];
        for (name, scheme, secret) in schemes {
            let verifier = Verifier::for_scheme(&scheme, &[Secret::new(secret)]).unwrap();
            let receiver = TestReceiver::builder()
                .verifier(verifier)
                .start()
                .await
                .unwrap();
            let right = WebhookEmitter::builder(receiver.url())
                .signature(scheme.clone())
                .secret(secret)
                .build_emitter()
                .unwrap();
            let out = right.emit(event(1)).await;
            assert_eq!(out.status, DeliveryStatus::Delivered, "{name}: {out:?}");

            let wrong_secret = if name == "standard" {
                "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
            } else {
                "not-the-secret"
            };
            let wrong = WebhookEmitter::builder(receiver.url())
                .signature(scheme)
                .secret(wrong_secret)
                .retry(fast(3))
                .build_emitter()
                .unwrap();
            let out = wrong.emit(event(2)).await;
            assert_eq!(out.attempts, 1, "{name}: 401 is final");
            assert_eq!(out.status_code, Some(401), "{name}");

            let requests = receiver.wait_for(2).await.unwrap();
            assert!(
                matches!(requests[0].signature, SignatureCheck::Verified(_)),
                "{name}: {:?}",
                requests[0].signature
            );
            assert!(requests[0].is_accepted());
            assert_eq!(requests[0].events[0].data()["decision_id"], "d-1", "{name}");
            let rejected = receiver.rejected();
            assert_eq!(rejected.len(), 1, "{name}");
            assert!(
                matches!(rejected[0].rejection(), Some(VerifyError::Mismatch { .. })),
                "{name}: {:?}",
                rejected[0].signature
            );
            assert_eq!(rejected[0].status, 401);
            assert_eq!(rejected[0].answered_by, AnsweredBy::Signature);
            assert!(rejected[0].events.is_empty(), "a rejected body is not read");
            assert_eq!(receiver.events().len(), 1, "{name}");
            let stats = receiver.stats();
            assert_eq!((stats.verified, stats.rejected, stats.accepted), (1, 1, 1));
        }
    }

    /// `fail_next` and a script answer the first attempts: the subscriber
    /// retries with the same event id and is delivered on the attempt after
    /// them; the receiver counts the event once.
    #[tokio::test]
    async fn injected_failures_drive_the_retries() {
        let receiver = TestReceiver::builder()
            .script([Reply::server_error()])
            .fail_next(2)
            .start()
            .await
            .unwrap();
        let webhook = WebhookEmitter::builder(receiver.url())
            .retry(fast(5))
            .format(WireFormat::Binary)
            .build_emitter()
            .unwrap();
        let out = webhook.emit(event(1)).await;
        assert_eq!(out.status, DeliveryStatus::Delivered, "{out:?}");
        assert_eq!(out.attempts, 4);

        let requests = receiver.wait_for(4).await.unwrap();
        let answers: Vec<_> = requests
            .iter()
            .map(|r| (r.status.as_u16(), r.answered_by))
            .collect();
        assert_eq!(
            answers,
            [
                (500, AnsweredBy::Script),
                (503, AnsweredBy::FailNext),
                (503, AnsweredBy::FailNext),
                (200, AnsweredBy::Default),
            ]
        );
        let ids: Vec<_> = requests
            .iter()
            .map(|r| r.header("ce-id").unwrap())
            .collect();
        assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
        assert_eq!(receiver.wait_for_events(1).await.unwrap().len(), 1);
        assert_eq!(receiver.stats().injected, 3);

        // fail_next while running: the next delivery needs one retry.
        receiver.fail_next(1);
        let out = webhook.emit(event(2)).await;
        assert_eq!(out.attempts, 2, "{out:?}");
        assert_eq!(receiver.events().len(), 2);
    }

    /// The same seed gives the same faults; a fail rate of 1 fails all.
    #[tokio::test]
    async fn a_seeded_fail_rate_is_reproducible() {
        let mut runs = Vec::new();
        for _ in 0..2 {
            let receiver = TestReceiver::builder()
                .fail_rate(0.5)
                .seed(7)
                .start()
                .await
                .unwrap();
            let webhook = WebhookEmitter::builder(receiver.url())
                .retry(RetryPolicy::none())
                .build_emitter()
                .unwrap();
            for n in 0..20 {
                webhook.emit(event(n)).await;
            }
            let answers: Vec<_> = receiver
                .wait_for(20)
                .await
                .unwrap()
                .iter()
                .map(|r| r.answered_by)
                .collect();
            runs.push(answers);
        }
        assert_eq!(runs[0], runs[1]);
        let failed = runs[0]
            .iter()
            .filter(|a| **a == AnsweredBy::FailRate)
            .count();
        assert!((1..20).contains(&failed), "{failed} of 20 failed");

        let always = TestReceiver::builder()
            .fail_rate(1.0)
            .start()
            .await
            .unwrap();
        let webhook = WebhookEmitter::builder(always.url())
            .retry(fast(3))
            .build_emitter()
            .unwrap();
        let out = webhook.emit(event(1)).await;
        assert_eq!(out.status, DeliveryStatus::Failed(FailureKind::Exhausted));
        assert_eq!(always.stats().injected, 3);
        assert!(always.events().is_empty(), "nothing was accepted");
    }

    /// 429 + Retry-After under the paused clock: the next attempt comes
    /// exactly when the receiver asked.
    #[tokio::test(start_paused = true)]
    async fn retry_after_is_waited_for_on_the_paused_clock() {
        let receiver = TestReceiver::builder()
            .script([Reply::too_many_requests(Duration::from_secs(90))])
            .start()
            .await
            .unwrap();
        let webhook = WebhookEmitter::builder(receiver.url())
            .retry(RetryPolicy::exponential(2, SECOND, SECOND).with_jitter(0.0))
            .build_emitter()
            .unwrap();
        let out = webhook.emit(event(1)).await;
        assert_eq!(out.status, DeliveryStatus::Delivered, "{out:?}");
        let requests = receiver.wait_for(2).await.unwrap();
        assert_eq!(requests[0].header("retry-after"), None, "a request header");
        assert_eq!(requests[0].status, 429);
        assert_eq!(
            requests[1].received_at - requests[0].received_at,
            Duration::from_secs(90)
        );
    }

    /// A delay past the subscriber's timeout fails the attempt as a
    /// timeout; a slow body is read chunk by chunk, its time in the latency.
    #[tokio::test(start_paused = true)]
    async fn a_delay_times_out_and_a_slow_body_takes_its_time() {
        let receiver = TestReceiver::builder()
            .script([
                Reply::ok().delay(Duration::from_secs(30)),
                Reply::ok().body("0123456789").slow_body(2, SECOND),
            ])
            .start()
            .await
            .unwrap();
        let webhook = WebhookEmitter::builder(receiver.url())
            .timeout(Duration::from_secs(10))
            .retry(RetryPolicy::none())
            .build_emitter()
            .unwrap();
        let out = webhook.emit(event(1)).await;
        assert_eq!(out.status, DeliveryStatus::Failed(FailureKind::Exhausted));
        assert!(
            out.error.as_deref().unwrap().contains("timed out"),
            "{out:?}"
        );

        let started = tokio::time::Instant::now();
        let out = webhook.emit(event(2)).await;
        assert_eq!(out.status, DeliveryStatus::Delivered, "{out:?}");
        assert_eq!(out.response_excerpt.as_deref(), Some("0123456789"));
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(5),
            "5 chunks, 1 s before each"
        );
    }

    /// 410 Gone disables the endpoint after one request, and the bus says so.
    #[tokio::test]
    async fn gone_disables_the_endpoint_and_the_probe_sees_the_announcement() {
        let receiver = TestReceiver::builder()
            .default_reply(Reply::gone())
            .start()
            .await
            .unwrap();
        let bus = Bus::new().unwrap();
        let announced = BusProbe::new(&bus, "hookbus.*").unwrap();
        let sink = WebhookSink::builder(receiver.url())
            .name("crm")
            .retry(fast(5))
            .build()
            .unwrap();
        let _sub = sink.subscribe(&bus).unwrap();
        bus.emit(event(1)).unwrap();

        let disabled = announced
            .wait_for_type("hookbus.endpoint_disabled")
            .await
            .unwrap();
        assert_eq!(disabled.data()["webhook"], "crm");
        assert!(disabled.data()["reason"].as_str().unwrap().contains("410"));
        assert!(!sink.is_enabled());
        assert_eq!(receiver.stats().requests, 1, "410 is final");
        assert!(receiver.requests()[0].events[0].data()["decision_id"] == "d-1");
    }

    /// The Svix schedule under the paused clock: each delivery's 8 attempts
    /// come on schedule, two dead letters disable the endpoint about 27.5 h
    /// in, and advancing 3 days leaves it disabled, announced once.
    #[tokio::test(start_paused = true)]
    async fn the_retry_schedule_runs_to_disabled_on_the_paused_clock() {
        let receiver = TestReceiver::builder()
            .default_reply(Reply::unavailable())
            .wait_timeout(3 * DAY)
            .start()
            .await
            .unwrap();
        let bus = Bus::new().unwrap();
        let probe = BusProbe::new(&bus, "hookbus.*")
            .unwrap()
            .wait_timeout(3 * DAY);
        let sink = WebhookSink::builder(receiver.url())
            .name("orders")
            .retry(RetryPolicy::standard_webhooks())
            .format(WireFormat::Binary)
            .disable_after(Some(2))
            .build()
            .unwrap();
        let _sub = sink.subscribe(&bus).unwrap();
        bus.emit(event(1)).unwrap();
        bus.emit(event(2)).unwrap();

        let (disabled, took) =
            testing::advance_until(3 * DAY, probe.wait_for_type("hookbus.endpoint_disabled"))
                .await
                .unwrap();
        let disabled = disabled.unwrap();
        assert_eq!(disabled.data()["webhook"], "orders");
        // 5 s + 5 min + 30 min + 2 h + 5 h + 10 h + 10 h = 99,305 s, ±20 %.
        let secs = took.as_secs_f64();
        assert!(
            (0.8 * 99_305.0..=1.2 * 99_305.0).contains(&secs),
            "disabled after {secs} s"
        );
        assert!(!sink.is_enabled());

        testing::advance(3 * DAY).await.unwrap();
        assert_eq!(probe.of_type("hookbus.endpoint_disabled").len(), 1);
        assert_eq!(probe.of_type("hookbus.delivery_failed").len(), 2);
        let requests = receiver.requests();
        assert_eq!(requests.len(), 16, "8 attempts per event, nothing after");
        for id in ["d-1", "d-2"] {
            let times: Vec<_> = requests
                .iter()
                .filter(|r| r.json().unwrap()["decision_id"] == id)
                .map(|r| r.received_at)
                .collect();
            assert_eq!(times.len(), 8, "{id}");
            let schedule = [5.0, 300.0, 1800.0, 7200.0, 18_000.0, 36_000.0, 36_000.0];
            for (w, base) in times.windows(2).zip(schedule) {
                let gap = (w[1] - w[0]).as_secs_f64();
                assert!(
                    (base * 0.8..=base * 1.2).contains(&gap),
                    "{id}: waited {gap} s where the schedule says {base} s ± 20 %"
                );
            }
        }
    }

    /// A verifier with a replay guard: a retry after an injected failure is
    /// not taken for a replay (only a 2xx answer remembers a request), and
    /// a copy of an accepted request is acknowledged as a duplicate.
    #[tokio::test]
    async fn only_accepted_requests_are_remembered_by_a_replay_guard() {
        let verifier = Verifier::standard_webhooks("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap()
            .replay_guard(Arc::new(ReplayGuard::new(100)));
        let receiver = TestReceiver::builder()
            .verifier(verifier)
            .fail_next(1)
            .start()
            .await
            .unwrap();
        let webhook = WebhookEmitter::builder(receiver.url())
            .signature(SignatureScheme::standard_webhooks())
            .secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .retry(fast(3))
            .build_emitter()
            .unwrap();
        let out = webhook.emit(event(1)).await;
        assert_eq!((out.status, out.attempts), (DeliveryStatus::Delivered, 2));
        let requests = receiver.wait_for(2).await.unwrap();
        assert!(requests.iter().all(|r| r.rejection().is_none()));

        // The accepted request again, byte for byte.
        let first = &requests[1];
        let client = reqwest::Client::new();
        let mut again = client.post(receiver.url()).body(first.body.clone());
        for (name, value) in &first.headers {
            if name != "host" && name != "content-length" {
                again = again.header(name, value);
            }
        }
        let answer = again.send().await.unwrap();
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.text().await.unwrap(), r#"{"status":"duplicate"}"#);
        let replay = &receiver.wait_for(3).await.unwrap()[2];
        assert_eq!(replay.rejection(), Some(&VerifyError::Replay));
        assert_eq!(receiver.events().len(), 1, "the duplicate is not an event");
    }
}

/// The probe records what it matches, in order; waits time out with what
/// was seen instead of hanging, and stop when the bus shuts down.
#[tokio::test(start_paused = true)]
async fn the_probe_records_waits_and_times_out() {
    let bus = Bus::new().unwrap();
    let probe = BusProbe::new(&bus, "order.*").unwrap();
    bus.emit(Event::new("order.placed", json!({"n": 1})).unwrap())
        .unwrap();
    bus.emit(Event::new("invoice.sent", json!({})).unwrap())
        .unwrap();
    bus.emit(Event::new("order.shipped", json!({"n": 1})).unwrap())
        .unwrap();
    let events = probe.wait_for(2).await.unwrap();
    assert_eq!(probe.types(), ["order.placed", "order.shipped"]);
    assert_eq!(events[1].data()["n"], 1);
    assert_eq!(probe.of_type("order.placed").len(), 1);

    let started = tokio::time::Instant::now();
    let err = probe.wait_for(3).await.unwrap_err();
    assert_eq!(
        err,
        WaitError::TimedOut {
            what: "3 events".into(),
            waited: testing::DEFAULT_WAIT_TIMEOUT,
            seen: 2,
        }
    );
    assert_eq!(started.elapsed(), testing::DEFAULT_WAIT_TIMEOUT);
    assert!(err.to_string().contains("seen so far: 2"), "{err}");

    probe.clear();
    assert_eq!(probe.count(), 0);
    bus.shutdown(SECOND).await;
    let err = probe.wait_for_type("order.cancelled").await.unwrap_err();
    assert!(matches!(err, WaitError::Stopped { seen: 0, .. }), "{err}");
}

/// A receiver's waits time out too, with the count seen.
#[tokio::test(start_paused = true)]
async fn a_receiver_wait_times_out_with_what_it_saw() {
    let receiver = TestReceiver::builder()
        .wait_timeout(Duration::from_secs(3))
        .start()
        .await
        .unwrap();
    let err = receiver.wait_for(1).await.unwrap_err();
    assert!(
        matches!(err, WaitError::TimedOut { seen: 0, waited, .. } if waited == Duration::from_secs(3)),
        "{err}"
    );
}

/// The clock helpers refuse a clock that is not paused, instead of
/// sleeping for days.
#[tokio::test]
async fn the_clock_helpers_need_a_paused_clock() {
    assert!(!testing::clock_is_paused());
    assert_eq!(testing::advance(3 * DAY).await, Err(ClockError::NotPaused));
    let err = testing::advance_until(HOUR, async {}).await.unwrap_err();
    assert_eq!(err, ClockError::NotPaused);
    tokio::time::pause();
    assert!(testing::clock_is_paused());
    testing::advance(HOUR).await.unwrap();
}
