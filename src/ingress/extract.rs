//! The axum extractors: verify the raw body, then (optionally) deserialise it.

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, Request};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use crate::verify::{Verified, Verifier, VerifyError};

/// Why a request was refused before it reached a handler. As a response it is
/// the status code plus a JSON body `{"error": "<what is wrong>"}`; the text
/// never contains a secret or the expected signature.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The body is longer than the configured limit: 413.
    #[error("the request body is larger than the limit{}", limit.map(|l| format!(" of {l} bytes")).unwrap_or_default())]
    TooLarge {
        /// The limit in bytes, when the ingress set it (an extractor under
        /// axum's `DefaultBodyLimit` does not know it).
        limit: Option<usize>,
    },
    /// The body could not be read: 400.
    #[error("the request body could not be read")]
    BodyUnreadable,
    /// The signature did not verify: 401 (a replay: 409; a copy of a
    /// request still being processed: 503).
    #[error("{0}")]
    Signature(#[from] VerifyError),
    /// The body (or a header describing it) is not what the route accepts: 400.
    #[error("{0}")]
    Malformed(String),
    /// The data of a catalog event breaks its JSON Schema (with
    /// [`Ingress::validate_catalog`](super::Ingress::validate_catalog)): 400,
    /// the body naming the path of the first error.
    #[cfg(feature = "schema")]
    #[cfg_attr(docsrs, doc(cfg(feature = "schema")))]
    #[error("{0}")]
    Schema(crate::catalog::SchemaViolation),
}

impl Rejection {
    /// The status code this rejection answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::BodyUnreadable | Rejection::Malformed(_) => StatusCode::BAD_REQUEST,
            #[cfg(feature = "schema")]
            Rejection::Schema(_) => StatusCode::BAD_REQUEST,
            Rejection::Signature(VerifyError::Replay) => StatusCode::CONFLICT,
            Rejection::Signature(VerifyError::InFlight) => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::Signature(_) => StatusCode::UNAUTHORIZED,
        }
    }
}

pub(crate) fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        #[cfg(feature = "schema")]
        if let Rejection::Schema(v) = &self {
            return json_response(
                self.status(),
                serde_json::json!({
                    "error": self.to_string(),
                    "event_type": v.event_type,
                    "path": v.path,
                }),
            );
        }
        json_response(
            self.status(),
            serde_json::json!({ "error": self.to_string() }),
        )
    }
}

/// Reads the body within the limit in force (axum's `DefaultBodyLimit`,
/// 2 MB unless a layer or the ingress sets another).
pub(crate) async fn read_body(req: Request, limit: Option<usize>) -> Result<Bytes, Rejection> {
    match Bytes::from_request(req, &()).await {
        Ok(b) => Ok(b),
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(Rejection::TooLarge { limit }),
        Err(_) => Err(Rejection::BodyUnreadable),
    }
}

/// An extractor for a request whose signature verified: the raw body bytes,
/// the headers and what the verification established.
///
/// The [`Verifier`] comes from the router's state (`Verifier: FromRef<S>`).
/// Refusals are a [`Rejection`]: 401 for a bad signature, 409 for a replay,
/// 413 past the body limit.
///
/// With a [`ReplayGuard`](crate::verify::ReplayGuard) on the verifier, the
/// request is remembered as soon as it verifies ([`Verifier::verify`]): if
/// your handler can fail after that and wants the sender's retry to go
/// through, verify in the handler with [`Verifier::verify_pending`] instead
/// and accept only on success (the [`Ingress`](super::Ingress) does).
///
/// ```
/// use axum::{Router, routing::post};
/// use hookbus::ingress::SignedBody;
/// use hookbus::verify::Verifier;
///
/// async fn hook(signed: SignedBody) -> &'static str {
///     println!("{} verified bytes", signed.body.len());
///     "ok"
/// }
///
/// let app: Router = Router::new()
///     .route("/hook", post(hook))
///     .with_state(Verifier::github("It's a Secret to Everybody"));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SignedBody {
    /// The request headers.
    pub headers: HeaderMap,
    /// The raw body, exactly as received and verified.
    pub body: Bytes,
    /// What the verification established (timestamp, message id, secret).
    pub verified: Verified,
}

impl SignedBody {
    /// Reads the body (within `limit`, if the caller set one on the request)
    /// and verifies it.
    pub(crate) async fn verify_request(
        req: Request,
        verifier: &Verifier,
        limit: Option<usize>,
    ) -> Result<SignedBody, Rejection> {
        let headers = req.headers().clone();
        let body = read_body(req, limit).await?;
        let verified = verifier.verify(&headers, &body)?;
        Ok(SignedBody {
            headers,
            body,
            verified,
        })
    }
}

impl<S> FromRequest<S> for SignedBody
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Rejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        SignedBody::verify_request(req, &Verifier::from_ref(state), None).await
    }
}

/// An extractor that verifies the raw body, then deserialises it from JSON:
/// the body is never parsed before its signature is checked, and the
/// signature is checked over the bytes received, not a re-serialisation.
///
/// Refusals: 401 for a bad signature, 413 past the body limit, 400 for a body
/// that is not the expected JSON.
///
/// ```
/// use axum::{Router, routing::post};
/// use hookbus::ingress::Signed;
/// use hookbus::verify::Verifier;
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// struct Envelope { r#type: String, data: serde_json::Value }
///
/// async fn rubric(Signed(event): Signed<Envelope>) -> &'static str {
///     println!("{}: {}", event.r#type, event.data);
///     "ok"
/// }
///
/// let verifier = Verifier::timestamped("Rubric", "whsec_your_signing_secret")?;
/// let app: Router = Router::new().route("/webhooks/rubric", post(rubric)).with_state(verifier);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Signed<T>(pub T);

impl<S, T> FromRequest<S> for Signed<T>
where
    Verifier: FromRef<S>,
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Rejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let signed = SignedBody::from_request(req, state).await?;
        serde_json::from_slice(&signed.body)
            .map(Signed)
            .map_err(|e| Rejection::Malformed(format!("the body is not the expected JSON: {e}")))
    }
}
