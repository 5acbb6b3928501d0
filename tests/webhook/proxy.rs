//! Egress proxies: a small HTTP proxy written here (tokio TCP: CONNECT
//! tunnels for https, absolute-form requests for http) that counts what it
//! forwards, in front of real receivers on 127.0.0.1; and the SSRF guard,
//! which still applies to the target when a proxy connects to it.

use std::sync::{Arc, Mutex};

use crate::webhook_support::{Receiver, fast_retry};
use hookbus::Event;
use hookbus::webhook::{DeliveryStatus, SsrfGuard, WebhookBuilder, WebhookEmitter, WebhookError};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A forward proxy on 127.0.0.1. It records the target of each request
/// (`CONNECT host:port`, or the absolute URL's host:port) and connects to
/// `upstream` if set (whatever the target), else to the target itself.
struct Proxy {
    url: String,
    port: u16,
    targets: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    async fn start(upstream: Option<std::net::SocketAddr>) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let targets = Arc::new(Mutex::new(Vec::new()));
        let t = targets.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let t = t.clone();
                tokio::spawn(async move {
                    let _ = serve(client, upstream, t).await;
                });
            }
        });
        Proxy {
            url: format!("http://127.0.0.1:{port}"),
            port,
            targets,
        }
    }

    fn targets(&self) -> Vec<String> {
        self.targets.lock().unwrap().clone()
    }
}

/// One client connection: read the request head, connect, then copy bytes
/// both ways (a CONNECT tunnel, or the plain request forwarded as is).
async fn serve(
    mut client: tokio::net::TcpStream,
    upstream: Option<std::net::SocketAddr>,
    targets: Arc<Mutex<Vec<String>>>,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = client.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut first = text.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
    let (authority, connect) = if method == "CONNECT" {
        (target.to_owned(), true)
    } else {
        let url = url::Url::parse(target).expect("absolute-form request");
        let port = url.port_or_known_default().unwrap();
        (format!("{}:{port}", url.host_str().unwrap()), false)
    };
    targets.lock().unwrap().push(authority.clone());
    let mut server = match upstream {
        Some(addr) => tokio::net::TcpStream::connect(addr).await?,
        None => tokio::net::TcpStream::connect(authority.as_str()).await?,
    };
    if connect {
        client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await?;
    } else {
        server.write_all(&head).await?;
    }
    tokio::io::copy_bidirectional(&mut client, &mut server).await?;
    Ok(())
}

fn ev() -> Event {
    Event::new("order.created", json!({"id": 1})).unwrap()
}

#[tokio::test]
async fn plain_http_goes_through_the_proxy() {
    let proxy = Proxy::start(None).await;
    let mut rx = Receiver::ok().await;
    let emitter = WebhookEmitter::builder(&rx.url)
        .proxy(&proxy.url)
        .build_emitter()
        .unwrap();
    for _ in 0..3 {
        assert!(emitter.emit(ev()).await.is_delivered());
    }
    assert_eq!(rx.drain().len(), 3);
    let targets = proxy.targets();
    assert!(!targets.is_empty());
    assert!(
        targets.iter().all(|t| *t == rx.addr.to_string()),
        "{targets:?}"
    );
}

#[tokio::test]
async fn https_is_tunnelled_with_connect() {
    let pki = crate::tls_support::pki();
    let (url, answered, _) = crate::tls_support::tls_receiver(&pki, false).await;
    let proxy = Proxy::start(None).await;
    let emitter = WebhookEmitter::builder(&url)
        .root_certificates_pem(&pki.ca)
        .proxy(&proxy.url)
        .build_emitter()
        .unwrap();
    assert!(emitter.emit(ev()).await.is_delivered());
    assert!(emitter.emit(ev()).await.is_delivered());
    assert_eq!(answered.load(std::sync::atomic::Ordering::SeqCst), 2);
    // One tunnel, kept alive for both requests.
    let port = url::Url::parse(&url).unwrap().port().unwrap();
    assert_eq!(proxy.targets(), [format!("127.0.0.1:{port}")]);
}

#[tokio::test]
async fn without_a_proxy_setting_none_is_used() {
    let proxy = Proxy::start(None).await;
    let mut rx = Receiver::ok().await;
    // proxy_from_env is off by default, and a builder with no proxy sends
    // directly (the environment of this test process is not touched: the
    // env precedence is covered by the unit tests and the CLI test).
    let emitter = WebhookEmitter::builder(&rx.url).build_emitter().unwrap();
    assert!(emitter.emit(ev()).await.is_delivered());
    assert_eq!(rx.drain().len(), 1);
    assert!(proxy.targets().is_empty());
}

#[tokio::test]
async fn the_ssrf_guard_checks_the_target_not_the_proxy() {
    let proxy = Proxy::start(None).await;
    let rx = Receiver::ok().await;
    // localhost resolves to 127.0.0.1 here: the proxy would reach it, so
    // the guard refuses before anything is sent.
    let target = format!("http://localhost:{}/hook", rx.addr.port());
    let emitter = WebhookEmitter::builder(&target)
        .ssrf_guard(SsrfGuard::new())
        .proxy(&proxy.url)
        .retry(fast_retry(3))
        .build_emitter()
        .unwrap();
    let outcome = emitter.emit(ev()).await;
    assert_eq!(
        outcome.status,
        DeliveryStatus::Failed(hookbus::sink::FailureKind::Permanent),
        "{outcome:?}"
    );
    assert_eq!(outcome.attempts, 1, "a refused address is not retried");
    let error = outcome.error.unwrap();
    assert!(error.contains("SSRF guard"), "{error}");
    assert!(proxy.targets().is_empty(), "nothing reached the proxy");
    assert_eq!(rx.requests(), 0);

    // An internal IP literal is refused when built, proxy or not.
    let err = WebhookEmitter::builder("http://169.254.169.254/latest")
        .allow_http(true)
        .ssrf_guard(SsrfGuard::new())
        .proxy(&proxy.url)
        .build_emitter()
        .unwrap_err();
    assert!(matches!(err, WebhookError::BlockedAddress(_)), "{err}");

    // A public target through a proxy that lives on an internal address
    // (named `localhost`, so the guard's resolver sees it): the proxy is
    // the operator's choice and is let through; the target passes the
    // guard. This proxy hands the request to the local receiver.
    let mut rx = Receiver::ok().await;
    let forwarding = Proxy::start(Some(rx.addr)).await;
    let emitter = WebhookEmitter::builder("http://93.184.215.14/hook")
        .allow_http(true)
        .ssrf_guard(SsrfGuard::new())
        .proxy(format!("http://localhost:{}", forwarding.port))
        .build_emitter()
        .unwrap();
    let outcome = emitter.emit(ev()).await;
    assert!(outcome.is_delivered(), "{outcome:?}");
    assert_eq!(forwarding.targets(), ["93.184.215.14:80"]);
    assert_eq!(rx.drain().len(), 1);
}

#[tokio::test]
async fn proxy_settings_are_checked_at_build_and_from_file_config() {
    for bad in ["socks5://127.0.0.1:1080", "::nope", "http://"] {
        let err = WebhookEmitter::builder("https://hooks.example.com/in")
            .proxy(bad)
            .build_emitter()
            .unwrap_err();
        assert!(matches!(err, WebhookError::Proxy(_)), "{bad}: {err}");
    }
    // Credentials in the proxy URL never show in Debug.
    let builder = WebhookEmitter::builder("https://hooks.example.com/in")
        .proxy("http://user:pr0xypass@proxy.example.com:3128");
    assert!(!format!("{builder:?}").contains("pr0xypass"));

    let proxy = Proxy::start(None).await;
    let mut rx = Receiver::ok().await;
    let config: WebhookBuilder = serde_json::from_value(json!({
        "url": rx.url,
        "proxy": proxy.url,
    }))
    .unwrap();
    let emitter = config.build_emitter().unwrap();
    assert!(emitter.emit(ev()).await.is_delivered());
    assert_eq!(rx.drain().len(), 1);
    assert_eq!(proxy.targets(), [rx.addr.to_string()]);
}

/// `hookbus send` in a process of its own, with `HTTP_PROXY` in its
/// environment: ignored without `--proxy-from-env`, used with it.
#[cfg(feature = "cli")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_uses_the_environment_proxy_only_when_asked() {
    let proxy = Proxy::start(None).await;
    let mut rx = Receiver::ok().await;
    let send = |from_env: bool| {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookbus"));
        c.args(["send", "--url", &rx.url, "--type", "a.b"])
            .env_remove("HOOKBUS_SECRET")
            .env_remove("http_proxy")
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .env("HTTP_PROXY", &proxy.url);
        if from_env {
            c.arg("--proxy-from-env");
        }
        c.output()
    };
    let out = send(false).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(proxy.targets().is_empty(), "the environment is ignored");
    let out = send(true).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(proxy.targets(), [rx.addr.to_string()]);
    assert_eq!(rx.drain().len(), 2);
}
