//! Transport safety and construction-time validation.

use crate::webhook_support::{Receiver, fast_retry};
use hookbus::webhook::{DeliveryStatus, SsrfGuard, WebhookError, WebhookSink};
use hookbus::{Event, FailureKind, WebhookEmitter};
use serde_json::json;

fn ev() -> Event {
    Event::new("a.b", json!({"x": 1})).unwrap()
}

#[test]
fn plain_http_needs_loopback_or_consent() {
    let err = WebhookSink::builder("http://hooks.example.com/x")
        .build()
        .unwrap_err();
    assert!(matches!(err, WebhookError::InsecureUrl(_)), "{err}");
    assert!(err.to_string().contains("allow_http"));
    assert!(
        WebhookSink::builder("http://hooks.example.com/x")
            .allow_http(true)
            .build()
            .is_ok()
    );
    for ok in [
        "http://127.0.0.1:9/x",
        "http://localhost:9/x",
        "http://[::1]:9/x",
        "https://hooks.example.com/x",
    ] {
        assert!(WebhookSink::builder(ok).build().is_ok(), "{ok}");
    }
}

#[test]
fn bad_input_is_refused_with_a_reason() {
    let cases: Vec<(hookbus::webhook::WebhookBuilder, &str)> = vec![
        (WebhookSink::builder("not a url"), "invalid webhook URL"),
        (WebhookSink::builder("ftp://example.com/x"), "not supported"),
        (
            WebhookSink::builder("https://example.com").header("Bad Header", "x"),
            "not a valid HTTP header name",
        ),
        (
            WebhookSink::builder("https://example.com").header("X-Token", "line\nbreak-s3cr3t"),
            "cannot carry",
        ),
        (
            WebhookSink::builder("https://example.com").header("CE-Type", "spoofed"),
            "invalid header \"ce-type\": ce-* headers carry the event's CloudEvents attributes",
        ),
        (
            WebhookSink::builder("https://example.com")
                .secret("k")
                .header("Webhook-Signature", "v1,AA=="),
            "invalid header \"webhook-signature\": the signature scheme sets this header",
        ),
        (
            WebhookSink::builder("https://example.com").header("Content-Length", "3"),
            "the HTTP client sets this header",
        ),
        (
            WebhookSink::builder("https://example.com").events(["decision..x"]),
            "invalid event pattern",
        ),
        (
            WebhookSink::builder("https://example.com").timeout(std::time::Duration::ZERO),
            "timeout",
        ),
        (
            WebhookSink::builder("https://example.com").concurrency(0),
            "concurrency",
        ),
        (
            WebhookSink::builder("https://example.com").max_attempts(0),
            "max_attempts",
        ),
        (
            WebhookSink::builder("https://example.com").batch(0, std::time::Duration::from_secs(1)),
            "batch max_size",
        ),
        (
            WebhookSink::builder("https://example.com").disable_after(Some(0)),
            "disable_after",
        ),
    ];
    for (b, needle) in cases {
        let err = b.build().unwrap_err().to_string();
        assert!(err.contains(needle), "{needle}: {err}");
        assert!(!err.contains("s3cr3t"), "a header value leaked: {err}");
    }
}

#[test]
fn ssrf_guard_refuses_internal_ip_literals_at_construction() {
    let err = WebhookSink::builder("https://169.254.169.254/latest/meta-data")
        .ssrf_guard(SsrfGuard::new())
        .build()
        .unwrap_err();
    assert!(matches!(err, WebhookError::BlockedAddress(_)), "{err}");
    assert!(
        WebhookSink::builder("https://10.1.2.3/x")
            .ssrf_guard(SsrfGuard::new().allow("10.1.0.0/16").unwrap())
            .build()
            .is_ok()
    );
}

#[tokio::test]
async fn ssrf_guard_checks_addresses_after_dns_resolution() {
    let mut rx = Receiver::ok().await;
    let url = format!("http://localhost:{}/hook", rx.addr.port());
    let guarded = WebhookEmitter::builder(&url)
        .ssrf_guard(SsrfGuard::new())
        .retry(fast_retry(3))
        .build_emitter()
        .unwrap();
    let out = guarded.emit(ev()).await;
    assert_eq!(
        out.status,
        DeliveryStatus::Failed(FailureKind::Permanent),
        "{out:?}"
    );
    assert_eq!(out.attempts, 1, "a refused address is not retried");
    assert!(
        out.error.as_deref().unwrap().contains("SSRF guard"),
        "{out:?}"
    );
    assert_eq!(rx.requests(), 0);

    let allowed = WebhookEmitter::builder(&url)
        .ssrf_guard(
            SsrfGuard::new()
                .allow("127.0.0.0/8")
                .unwrap()
                .allow("::1")
                .unwrap(),
        )
        .build_emitter()
        .unwrap();
    assert!(allowed.emit(ev()).await.is_delivered());
    rx.next().await;
}

#[tokio::test]
async fn errors_do_not_reveal_the_url_path() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let e = WebhookEmitter::builder(format!("http://127.0.0.1:{port}/services/T0/B0/SECRETPATH"))
        .retry(fast_retry(1))
        .build_emitter()
        .unwrap();
    let out = e.emit(ev()).await;
    let text = format!("{out:?} {:?} {:?}", e.sink().deliveries(5), e);
    assert!(!text.contains("SECRETPATH"), "{text}");
}

#[test]
fn tls_verification_can_be_turned_off_explicitly() {
    assert!(
        WebhookSink::builder("https://self-signed.internal/x")
            .verify_ssl(false)
            .build()
            .is_ok()
    );
}

#[test]
fn the_guard_knows_the_internal_ranges() {
    for a in [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fd00::1",
        "fe80::1",
        "::ffff:10.0.0.1",
        "::10.0.0.1",
        "2002:a9fe:a9fe::1",                    // 6to4 of 169.254.169.254
        "2002:7f00:1::",                        // 6to4 of 127.0.0.1
        "2001:0:4136:e378:8000:63bf:f5ff:fffe", // Teredo, client 10.0.0.1
        "2001:0:a00:1::1",                      // Teredo, server 10.0.0.1
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::a00:1",
        "::ffff:0:a00:1", // IPv4-translated 10.0.0.1
        "2001:db8::1",
    ] {
        assert!(
            hookbus::webhook::guard::is_internal(a.parse().unwrap()),
            "{a}"
        );
    }
    for a in [
        "8.8.8.8",
        "1.1.1.1",
        "2606:4700:4700::1111",
        "100.128.0.1",
        "2002:808:808::1",                      // 6to4 of 8.8.8.8
        "2001:0:4136:e378:8000:63bf:f7f7:f7f7", // Teredo, client 8.8.8.8
    ] {
        assert!(
            !hookbus::webhook::guard::is_internal(a.parse().unwrap()),
            "{a}"
        );
    }
}

#[test]
fn the_allow_list_lets_ranges_through() {
    let g = SsrfGuard::new().allow("10.1.0.0/16").unwrap();
    assert!(g.permits("10.1.9.9".parse().unwrap()));
    assert!(!g.permits("10.2.0.1".parse().unwrap()));
    assert!(SsrfGuard::new().allow("10.0.0.0/33").is_err());
    assert!(SsrfGuard::new().allow("nope").is_err());
}
