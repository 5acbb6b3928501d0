//! OAuth2 client credentials (RFC 6749 §4.4) for webhook endpoints that want
//! a bearer token: [`OAuth2`] says where and how to get one; the endpoint
//! keeps one token, shared by all its deliveries, and fetches a new one
//! shortly before it expires or when the receiver answers 401. The
//! [`OAuth`] layer of the delivery stack sets it on each attempt.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use base64::Engine;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde::Deserialize;
use tokio::time::Instant;

use super::attempt::{Attempt, Request, Verdict};
use super::guard::{SsrfGuard, redact_url};

/// How much sooner than `expires_in` a token is replaced, at most (a
/// token is never replaced before half its lifetime).
pub const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(30);

/// The largest token endpoint answer read.
const MAX_TOKEN_RESPONSE: usize = 64 * 1024;

/// How the client authenticates to the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OAuth2ClientAuth {
    /// HTTP Basic with the form-encoded client id and secret (the default;
    /// every compliant server supports it).
    #[default]
    Basic,
    /// `client_id` and `client_secret` in the form body, for servers that
    /// want them there.
    RequestBody,
}

/// OAuth2 client credentials for an endpoint: see
/// [`WebhookBuilder::oauth2`](super::WebhookBuilder::oauth2). The secret
/// never appears in `Debug`, logs or errors. In a config file:
/// `{"token_url", "client_id", "client_secret", "scopes"?, "client_auth"?}`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2 {
    pub(crate) token_url: String,
    pub(crate) client_id: String,
    client_secret: String,
    #[serde(default)]
    pub(crate) scopes: Vec<String>,
    #[serde(default, rename = "client_auth")]
    pub(crate) auth: OAuth2ClientAuth,
}

impl fmt::Debug for OAuth2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2")
            .field("token_url", &redact_url(&self.token_url))
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("scopes", &self.scopes)
            .field("auth", &self.auth)
            .finish()
    }
}

impl OAuth2 {
    /// The client credentials grant: a token from `token_url` (a POST of
    /// `grant_type=client_credentials`), authenticating as `client_id` with
    /// `client_secret` (HTTP Basic unless [`client_auth`](Self::client_auth)
    /// says otherwise).
    pub fn client_credentials(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> OAuth2 {
        OAuth2 {
            token_url: token_url.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            scopes: Vec::new(),
            auth: OAuth2ClientAuth::Basic,
        }
    }

    /// Adds a scope (scopes are sent space-separated; none: the server's
    /// default).
    pub fn scope(mut self, scope: impl Into<String>) -> OAuth2 {
        self.scopes.push(scope.into());
        self
    }

    /// How to send the client credentials (default HTTP Basic).
    pub fn client_auth(mut self, auth: OAuth2ClientAuth) -> OAuth2 {
        self.auth = auth;
        self
    }
}

/// A token as the endpoint keeps it.
#[derive(Clone)]
struct Token {
    /// `Bearer <token>`, marked sensitive.
    header: HeaderValue,
    /// When to fetch a new one (never: until a 401).
    renew_at: Option<Instant>,
}

/// Why no token could be had.
#[derive(Debug, Clone)]
pub(crate) struct TokenError {
    pub(crate) message: String,
    pub(crate) retryable: bool,
}

/// The endpoint's token: one at a time, fetched by whichever delivery
/// needs it first while the others wait for it (the lock is held across
/// the fetch, so concurrent deliveries make one request, not one each).
/// Deliveries that waited for a fetch that failed share its error rather
/// than each trying again in turn: with the token endpoint down, a wave of
/// deliveries costs one request (and at most one timeout), not one each.
pub(crate) struct TokenSource {
    settings: OAuth2,
    token_url: url::Url,
    timeout: Duration,
    /// The endpoint's client (its TLS settings, proxy and guard).
    client: reqwest::Client,
    /// The SSRF guard when a proxy connects for us (see `proxy`).
    proxied_guard: Option<Arc<SsrfGuard>>,
    current: tokio::sync::Mutex<Kept>,
    /// Fetches finished, counted under the lock.
    finished: AtomicU64,
}

#[derive(Default)]
struct Kept {
    token: Option<Token>,
    /// How the last fetch failed, if it did.
    failure: Option<TokenError>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    token_type: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct TokenErrorResponse {
    error: String,
}

impl TokenSource {
    pub(crate) fn new(
        settings: OAuth2,
        token_url: url::Url,
        timeout: Duration,
        client: reqwest::Client,
        proxied_guard: Option<Arc<SsrfGuard>>,
    ) -> TokenSource {
        TokenSource {
            settings,
            token_url,
            timeout,
            client,
            proxied_guard,
            current: tokio::sync::Mutex::new(Kept::default()),
            finished: AtomicU64::new(0),
        }
    }

    /// A valid token: the kept one, or a new one. `rejected` is a token the
    /// receiver refused: if it is still the kept one, a new one is fetched.
    pub(crate) async fn token(
        &self,
        rejected: Option<&HeaderValue>,
    ) -> Result<HeaderValue, TokenError> {
        let seen = self.finished.load(SeqCst);
        let mut kept = self.current.lock().await;
        if let Some(t) = kept.token.as_ref()
            && t.renew_at.is_none_or(|at| Instant::now() < at)
            && rejected != Some(&t.header)
        {
            return Ok(t.header.clone());
        }
        // A fetch finished while this delivery waited, and failed: its
        // error is this delivery's too.
        if self.finished.load(SeqCst) != seen
            && let Some(e) = &kept.failure
        {
            return Err(e.clone());
        }
        kept.token = None;
        let fetched = self.fetch().await;
        self.finished.fetch_add(1, SeqCst);
        match fetched {
            Ok(token) => {
                let header = token.header.clone();
                *kept = Kept {
                    token: Some(token),
                    failure: None,
                };
                Ok(header)
            }
            Err(e) => {
                kept.failure = Some(e.clone());
                Err(e)
            }
        }
    }

    /// The form body, and the Basic `Authorization` unless the credentials
    /// go in the body.
    fn request_body(&self) -> Result<(String, Option<HeaderValue>), TokenError> {
        let s = &self.settings;
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        if !s.scopes.is_empty() {
            form.append_pair("scope", &s.scopes.join(" "));
        }
        let basic = match s.auth {
            OAuth2ClientAuth::Basic => {
                // RFC 6749 §2.3.1: each part form-encoded, then Basic.
                let enc = |t: &str| {
                    url::form_urlencoded::byte_serialize(t.as_bytes()).collect::<String>()
                };
                let basic = base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}:{}",
                    enc(&s.client_id),
                    enc(&s.client_secret)
                ));
                let mut v =
                    HeaderValue::try_from(format!("Basic {basic}")).map_err(|_| TokenError {
                        message: "the client credentials do not fit an HTTP header".into(),
                        retryable: false,
                    })?;
                v.set_sensitive(true);
                Some(v)
            }
            OAuth2ClientAuth::RequestBody => {
                form.append_pair("client_id", &s.client_id);
                form.append_pair("client_secret", &s.client_secret);
                None
            }
        };
        Ok((form.finish(), basic))
    }

    async fn fetch(&self) -> Result<Token, TokenError> {
        // Through a proxy the guard's resolver never sees the token host:
        // it is checked here, as the webhook URL is before each request.
        if let Some(guard) = &self.proxied_guard {
            super::proxy::check_target(guard, &self.token_url)
                .await
                .map_err(|message| TokenError {
                    message,
                    retryable: false,
                })?;
        }
        let (body, basic) = self.request_body()?;
        let mut request = (self.client)
            .post(self.token_url.clone())
            .timeout(self.timeout)
            .header(reqwest::header::ACCEPT, "application/json")
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            );
        if let Some(basic) = basic {
            request = request.header(AUTHORIZATION, basic);
        }
        let failed = |message: String, retryable: bool| TokenError { message, retryable };
        let mut resp = request.body(body).send().await.map_err(|e| {
            let what = if e.is_timeout() {
                format!("timed out after {:?}", self.timeout)
            } else if e.is_connect() {
                "connection failed".to_owned()
            } else {
                "request failed".to_owned()
            };
            // Without the URL: its query could hold anything.
            failed(format!("{what}: {}", e.without_url()), true)
        })?;
        let status = resp.status();
        let mut body = Vec::new();
        // A token response is small: a larger answer is not one. An error
        // answer is read only as far as that limit (a load balancer's error
        // page may be larger) and judged by its status below.
        while let Some(chunk) = resp.chunk().await.map_err(|e| {
            failed(
                format!("reading the answer failed: {}", e.without_url()),
                true,
            )
        })? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_TOKEN_RESPONSE {
                if !status.is_success() {
                    break;
                }
                return Err(failed(
                    format!("the answer is larger than {MAX_TOKEN_RESPONSE} bytes"),
                    false,
                ));
            }
        }
        if !status.is_success() {
            // RFC 6749 §5.2: the `error` code says why (never the secret).
            let code = serde_json::from_slice::<TokenErrorResponse>(&body)
                .map(|e| format!(": {}", e.error.chars().take(64).collect::<String>()))
                .unwrap_or_default();
            let retryable = status.is_server_error()
                || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                || status == reqwest::StatusCode::REQUEST_TIMEOUT;
            return Err(failed(format!("HTTP {}{code}", status.as_u16()), retryable));
        }
        let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|_| {
            failed(
                "the answer is not a token response (JSON with access_token and token_type)".into(),
                true,
            )
        })?;
        if !parsed.token_type.eq_ignore_ascii_case("bearer") {
            return Err(failed(
                format!(
                    "token_type {:?} is not supported (only Bearer)",
                    parsed.token_type.chars().take(32).collect::<String>()
                ),
                false,
            ));
        }
        let mut header = HeaderValue::try_from(format!("Bearer {}", parsed.access_token))
            .map_err(|_| failed("the access token does not fit an HTTP header".into(), false))?;
        header.set_sensitive(true);
        let lifetime = match parsed.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_f64(),
            Some(serde_json::Value::String(s)) => s.trim().parse::<f64>().ok(),
            _ => None,
        }
        .filter(|s| !s.is_nan());
        // A lifetime of zero or less (or -inf) is a token good for this use
        // only: it is renewed before each later use. Absent: kept until a 401.
        let renew_at = lifetime.map(|s| {
            let l = Duration::try_from_secs_f64(s.min(1e9)).unwrap_or(Duration::ZERO);
            Instant::now() + l - TOKEN_REFRESH_MARGIN.min(l / 2)
        });
        Ok(Token { header, renew_at })
    }
}

/// The OAuth2 layer: each attempt gets the endpoint's token (a failure to
/// get one is a retryable attempt when the token endpoint may recover:
/// unreachable, 5xx, 429, 408); a 401 fetches a new token and sends once
/// more. It owns the endpoint's [`TokenSource`].
#[derive(Clone)]
pub(crate) struct OAuth<S> {
    pub(crate) inner: S,
    pub(crate) source: Arc<TokenSource>,
}

impl<S> tower::Service<Request> for OAuth<S>
where
    S: tower::Service<Request, Response = Attempt> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Attempt;
    type Error = S::Error;
    type Future = futures_util::future::BoxFuture<'static, Result<Attempt, S::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        use tower::ServiceExt;
        // The ready one goes with this call; a clone stays here.
        let mut inner = self.inner.clone();
        std::mem::swap(&mut inner, &mut self.inner);
        let source = self.source.clone();
        Box::pin(async move {
            let token = match source.token(None).await {
                Ok(t) => t,
                Err(e) => return Ok(token_failure(e)),
            };
            req.bearer = Some(token.clone());
            let r = inner.call(req.clone()).await?;
            if r.status != Some(401) {
                return Ok(r);
            }
            tracing::debug!(
                "hookbus: the receiver refused the OAuth2 token (401); fetching a new one"
            );
            match source.token(Some(&token)).await {
                Ok(fresh) => {
                    req.bearer = Some(fresh);
                    inner.ready().await?.call(req).await
                }
                Err(e) => Ok(token_failure(e)),
            }
        })
    }
}

fn token_failure(e: TokenError) -> Attempt {
    let verdict = if e.retryable {
        Verdict::Retry { after: None }
    } else {
        Verdict::Final
    };
    Attempt::failed(
        verdict,
        Duration::ZERO,
        format!("OAuth2 token endpoint: {}", e.message),
    )
}
