//! Mutual TLS: a real TLS receiver on https://127.0.0.1 (rustls, an axum
//! router behind a TLS listener, see `tls_support`) that requires a client
//! certificate signed by its CA. Certificates are made with rcgen.

use std::sync::atomic::Ordering;

use crate::tls_support::{Pki, pki, tls_receiver};
use crate::webhook_support::fast_retry;
use hookbus::Event;
use hookbus::webhook::{DeliveryStatus, WebhookBuilder, WebhookEmitter, WebhookError};
use rcgen::KeyPair;
use serde_json::json;

async fn mtls_receiver(
    pki: &Pki,
) -> (
    String,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    tls_receiver(pki, true).await
}

fn ev() -> Event {
    Event::new("order.created", json!({"id": 1})).unwrap()
}

#[tokio::test]
async fn accepted_with_the_client_certificate_refused_without() {
    let pki = pki();
    let (url, answered, refused) = mtls_receiver(&pki).await;

    let with = WebhookEmitter::builder(&url)
        .client_identity_pem(&pki.client_cert, &pki.client_key)
        .root_certificates_pem(&pki.ca)
        .tls_built_in_roots(false)
        .retry(fast_retry(1))
        .build_emitter()
        .unwrap();
    let outcome = with.emit(ev()).await;
    assert!(outcome.is_delivered(), "{outcome:?}");
    assert_eq!(answered.load(Ordering::SeqCst), 1);

    // Same CA trusted, no client certificate: the handshake is refused and
    // the delivery fails (it does not hang).
    let without = WebhookEmitter::builder(&url)
        .root_certificates_pem(&pki.ca)
        .retry(fast_retry(2))
        .build_emitter()
        .unwrap();
    let outcome = without.emit(ev()).await;
    assert!(
        matches!(outcome.status, DeliveryStatus::Failed(_)),
        "{outcome:?}"
    );
    assert_eq!(outcome.attempts, 2, "{outcome:?}");
    assert_eq!(answered.load(Ordering::SeqCst), 1);
    assert!(refused.load(Ordering::SeqCst) >= 1);
}

#[tokio::test]
async fn the_server_is_not_trusted_without_its_root() {
    let pki = pki();
    let (url, answered, _) = mtls_receiver(&pki).await;
    let emitter = WebhookEmitter::builder(&url)
        .client_identity_pem(&pki.client_cert, &pki.client_key)
        .retry(fast_retry(1))
        .build_emitter()
        .unwrap();
    let outcome = emitter.emit(ev()).await;
    assert!(!outcome.is_delivered(), "{outcome:?}");
    let error = outcome.error.unwrap();
    assert!(error.contains("certificate"), "{error}");
    assert_eq!(answered.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn file_config_reads_the_pem_files() {
    let pki = pki();
    let (url, answered, _) = mtls_receiver(&pki).await;
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let config: WebhookBuilder = serde_json::from_value(json!({
        "url": url,
        "tls": {
            "client_cert_pem_file": path("client.crt", &pki.client_cert),
            "client_key_pem_file": path("client.key", &pki.client_key),
            "ca_pem_file": path("ca.pem", &pki.ca),
        }
    }))
    .unwrap();
    let emitter = config.build_emitter().unwrap();
    assert!(emitter.emit(ev()).await.is_delivered());
    assert_eq!(answered.load(Ordering::SeqCst), 1);

    // A missing file is an error at build, naming the file.
    let missing: WebhookBuilder = serde_json::from_value(json!({
        "url": url,
        "tls": {"ca_pem_file": dir.path().join("nope.pem")}
    }))
    .unwrap();
    let err = missing.build().unwrap_err();
    assert!(
        matches!(&err, WebhookError::Tls(_)) && err.to_string().contains("nope.pem"),
        "{err}"
    );
}

#[test]
fn bad_pem_is_refused_at_build_with_a_precise_error() {
    let pki = pki();
    let build = |cert: &str, key: &str| {
        WebhookEmitter::builder("https://hooks.example.com/in")
            .client_identity_pem(cert, key)
            .build_emitter()
            .unwrap_err()
    };
    let tls = |e: WebhookError| match e {
        WebhookError::Tls(e) => e.to_string(),
        other => panic!("not a TLS error: {other}"),
    };
    let m = tls(build("garbage", &pki.client_key));
    assert!(m.contains("holds no CERTIFICATE block"), "{m}");
    let m = tls(build(&pki.client_cert, "garbage"));
    assert!(m.contains("holds no private key"), "{m}");
    let truncated = &pki.client_cert[..pki.client_cert.len() - 30];
    let m = tls(build(truncated, &pki.client_key));
    assert!(m.contains("does not parse"), "{m}");
    // The key is not the certificate's.
    let other_key = KeyPair::generate().unwrap().serialize_pem();
    let m = tls(build(&pki.client_cert, &other_key));
    assert!(m.contains("client_identity_pem"), "{m}");
    // No key material in the error.
    assert!(!m.contains("PRIVATE KEY-----"), "{m}");

    let err = WebhookEmitter::builder("https://hooks.example.com/in")
        .root_certificates_pem("not pem")
        .build_emitter()
        .unwrap_err();
    assert!(
        matches!(&err, WebhookError::Tls(_)) && err.to_string().contains("root_certificates_pem"),
        "{err}"
    );
    let err = WebhookEmitter::builder("https://hooks.example.com/in")
        .tls_built_in_roots(false)
        .build_emitter()
        .unwrap_err();
    assert!(matches!(err, WebhookError::Tls(_)), "{err}");
}

/// `hookbus send` with --client-cert, --client-key and --ca-cert.
#[cfg(feature = "cli")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sends_with_a_client_certificate() {
    let pki = pki();
    let (url, answered, _) = mtls_receiver(&pki).await;
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let (cert, key, ca) = (
        path("client.crt", &pki.client_cert),
        path("client.key", &pki.client_key),
        path("ca.pem", &pki.ca),
    );
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookbus"))
        .args(["send", "--url", &url, "--type", "a.b"])
        .arg("--client-cert")
        .arg(&cert)
        .arg("--client-key")
        .arg(&key)
        .arg("--ca-cert")
        .arg(&ca)
        .env_remove("HOOKBUS_SECRET")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(answered.load(Ordering::SeqCst), 1);
    // A key file that is not a key: a clear error, exit code for bad input.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookbus"))
        .args(["send", "--url", &url, "--type", "a.b"])
        .arg("--client-cert")
        .arg(&cert)
        .arg("--client-key")
        .arg(&ca)
        .env_remove("HOOKBUS_SECRET")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no private key"), "{stderr}");
}
