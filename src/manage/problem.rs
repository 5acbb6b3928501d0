//! RFC 9457 problem details: every error of the management API is an
//! `application/problem+json` body naming the field at fault.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The media type of a problem details body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// What went wrong with a request, as RFC 9457 problem details: `type`,
/// `title`, `status`, `detail`, and `field` (the request field at fault,
/// when one is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{status} {title}: {detail}")]
pub struct Problem {
    /// A URI naming the kind of problem: `urn:hookbus:problem:<kind>`
    /// (`not-found`, `invalid-field`, `bad-json`, `too-large`,
    /// `unauthorized`, `endpoint-limit`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong with this request (never contains a secret).
    pub detail: String,
    /// The request field at fault (`url`, `events`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Seconds to wait before asking again (the `Retry-After` header of a 429).
    #[serde(skip)]
    retry_after: Option<u64>,
}

impl Problem {
    /// A problem of `status` with a short `kind` slug (e.g. `invalid-field`).
    pub fn new(status: StatusCode, kind: &str, title: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: format!("urn:hookbus:problem:{kind}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
            retry_after: None,
        }
    }

    /// Names the request field at fault.
    pub fn field(mut self, field: &str) -> Problem {
        self.field = Some(field.to_owned());
        self
    }

    /// 404: no such webhook for this caller (another tenant's webhook is
    /// not found either).
    pub fn not_found(what: &str) -> Problem {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not Found",
            format!("{what} was not found"),
        )
    }

    /// 422: a field's value is not acceptable.
    pub fn invalid(field: &str, detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-field",
            "Invalid field",
            detail,
        )
        .field(field)
    }

    /// 400: the body is not the JSON expected.
    pub fn bad_json(detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-json",
            "Malformed JSON body",
            detail,
        )
    }

    /// 401: the caller is not known.
    pub fn unauthorized() -> Problem {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            "a valid token is required (Authorization: Bearer TOKEN)",
        )
    }

    /// 429: the tenant made more requests than its rate limit allows; ask
    /// again after `retry_after` (sent as `Retry-After`, whole seconds,
    /// rounded up).
    pub fn too_many_requests(retry_after: std::time::Duration) -> Problem {
        let secs = retry_after
            .as_secs()
            .saturating_add(u64::from(retry_after.subsec_nanos() > 0))
            .max(1);
        let mut p = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too many requests",
            format!("this tenant's request rate is over its limit; retry in {secs} s"),
        );
        p.retry_after = Some(secs);
        p
    }

    /// The seconds of the `Retry-After` header, for a 429.
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    /// 500: something on the server's side failed (the store).
    pub fn internal(detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            detail,
        )
    }

    /// The status as an HTTP status code.
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
