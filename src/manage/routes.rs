//! The HTTP side: paths, the caller's tenant, bodies and their limits.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::problem::Problem;
use super::service::Inner;

type Shared = Arc<Inner>;

/// The caller's tenant, from the application's `identify` closure.
struct Caller(String);

impl FromRequestParts<Shared> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Caller, Problem> {
        match (state.identify)(parts) {
            Some(t) if !t.is_empty() => {
                if let Some(rate) = &state.limits.rate {
                    rate.check(&t).map_err(Problem::too_many_requests)?;
                }
                Ok(Caller(t))
            }
            _ => Err(Problem::unauthorized()),
        }
    }
}

/// The webhook id of the path; a path that does not decode names no webhook.
fn id(path: Result<Path<String>, PathRejection>) -> Result<String, Problem> {
    path.map(|Path(id)| id)
        .map_err(|_| Problem::not_found("the webhook"))
}

/// The body, or 413 past the limit.
fn body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, Problem> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "Body too large",
                "the request body is larger than this server accepts",
            )
        } else {
            Problem::bad_json(format!("the body could not be read: {}", e.body_text()))
        }
    })
}

fn answer(status: StatusCode, r: Result<serde_json::Value, Problem>) -> Response {
    match r {
        Ok(v) => (status, axum::Json(v)).into_response(),
        Err(p) => p.into_response(),
    }
}

async fn create(
    State(s): State<Shared>,
    Caller(t): Caller,
    b: Result<Bytes, BytesRejection>,
) -> Response {
    answer(StatusCode::CREATED, body(b).and_then(|b| s.create(&t, &b)))
}

async fn list(State(s): State<Shared>, Caller(t): Caller) -> Response {
    answer(StatusCode::OK, Ok(s.list(&t)))
}

async fn get_one(
    State(s): State<Shared>,
    Caller(t): Caller,
    p: Result<Path<String>, PathRejection>,
) -> Response {
    answer(StatusCode::OK, id(p).and_then(|id| s.get(&t, &id)))
}

async fn patch(
    State(s): State<Shared>,
    Caller(t): Caller,
    p: Result<Path<String>, PathRejection>,
    b: Result<Bytes, BytesRejection>,
) -> Response {
    let r = async {
        let id = id(p)?;
        s.get(&t, &id)?;
        s.update(&t, &id, &body(b)?).await
    };
    answer(StatusCode::OK, r.await)
}

async fn delete(
    State(s): State<Shared>,
    Caller(t): Caller,
    p: Result<Path<String>, PathRejection>,
) -> Response {
    let r = async { s.delete(&t, &id(p)?).await };
    match r.await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(p) => p.into_response(),
    }
}

async fn disable(
    State(s): State<Shared>,
    Caller(t): Caller,
    p: Result<Path<String>, PathRejection>,
) -> Response {
    let r = async { s.set_enabled(&t, &id(p)?, false).await };
    answer(StatusCode::OK, r.await)
}

async fn enable(
    State(s): State<Shared>,
    Caller(t): Caller,
    p: Result<Path<String>, PathRejection>,
) -> Response {
    let r = async { s.set_enabled(&t, &id(p)?, true).await };
    answer(StatusCode::OK, r.await)
}

async fn test(
    State(s): State<Shared>,
    Caller(t): Caller,
    p: Result<Path<String>, PathRejection>,
    b: Result<Bytes, BytesRejection>,
) -> Response {
    let r = async {
        let id = id(p)?;
        s.get(&t, &id)?;
        s.test(&t, &id, &body(b)?).await
    };
    answer(StatusCode::OK, r.await)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    limit: Option<usize>,
    cursor: Option<String>,
}

/// Most deliveries per page.
const MAX_PAGE: usize = 1000;

async fn deliveries(
    State(s): State<Shared>,
    Caller(t): Caller,
    p: Result<Path<String>, PathRejection>,
    q: Result<Query<Page>, QueryRejection>,
) -> Response {
    let r = id(p).and_then(|id| {
        s.get(&t, &id)?;
        let Query(page) =
            q.map_err(|e| Problem::invalid("limit", format!("bad query: {}", e.body_text())))?;
        let limit = page.limit.unwrap_or(100);
        if limit == 0 || limit > MAX_PAGE {
            return Err(Problem::invalid(
                "limit",
                format!("limit must be 1 to {MAX_PAGE}"),
            ));
        }
        s.deliveries(&t, &id, limit, page.cursor.as_deref())
    });
    answer(StatusCode::OK, r)
}

async fn retry_failed(
    State(s): State<Shared>,
    Caller(t): Caller,
    p: Result<Path<String>, PathRejection>,
    b: Result<Bytes, BytesRejection>,
) -> Response {
    let r = id(p).and_then(|id| {
        s.get(&t, &id)?;
        s.retry_failed(&t, &id, &body(b)?)
    });
    answer(StatusCode::ACCEPTED, r)
}

async fn rotate_secret(
    State(s): State<Shared>,
    Caller(t): Caller,
    p: Result<Path<String>, PathRejection>,
    b: Result<Bytes, BytesRejection>,
) -> Response {
    let r = async {
        let id = id(p)?;
        s.get(&t, &id)?;
        s.rotate(&t, &id, &body(b)?).await
    };
    answer(StatusCode::OK, r.await)
}

async fn replay(
    State(s): State<Shared>,
    Caller(t): Caller,
    p: Result<Path<String>, PathRejection>,
    b: Result<Bytes, BytesRejection>,
) -> Response {
    let r = id(p).and_then(|id| {
        s.get(&t, &id)?;
        s.replay(&t, &id, &body(b)?)
    });
    answer(StatusCode::ACCEPTED, r)
}

async fn events(
    State(s): State<Shared>,
    Caller(t): Caller,
    b: Result<Bytes, BytesRejection>,
) -> Response {
    let r = async { s.emit(&t, &body(b)?).await };
    answer(StatusCode::ACCEPTED, r.await)
}

async fn openapi() -> Response {
    axum::Json(super::openapi::document()).into_response()
}

async fn not_found() -> Problem {
    Problem::not_found("this path")
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        "this path does not take this method",
    )
}

pub(super) fn router(inner: Shared) -> Router {
    let limit = inner.limits.max_body;
    Router::new()
        .route("/v1/webhooks", post(create).get(list))
        .route(
            "/v1/webhooks/{id}",
            get(get_one).patch(patch).delete(delete),
        )
        .route("/v1/webhooks/{id}/disable", post(disable))
        .route("/v1/webhooks/{id}/enable", post(enable))
        .route("/v1/webhooks/{id}/test", post(test))
        .route("/v1/webhooks/{id}/deliveries", get(deliveries))
        .route("/v1/webhooks/{id}/retry_failed", post(retry_failed))
        .route("/v1/webhooks/{id}/replay", post(replay))
        .route("/v1/webhooks/{id}/rotate_secret", post(rotate_secret))
        .route("/v1/events", post(events))
        .route("/v1/openapi.json", get(openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(inner)
}
