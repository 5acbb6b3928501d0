//! What the test receiver answers: [`Reply`], checked into a [`Prepared`]
//! response before it is used.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::ReceiverError;

/// One answer of a [`TestReceiver`](super::TestReceiver): a status, headers,
/// a body, and optionally a delay before it and a body sent slowly.
///
/// The constructors cover what webhook senders must handle: [`ok`](Self::ok),
/// [`unavailable`](Self::unavailable) (503), [`server_error`](Self::server_error)
/// (500), [`too_many_requests`](Self::too_many_requests) (429 with
/// `Retry-After`), [`gone`](Self::gone) (410) and any [`status`](Self::status).
/// A reply is checked when the receiver takes it (a status outside
/// 100..=999, an invalid header, a slow body in chunks of 0 bytes are a
/// [`ReceiverError::Reply`]).
///
/// ```
/// use hookbus::testing::Reply;
/// use std::time::Duration;
///
/// let throttled = Reply::too_many_requests(Duration::from_secs(30));
/// let slow = Reply::ok().delay(Duration::from_secs(2)).slow_body(4, Duration::from_millis(500));
/// let custom = Reply::status(202).header("x-request-id", "r-1").body(r#"{"queued":true}"#);
/// # let _ = (throttled, slow, custom);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Bytes,
    delay: Duration,
    slow_body: Option<(usize, Duration)>,
}

/// The JSON body of a 2xx reply unless one is given.
const RECEIVED: &str = r#"{"status":"received"}"#;

impl Reply {
    /// 200 `{"status":"received"}` (what the receiver answers by default).
    pub fn ok() -> Reply {
        Reply::status(200)
    }

    /// Any status; the body is `{"status":"received"}` for 2xx and
    /// `{"error":"injected <status>"}` otherwise, as JSON.
    pub fn status(status: u16) -> Reply {
        let body = if (200..300).contains(&status) {
            Bytes::from_static(RECEIVED.as_bytes())
        } else {
            Bytes::from(format!(r#"{{"error":"injected {status}"}}"#))
        };
        Reply {
            status,
            headers: vec![(CONTENT_TYPE.as_str().to_owned(), "application/json".into())],
            body,
            delay: Duration::ZERO,
            slow_body: None,
        }
    }

    /// 503 Service Unavailable: senders retry.
    pub fn unavailable() -> Reply {
        Reply::status(503)
    }

    /// 500 Internal Server Error: senders retry.
    pub fn server_error() -> Reply {
        Reply::status(500)
    }

    /// 429 Too Many Requests with `Retry-After` in whole seconds (rounded
    /// up): senders wait that long before the next attempt.
    pub fn too_many_requests(retry_after: Duration) -> Reply {
        let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        Reply::status(429).header(RETRY_AFTER.as_str(), &secs.to_string())
    }

    /// 410 Gone: hookbus webhook subscribers disable the endpoint.
    pub fn gone() -> Reply {
        Reply::status(410)
    }

    /// Adds a header (replacing one of the same name the reply already has).
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The body, sent as given (set a `content-type` with
    /// [`header`](Self::header) if it is not JSON).
    pub fn body(mut self, body: impl Into<Bytes>) -> Reply {
        self.body = body.into();
        self
    }

    /// Waits this long before answering (added to the receiver's own
    /// [`delay`](super::TestReceiverBuilder::delay)). Under a paused clock
    /// this is virtual time.
    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }

    /// Sends the body slowly: `chunk` bytes at a time, waiting `every`
    /// before each chunk (the status and headers go out at once). Exercises
    /// a sender's timeout for reading the response.
    pub fn slow_body(mut self, chunk: usize, every: Duration) -> Reply {
        self.slow_body = Some((chunk, every));
        self
    }

    /// The status code.
    pub fn status_code(&self) -> u16 {
        self.status
    }

    /// Checks the reply, once, when the receiver takes it.
    pub(crate) fn prepare(&self) -> Result<Prepared, ReceiverError> {
        let status = StatusCode::from_u16(self.status).map_err(|_| {
            ReceiverError::Reply(format!("status {} is not 100..=999", self.status))
        })?;
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| ReceiverError::Reply(format!("{name:?} is not a header name")))?;
            let v = HeaderValue::from_str(value).map_err(|_| {
                ReceiverError::Reply(format!("the value of header {name} is not visible ASCII"))
            })?;
            headers.insert(n, v);
        }
        if let Some((0, _)) = self.slow_body {
            return Err(ReceiverError::Reply(
                "slow_body needs chunks of at least 1 byte".into(),
            ));
        }
        Ok(Prepared {
            status,
            headers,
            body: self.body.clone(),
            delay: self.delay,
            slow_body: self.slow_body,
        })
    }
}

impl Default for Reply {
    fn default() -> Reply {
        Reply::ok()
    }
}

/// A checked [`Reply`], ready to send.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub(crate) status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    pub(crate) delay: Duration,
    slow_body: Option<(usize, Duration)>,
}

impl Prepared {
    /// A JSON reply the receiver makes itself (never fails).
    pub(crate) fn json(status: StatusCode, body: serde_json::Value) -> Prepared {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Prepared {
            status,
            headers,
            body: Bytes::from(body.to_string()),
            delay: Duration::ZERO,
            slow_body: None,
        }
    }

    pub(crate) fn with_retry_after(mut self, secs: u64) -> Prepared {
        self.headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        self
    }

    pub(crate) fn into_response(self) -> Response {
        let body = match self.slow_body {
            None => Body::from(self.body),
            Some((chunk, every)) => {
                let chunks = futures_util::stream::unfold(self.body, move |mut rest| async move {
                    if rest.is_empty() {
                        return None;
                    }
                    tokio::time::sleep(every).await;
                    let head = rest.split_to(chunk.min(rest.len()));
                    Some((Ok::<_, Infallible>(head), rest))
                });
                Body::from_stream(chunks)
            }
        };
        let mut response = Response::new(body);
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers;
        response
    }
}
