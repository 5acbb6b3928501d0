//! One HTTP attempt: sign, send, read the answer, and say what it means
//! for the delivery ([`Verdict`]). No retrying here; that is
//! [`delivery`](super::delivery)'s to decide.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderValue, RETRY_AFTER};
use time::OffsetDateTime;

use super::endpoint::Endpoint;
use super::retry::{StatusClass, classify, parse_retry_after};
use super::wire::Payload;
use crate::signature::SignRequest;

/// The start of a response body kept in the log.
pub const RESPONSE_EXCERPT_LEN: usize = 512;

/// What an attempt's outcome means for the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// 2xx: done.
    Delivered,
    /// Worth another attempt (408, 429, 5xx, a timeout or a failed
    /// connection), at the earliest after `after` when the receiver said so
    /// (`Retry-After`).
    Retry { after: Option<Duration> },
    /// No attempt can fix it (another 4xx, a redirect, a refused address, a
    /// request that cannot be signed).
    Final,
    /// 410 Gone: stop, and disable the endpoint.
    Gone,
}

/// One attempt, as the log records it.
#[derive(Debug, Clone)]
pub(crate) struct Attempt {
    pub(crate) verdict: Verdict,
    pub(crate) status: Option<u16>,
    pub(crate) latency: Duration,
    /// What went wrong, safe to log (no URL, no secret).
    pub(crate) error: Option<String>,
    pub(crate) excerpt: Option<String>,
}

impl Attempt {
    /// A failure before anything was sent.
    pub(crate) fn refused(error: String) -> Attempt {
        Attempt {
            verdict: Verdict::Final,
            status: None,
            latency: Duration::ZERO,
            error: Some(error),
            excerpt: None,
        }
    }
}

fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Describes a reqwest error without its URL (which may hold a secret path).
fn describe_error(e: &reqwest::Error, timeout: Duration) -> (String, bool) {
    let mut chain = Vec::new();
    let mut src = std::error::Error::source(e);
    let mut guard_refused = false;
    while let Some(s) = src {
        let text = s.to_string();
        if text.starts_with("SSRF guard") {
            guard_refused = true;
        }
        if !chain.contains(&text) {
            chain.push(text);
        }
        src = s.source();
    }
    let detail = chain.join(": ");
    if guard_refused {
        return (detail, false);
    }
    if e.is_timeout() {
        (format!("timed out after {timeout:?}"), true)
    } else if e.is_connect() {
        (format!("connection failed: {detail}"), true)
    } else {
        (format!("request failed: {detail}"), true)
    }
}

async fn read_excerpt(resp: &mut reqwest::Response) -> Option<String> {
    let mut buf = Vec::new();
    while buf.len() < RESPONSE_EXCERPT_LEN {
        match resp.chunk().await {
            Ok(Some(c)) => buf.extend_from_slice(&c),
            _ => break,
        }
    }
    if buf.is_empty() {
        return None;
    }
    buf.truncate(RESPONSE_EXCERPT_LEN);
    Some(String::from_utf8_lossy(&buf).into_owned())
}

impl Endpoint {
    /// Signs and sends `payload` once, with `bearer` as its
    /// `Authorization` (an OAuth2 token, see [`attempt`](Self::attempt)).
    pub(crate) async fn send_attempt(
        &self,
        payload: &Payload,
        bearer: Option<&HeaderValue>,
    ) -> Attempt {
        if let Some(guard) = &self.proxied_guard
            && let Err(e) = super::proxy::check_target(guard, &self.url).await
        {
            return Attempt::refused(e);
        }
        let mut headers = payload.headers.clone();
        // A fresh timestamp on every attempt, so receivers' tolerance windows
        // hold across retries.
        let sign = SignRequest {
            id: &payload.message_id,
            timestamp: unix_now(),
            body: &payload.body,
        };
        let signed = self
            .scheme
            .sign(&self.secrets, &sign)
            .map_err(|e| e.to_string());
        let signed = signed.and_then(|sigs| {
            for ((_, v), name) in sigs.into_iter().zip(&self.signature_headers) {
                // A value HTTP cannot carry (an event id with a control
                // character in `webhook-id`): fail, never send the request
                // without its signature headers.
                let mut v = HeaderValue::try_from(v).map_err(|_| {
                    format!("the {name} header value holds characters HTTP headers cannot carry")
                })?;
                v.set_sensitive(true);
                headers.insert(name.clone(), v);
            }
            Ok(())
        });
        if let Err(e) = signed {
            return Attempt::refused(format!("signing failed: {e}"));
        }
        // Extra headers replace the defaults of the same name; a name given
        // several times is sent with all its values.
        for name in self.headers.keys() {
            headers.remove(name);
            for v in self.headers.get_all(name) {
                headers.append(name.clone(), v.clone());
            }
        }
        if let Some(bearer) = bearer {
            headers.insert(reqwest::header::AUTHORIZATION, bearer.clone());
        }
        let started = Instant::now();
        let sent = self
            .client
            .post(self.url.clone())
            .headers(headers)
            .timeout(self.timeout)
            .body(payload.body.clone())
            .send()
            .await;
        match sent {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after);
                let excerpt = read_excerpt(&mut resp).await;
                let latency = started.elapsed();
                let (verdict, error) = match classify(status) {
                    StatusClass::Success => (Verdict::Delivered, None),
                    StatusClass::Gone => (
                        Verdict::Gone,
                        Some("410 Gone: the endpoint asks to stop".to_owned()),
                    ),
                    StatusClass::Retryable => (
                        Verdict::Retry { after: retry_after },
                        Some(format!("HTTP {status}")),
                    ),
                    StatusClass::Final if (300..400).contains(&status) => (
                        Verdict::Final,
                        Some(format!("HTTP {status}: redirects are not followed")),
                    ),
                    StatusClass::Final => (Verdict::Final, Some(format!("HTTP {status}"))),
                };
                Attempt {
                    verdict,
                    status: Some(status),
                    latency,
                    error,
                    excerpt,
                }
            }
            Err(e) => {
                let (error, retryable) = describe_error(&e, self.timeout);
                Attempt {
                    verdict: if retryable {
                        Verdict::Retry { after: None }
                    } else {
                        Verdict::Final
                    },
                    status: None,
                    latency: started.elapsed(),
                    error: Some(error),
                    excerpt: None,
                }
            }
        }
    }
}
