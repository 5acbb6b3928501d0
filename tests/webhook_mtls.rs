#![cfg(feature = "webhook")]
//! Mutual TLS: a real TLS receiver on https://127.0.0.1 (rustls, an axum
//! router behind a TLS listener) that requires a client certificate signed
//! by its CA. Certificates are made here with rcgen.

mod webhook_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::http::StatusCode;
use hookbus::Event;
use hookbus::webhook::{DeliveryStatus, WebhookConfig, WebhookEmitter, WebhookError};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use serde_json::json;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use webhook_support::fast_retry;

/// A CA, and server and client certificates it signed (PEM).
struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

fn pki() -> Pki {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "hookbus test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();

    let mut server =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate().unwrap();
    let server_cert = server.signed_by(&server_key, &ca).unwrap();

    let mut client = CertificateParams::new(vec!["hookbus-client".to_owned()]).unwrap();
    client
        .distinguished_name
        .push(DnType::CommonName, "hookbus-client");
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_key = KeyPair::generate().unwrap();
    let client_cert = client.signed_by(&client_key, &ca).unwrap();
    Pki {
        ca: ca.pem(),
        server_cert: server_cert.pem(),
        server_key: server_key.serialize_pem(),
        client_cert: client_cert.pem(),
        client_key: client_key.serialize_pem(),
    }
}

/// A TLS listener for axum: completes each handshake before handing the
/// connection over; a refused handshake is counted and dropped.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: TlsAcceptor,
    refused: Arc<AtomicUsize>,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            match self.acceptor.accept(tcp).await {
                Ok(tls) => return (tls, addr),
                Err(_) => {
                    self.refused.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// An https receiver on 127.0.0.1 that requires a client certificate
/// signed by the test CA: its URL, the requests it answered and the
/// handshakes it refused.
async fn mtls_receiver(pki: &Pki) -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.ca.as_bytes()).unwrap())
        .unwrap();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .unwrap();
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(pki.server_cert.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(pki.server_key.as_bytes()).unwrap(),
        )
        .unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let answered = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let a = answered.clone();
    let app = Router::new().fallback(move || {
        let a = a.clone();
        async move {
            a.fetch_add(1, Ordering::SeqCst);
            StatusCode::OK
        }
    });
    let listener = TlsListener {
        tcp,
        acceptor: TlsAcceptor::from(Arc::new(config)),
        refused: refused.clone(),
    };
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (
        format!("https://127.0.0.1:{}/hook", addr.port()),
        answered,
        refused,
    )
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
    let config: WebhookConfig = serde_json::from_value(json!({
        "url": url,
        "tls": {
            "client_cert_pem_file": path("client.crt", &pki.client_cert),
            "client_key_pem_file": path("client.key", &pki.client_key),
            "ca_pem_file": path("ca.pem", &pki.ca),
        }
    }))
    .unwrap();
    let emitter = config.into_builder().unwrap().build_emitter().unwrap();
    assert!(emitter.emit(ev()).await.is_delivered());
    assert_eq!(answered.load(Ordering::SeqCst), 1);

    // A missing file is an error at into_builder, naming the file.
    let missing: WebhookConfig = serde_json::from_value(json!({
        "url": url,
        "tls": {"ca_pem_file": dir.path().join("nope.pem")}
    }))
    .unwrap();
    let err = missing.into_builder().unwrap_err();
    assert!(
        matches!(&err, WebhookError::Tls(m) if m.contains("nope.pem")),
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
        WebhookError::Tls(m) => m,
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
        matches!(&err, WebhookError::Tls(m) if m.contains("root_certificates_pem")),
        "{err}"
    );
    let err = WebhookEmitter::builder("https://hooks.example.com/in")
        .tls_built_in_roots(false)
        .build_emitter()
        .unwrap_err();
    assert!(matches!(err, WebhookError::Tls(_)), "{err}");
}
