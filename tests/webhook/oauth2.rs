//! OAuth2 client credentials against a real token server and a real
//! receiver (axum on 127.0.0.1): one token shared by concurrent deliveries,
//! expiry, a new token on 401, and a token endpoint that is down for a while.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::webhook_support::{Receiver, fast_retry};
use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hookbus::Event;
use hookbus::webhook::{
    DeliveryStatus, OAuth2, OAuth2ClientAuth, WebhookBuilder, WebhookEmitter, WebhookError,
};
use serde_json::json;

/// One token request as the token server saw it.
#[derive(Debug, Clone)]
struct TokenRequest {
    authorization: Option<String>,
    form: Vec<(String, String)>,
}

impl TokenRequest {
    fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A token server: `respond(n)` answers the `n`th request (from 0).
struct TokenServer {
    url: String,
    seen: Arc<Mutex<Vec<TokenRequest>>>,
}

impl TokenServer {
    async fn start(respond: impl Fn(usize) -> Response + Send + Sync + 'static) -> TokenServer {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let respond = Arc::new(respond);
        let app = Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let s = s.clone();
            let respond = respond.clone();
            async move {
                let request = TokenRequest {
                    authorization: headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned),
                    form: url::form_urlencoded::parse(&body).into_owned().collect(),
                };
                let n = {
                    let mut seen = s.lock().unwrap();
                    seen.push(request);
                    seen.len() - 1
                };
                respond(n)
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        TokenServer {
            url: format!("http://{addr}/oauth/token"),
            seen,
        }
    }

    /// Tokens `tok-1`, `tok-2`, … valid for `expires_in` seconds.
    async fn issuing(expires_in: u64) -> TokenServer {
        TokenServer::start(move |n| token(n + 1, expires_in)).await
    }

    fn hits(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn requests(&self) -> Vec<TokenRequest> {
        self.seen.lock().unwrap().clone()
    }
}

fn token(n: usize, expires_in: u64) -> Response {
    axum::Json(json!({
        "access_token": format!("tok-{n}"),
        "token_type": "Bearer",
        "expires_in": expires_in,
    }))
    .into_response()
}

/// A receiver that accepts the bearer tokens `accept` allows, else 401.
async fn receiver(accept: impl Fn(&str) -> bool + Send + Sync + 'static) -> Receiver {
    Receiver::start(move |r, _| match r.header("authorization") {
        Some(auth) if auth.strip_prefix("Bearer ").is_some_and(&accept) => {
            StatusCode::OK.into_response()
        }
        _ => StatusCode::UNAUTHORIZED.into_response(),
    })
    .await
}

fn creds(server: &TokenServer) -> OAuth2 {
    OAuth2::client_credentials(&server.url, "hookbus client", "s3cret&more")
}

fn ev(n: u64) -> Event {
    Event::new("order.created", json!({ "n": n })).unwrap()
}

#[tokio::test]
async fn one_token_serves_twenty_concurrent_deliveries() {
    let server = TokenServer::issuing(3600).await;
    let mut rx = receiver(|t| t == "tok-1").await;
    let emitter = WebhookEmitter::builder(&rx.url)
        .oauth2(creds(&server).scope("events.write").scope("events.read"))
        .build_emitter()
        .unwrap();
    let outcomes = futures_util::future::join_all((0..20).map(|n| emitter.emit(ev(n)))).await;
    assert!(outcomes.iter().all(|o| o.is_delivered()), "{outcomes:?}");
    assert_eq!(server.hits(), 1, "one token fetch for 20 deliveries");
    assert_eq!(rx.drain().len(), 20);

    // The request: the client credentials grant, the scopes, HTTP Basic
    // with the form-encoded id and secret (RFC 6749 §2.3.1).
    let request = &server.requests()[0];
    assert_eq!(request.field("grant_type"), Some("client_credentials"));
    assert_eq!(request.field("scope"), Some("events.write events.read"));
    assert_eq!(request.field("client_secret"), None);
    let basic = request
        .authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Basic "))
        .expect("HTTP Basic");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(basic)
        .unwrap();
    assert_eq!(decoded, b"hookbus+client:s3cret%26more");
}

#[tokio::test]
async fn credentials_in_the_request_body() {
    let server = TokenServer::issuing(3600).await;
    let rx = receiver(|t| t == "tok-1").await;
    let emitter = WebhookEmitter::builder(&rx.url)
        .oauth2(creds(&server).client_auth(OAuth2ClientAuth::RequestBody))
        .build_emitter()
        .unwrap();
    assert!(emitter.emit(ev(1)).await.is_delivered());
    let request = &server.requests()[0];
    assert_eq!(request.authorization, None);
    assert_eq!(request.field("client_id"), Some("hookbus client"));
    assert_eq!(request.field("client_secret"), Some("s3cret&more"));
}

/// A token that is already expired when it arrives (`expires_in: 0`) is
/// fetched anew for every request; one valid for an hour is not.
#[tokio::test]
async fn an_expired_token_is_replaced() {
    let server = TokenServer::issuing(0).await;
    let rx = receiver(|_| true).await;
    let emitter = WebhookEmitter::builder(&rx.url)
        .oauth2(creds(&server))
        .build_emitter()
        .unwrap();
    for n in 0..3 {
        assert!(emitter.emit(ev(n)).await.is_delivered());
    }
    assert_eq!(server.hits(), 3);
}

/// Under tokio's paused clock: a token valid for 60 s is kept until 30 s
/// before it expires, then replaced.
#[tokio::test(start_paused = true)]
async fn a_token_is_replaced_shortly_before_it_expires() {
    let server = TokenServer::issuing(60).await;
    let mut rx = receiver(|_| true).await;
    let emitter = WebhookEmitter::builder(&rx.url)
        .oauth2(creds(&server))
        .timeout(Duration::from_secs(3600))
        .build_emitter()
        .unwrap();
    assert!(emitter.emit(ev(0)).await.is_delivered());
    tokio::time::advance(Duration::from_secs(29)).await;
    assert!(emitter.emit(ev(1)).await.is_delivered());
    assert_eq!(server.hits(), 1, "still valid for 31 s");
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(emitter.emit(ev(2)).await.is_delivered());
    assert_eq!(server.hits(), 2, "replaced 30 s before expiry");
    let tokens: Vec<String> = rx
        .drain()
        .iter()
        .map(|r| r.header("authorization").unwrap().to_owned())
        .collect();
    assert_eq!(tokens, ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]);
}

#[tokio::test]
async fn a_401_fetches_a_new_token_once_and_sends_again() {
    // The receiver has revoked tok-1 before it expires.
    let server = TokenServer::issuing(3600).await;
    let mut rx = receiver(|t| t != "tok-1").await;
    let emitter = WebhookEmitter::builder(&rx.url)
        .oauth2(creds(&server))
        .retry(fast_retry(3))
        .build_emitter()
        .unwrap();
    let outcome = emitter.emit(ev(1)).await;
    assert!(outcome.is_delivered(), "{outcome:?}");
    assert_eq!(outcome.attempts, 1, "the resend is part of the attempt");
    assert_eq!(server.hits(), 2);
    let auth: Vec<String> = rx
        .drain()
        .iter()
        .map(|r| r.header("authorization").unwrap().to_owned())
        .collect();
    assert_eq!(auth, ["Bearer tok-1", "Bearer tok-2"]);
    // The new token is kept.
    assert!(emitter.emit(ev(2)).await.is_delivered());
    assert_eq!(server.hits(), 2);

    // A receiver that refuses every token: one new token, one resend, then
    // the 401 is final (not retried with the same refused credentials).
    let server = TokenServer::issuing(3600).await;
    let mut rx = receiver(|_| false).await;
    let emitter = WebhookEmitter::builder(&rx.url)
        .oauth2(creds(&server))
        .retry(fast_retry(3))
        .build_emitter()
        .unwrap();
    let outcome = emitter.emit(ev(3)).await;
    assert_eq!(
        outcome.status,
        DeliveryStatus::Failed(hookbus::sink::FailureKind::Permanent),
        "{outcome:?}"
    );
    assert_eq!(outcome.status_code, Some(401));
    assert_eq!(server.hits(), 2);
    assert_eq!(rx.drain().len(), 2);
}

#[tokio::test]
async fn a_token_endpoint_that_is_down_delays_deliveries_without_losing_them() {
    // 503 twice, then tokens.
    let server = TokenServer::start(|n| {
        if n < 2 {
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        } else {
            token(n, 3600)
        }
    })
    .await;
    let mut rx = receiver(|_| true).await;
    let emitter = WebhookEmitter::builder(&rx.url)
        .oauth2(creds(&server))
        .retry(fast_retry(5))
        .build_emitter()
        .unwrap();
    let outcome = emitter.emit(ev(1)).await;
    assert!(outcome.is_delivered(), "{outcome:?}");
    assert_eq!(outcome.attempts, 3);
    assert_eq!(server.hits(), 3);
    assert_eq!(rx.drain().len(), 1);

    // Unreachable: retried as the policy says, then dead-lettered with a
    // message that names the token endpoint and holds no secret.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let rx = receiver(|_| true).await;
    let emitter = WebhookEmitter::builder(&rx.url)
        .oauth2(OAuth2::client_credentials(
            format!("http://127.0.0.1:{port}/token"),
            "id",
            "s3cret",
        ))
        .retry(fast_retry(3))
        .build_emitter()
        .unwrap();
    let outcome = emitter.emit(ev(2)).await;
    assert_eq!(
        outcome.status,
        DeliveryStatus::Failed(hookbus::sink::FailureKind::Exhausted),
        "{outcome:?}"
    );
    assert_eq!(outcome.attempts, 3);
    let error = outcome.error.unwrap();
    assert!(error.contains("OAuth2 token endpoint"), "{error}");
    assert!(!error.contains("s3cret"), "{error}");
    assert_eq!(rx.requests(), 0);
}

/// Twenty deliveries at once, the token endpoint down: they share the
/// failure of one fetch (one request, not twenty in turn), and on their
/// retry one fetch serves them all.
#[tokio::test]
async fn concurrent_deliveries_share_a_failed_fetch_and_a_refreshed_token() {
    let server = TokenServer::start(|n| {
        if n == 0 {
            StatusCode::BAD_GATEWAY.into_response()
        } else {
            token(n, 3600)
        }
    })
    .await;
    let mut rx = receiver(|_| true).await;
    let emitter = WebhookEmitter::builder(&rx.url)
        .oauth2(creds(&server))
        .retry(fast_retry(2))
        .build_emitter()
        .unwrap();
    let outcomes = futures_util::future::join_all((0..20).map(|n| emitter.emit(ev(n)))).await;
    assert!(outcomes.iter().all(|o| o.is_delivered()), "{outcomes:?}");
    assert!(outcomes.iter().all(|o| o.attempts == 2), "{outcomes:?}");
    assert_eq!(server.hits(), 2);
    assert_eq!(rx.drain().len(), 20);

    // tok-1 is accepted once, then revoked: twenty deliveries holding it
    // are refused at once, and one new token serves them all.
    let server = TokenServer::issuing(3600).await;
    let mut rx = Receiver::start(|r, n| match r.header("authorization") {
        Some("Bearer tok-1") if n == 0 => StatusCode::OK.into_response(),
        Some("Bearer tok-2") => StatusCode::OK.into_response(),
        _ => StatusCode::UNAUTHORIZED.into_response(),
    })
    .await;
    let emitter = WebhookEmitter::builder(&rx.url)
        .oauth2(creds(&server))
        .build_emitter()
        .unwrap();
    let first = emitter.emit(ev(100)).await;
    assert!(first.is_delivered(), "{first:?}");
    assert_eq!(server.hits(), 1);
    let outcomes = futures_util::future::join_all((0..20).map(|n| emitter.emit(ev(n)))).await;
    assert!(outcomes.iter().all(|o| o.is_delivered()), "{outcomes:?}");
    assert_eq!(server.hits(), 2, "one new token for twenty 401s");
    assert_eq!(rx.drain().len(), 41);
}

#[tokio::test]
async fn refused_client_credentials_are_final() {
    let server = TokenServer::start(|_| {
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client"})),
        )
            .into_response()
    })
    .await;
    let rx = receiver(|_| true).await;
    let emitter = WebhookEmitter::builder(&rx.url)
        .oauth2(creds(&server))
        .retry(fast_retry(3))
        .build_emitter()
        .unwrap();
    let outcome = emitter.emit(ev(1)).await;
    assert_eq!(outcome.attempts, 1, "{outcome:?}");
    let error = outcome.error.unwrap();
    assert!(error.contains("HTTP 401: invalid_client"), "{error}");
    assert_eq!(rx.requests(), 0);
}

#[test]
fn settings_are_checked_at_build_and_the_secret_is_redacted() {
    // The token URL obeys the webhook URL rules.
    let err = WebhookEmitter::builder("https://hooks.example.com/in")
        .oauth2(OAuth2::client_credentials(
            "http://auth.example.com/token",
            "id",
            "s3cret",
        ))
        .build_emitter()
        .unwrap_err();
    assert!(
        matches!(&err, WebhookError::OAuth2(_)) && err.to_string().contains("plain http"),
        "{err}"
    );
    assert!(!err.to_string().contains("s3cret"));
    // The token is the Authorization header: no other one.
    let err = WebhookEmitter::builder("https://hooks.example.com/in")
        .header("Authorization", "Bearer static")
        .oauth2(OAuth2::client_credentials(
            "https://auth.example.com/token",
            "id",
            "s3cret",
        ))
        .build_emitter()
        .unwrap_err();
    assert!(matches!(err, WebhookError::InvalidHeader { .. }), "{err}");

    let builder = WebhookEmitter::builder("https://hooks.example.com/in").oauth2(
        OAuth2::client_credentials("https://auth.example.com/token?key=k3y", "id", "s3cret"),
    );
    let debug = format!("{builder:?}");
    assert!(
        !debug.contains("s3cret") && !debug.contains("k3y"),
        "{debug}"
    );
    let emitter = builder.build_emitter().unwrap();
    assert!(!format!("{emitter:?}").contains("s3cret"));

    let config: WebhookBuilder = serde_json::from_value(json!({
        "url": "https://hooks.example.com/in",
        "oauth2": {
            "token_url": "https://auth.example.com/token",
            "client_id": "id",
            "client_secret": "s3cret",
            "scopes": ["a", "b"],
            "client_auth": "request_body"
        }
    }))
    .unwrap();
    let builder = config;
    assert!(!format!("{builder:?}").contains("s3cret"));
    assert!(format!("{builder:?}").contains("RequestBody"));
    builder.build().unwrap();
}

/// `hookbus send` with the OAuth2 flags, the secret from the environment:
/// delivered with the token, and the secret printed nowhere.
#[cfg(feature = "cli")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sends_with_a_token() {
    let server = TokenServer::issuing(3600).await;
    let mut rx = receiver(|t| t == "tok-1").await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookbus"))
        .args(["send", "--url", &rx.url, "--type", "a.b", "--count", "3"])
        .args(["--oauth2-token-url", &server.url])
        .args([
            "--oauth2-client-id",
            "cli",
            "--oauth2-scope",
            "events.write",
        ])
        .env_remove("HOOKBUS_SECRET")
        .env("HOOKBUS_OAUTH2_CLIENT_SECRET", "cl1-s3cret")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!printed.contains("cl1-s3cret"), "{printed}");
    assert_eq!(rx.drain().len(), 3);
    assert_eq!(server.hits(), 1);
    assert_eq!(server.requests()[0].field("scope"), Some("events.write"));
}
