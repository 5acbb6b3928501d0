//! The dashboard's token check: `Authorization: Bearer <token>`, or
//! `?token=` on the stream, compared in constant time.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::Shared;

/// The expected token, kept as its SHA-256 digest: comparing digests takes
/// the same time whatever the candidate's length or content.
pub(super) struct Token([u8; 32]);

impl Token {
    pub(super) fn new(token: &str) -> Token {
        Token(Sha256::digest(token.as_bytes()).into())
    }

    /// Whether `candidate` is the token, in time independent of where they
    /// differ.
    pub(super) fn matches(&self, candidate: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(candidate.as_bytes()).into();
        let diff = self
            .0
            .iter()
            .zip(digest.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

/// The token a request carries: the bearer header, or for the stream
/// (`EventSource` cannot set headers) the `token` query parameter.
fn presented(request: &Request) -> Option<String> {
    if let Some(value) = request.headers().get(header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        return value.strip_prefix("Bearer ").map(str::to_owned);
    }
    // Inside the nested `/api` router the path is `/stream`.
    if request.uri().path().ends_with("/stream") {
        let query = request.uri().query()?;
        return form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned());
    }
    None
}

pub(super) async fn require_token(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    match presented(&request) {
        Some(t) if shared.token.matches(&t) => next.run(request).await,
        _ => {
            let mut response = (
                StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({"error": "a valid dashboard token is required"})),
            )
                .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"hookbus dashboard\""),
            );
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Token;

    #[test]
    fn only_the_token_matches() {
        let t = Token::new("0123456789abcdef");
        assert!(t.matches("0123456789abcdef"));
        assert!(!t.matches("0123456789abcdeF"));
        assert!(!t.matches("0123456789abcde"));
        assert!(!t.matches(""));
    }
}
