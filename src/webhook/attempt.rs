//! One HTTP attempt: sign, send, read the answer, and say what it means
//! for the delivery ([`Verdict`]). No retrying here; that is
//! [`delivery`](super::delivery)'s to decide.

use std::time::Duration;

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

pub(crate) fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Describes a reqwest error without its URL (which may hold a secret path).
pub(crate) fn describe_error(e: &reqwest::Error, timeout: Duration) -> (String, bool) {
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

pub(crate) async fn read_excerpt(resp: &mut reqwest::Response) -> Option<String> {
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
