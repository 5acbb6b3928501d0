//! The dashboard's routes: the embedded page and the JSON API.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::Shared;
use super::auth::require_token;
use super::history::Windows;
use crate::event::Event;
use crate::webhook::{DeliveryAttempt, WebhookError, WebhookId};

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// The page may load its own script and style and talk to its own origin,
/// nothing else; it may not be framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

pub(super) fn routes(shared: Arc<Shared>) -> Router {
    let api = Router::new()
        .route("/overview", get(overview))
        .route("/subscribers", get(subscribers))
        .route("/webhooks", get(webhooks))
        .route("/webhooks/{id}/attempts", get(webhook_attempts))
        .route("/webhooks/{id}/dead-letters", get(dead_letters))
        .route("/webhooks/{id}/retry", post(retry))
        .route("/webhooks/{id}/enable", post(enable))
        .route("/webhooks/{id}/disable", post(disable))
        .route("/webhooks/{id}/test", post(test_webhook))
        .route("/attempts", get(attempts))
        .route("/events", post(emit))
        .route("/stream", get(super::stream::stream))
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            require_token,
        ))
        .layer(axum::middleware::map_response(no_store));
    Router::new()
        .route("/", get(|| asset("text/html; charset=utf-8", INDEX_HTML)))
        .route(
            "/app.js",
            get(|| asset("text/javascript; charset=utf-8", APP_JS)),
        )
        .route(
            "/style.css",
            get(|| asset("text/css; charset=utf-8", STYLE_CSS)),
        )
        .nest("/api", api)
        .with_state(shared)
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

async fn no_store(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut().insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// A JSON error with its status.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> ApiError {
        let status = match e {
            WebhookError::NotFound(_) => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError(status, e.to_string())
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

#[derive(Debug, Deserialize)]
pub(super) struct PageQuery {
    page: Option<usize>,
    per_page: Option<usize>,
    q: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct LimitQuery {
    limit: Option<usize>,
}

/// A page of `items` (1-based page numbers; past the end is empty).
fn page_of<T>(shared: &Shared, q: &PageQuery, items: Vec<T>) -> (Vec<T>, Value) {
    let per_page = q
        .per_page
        .unwrap_or(shared.page_size)
        .clamp(1, shared.page_size);
    let page = q.page.unwrap_or(1).max(1);
    let total = items.len();
    let pages = total.div_ceil(per_page).max(1);
    let slice = items
        .into_iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .collect();
    (
        slice,
        json!({"page": page, "per_page": per_page, "total": total, "pages": pages}),
    )
}

fn limit(shared: &Shared, q: &LimitQuery) -> usize {
    q.limit
        .unwrap_or(shared.page_size)
        .clamp(1, shared.page_size)
}

pub(super) async fn overview_json(shared: &Shared) -> Value {
    let stats = shared.bus.stats();
    let (totals, series, samples) = {
        let h = shared.history();
        (h.total_windows(), h.series(), h.samples())
    };
    let webhooks = shared.manager.list();
    let enabled = webhooks.iter().filter(|w| w.enabled).count();
    json!({
        "emitted": stats.emitted,
        "unmatched": stats.unmatched,
        "rejected": stats.rejected_full,
        "subscribers": stats.subscribers.len(),
        "webhooks": webhooks.len(),
        "webhooks_enabled": enabled,
        "streams": shared.streams.load(std::sync::atomic::Ordering::Relaxed),
        "windows": totals,
        "series": series,
        "samples": samples,
    })
}

async fn overview(State(shared): State<Arc<Shared>>) -> ApiResult {
    Ok(Json(overview_json(&shared).await))
}

async fn subscribers(State(shared): State<Arc<Shared>>, Query(q): Query<PageQuery>) -> ApiResult {
    let mut all = shared.bus.stats().subscribers;
    if let Some(filter) = q.q.as_deref().filter(|f| !f.is_empty()) {
        all.retain(|s| s.name.contains(filter) || s.pattern.contains(filter));
    }
    let (items, page) = page_of(&shared, &q, all);
    Ok(Json(json!({"page": page, "items": items})))
}

fn state_of(enabled: bool, consecutive_failures: u64) -> &'static str {
    match (enabled, consecutive_failures) {
        (false, _) => "disabled",
        (true, 0) => "enabled",
        (true, _) => "failing",
    }
}

fn millis(d: Option<std::time::Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64() * 1000.0)
}

async fn webhooks(State(shared): State<Arc<Shared>>, Query(q): Query<PageQuery>) -> ApiResult {
    let mut all = shared.manager.list();
    if let Some(filter) = q.q.as_deref().filter(|f| !f.is_empty()) {
        all.retain(|w| {
            w.name.contains(filter) || w.url.contains(filter) || w.id.as_str() == filter
        });
    }
    let (infos, page) = page_of(&shared, &q, all);
    let windows: Vec<Windows> = {
        let h = shared.history();
        infos.iter().map(|w| h.windows(&w.id)).collect()
    };
    let items: Vec<Value> = infos
        .into_iter()
        .zip(windows)
        .filter_map(|(info, windows)| {
            // Deleted since `list`: skipped.
            let s = shared.manager.stats(&info.id).ok()?;
            let dead = shared.manager.stats(&info.id).ok()?.dead_letters as usize;
            Some(json!({
                "id": info.id,
                "name": info.name,
                "url": info.url,
                "events": info.events,
                "enabled": info.enabled,
                "state": state_of(s.enabled, s.consecutive_failures),
                "delivered": s.delivered,
                "failed": s.failed,
                "retried": s.retried,
                "dropped": s.dropped,
                "attempts": s.attempts,
                "consecutive_failures": s.consecutive_failures,
                "failing_since": s.failing_since.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
                "p50_ms": millis(s.p50_latency),
                "p99_ms": millis(s.p99_latency),
                "dead_letters": dead,
                "windows": windows,
            }))
        })
        .collect();
    Ok(Json(json!({"page": page, "items": items})))
}

fn attempt_json(webhook: &WebhookId, name: &str, a: &DeliveryAttempt) -> Value {
    json!({
        "webhook": webhook,
        "webhook_name": name,
        "time": a.time.unix_timestamp_nanos() / 1_000_000,
        "event_id": a.event_id,
        "event_type": a.event_type,
        "events": a.events,
        "attempt": a.attempt,
        "success": a.success,
        "last": a.last,
        "status_code": a.status_code,
        "latency_ms": a.latency.as_secs_f64() * 1000.0,
        "error": a.error,
        "response_excerpt": a.response_excerpt,
    })
}

async fn webhook_attempts(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<LimitQuery>,
) -> ApiResult {
    let id = WebhookId::from(id.as_str());
    let info = shared.manager.get(&id)?;
    let list = shared.manager.deliveries(&id, limit(&shared, &q))?;
    let items: Vec<Value> = list
        .iter()
        .map(|a| attempt_json(&id, &info.name, a))
        .collect();
    Ok(Json(json!({"items": items})))
}

/// The newest attempts of all endpoints together. Each endpoint's log is
/// newest first, so at most `limit` of each are needed.
async fn attempts(State(shared): State<Arc<Shared>>, Query(q): Query<LimitQuery>) -> ApiResult {
    let n = limit(&shared, &q);
    let mut all: Vec<(OffsetDateTime, Value)> = Vec::new();
    for info in shared.manager.list() {
        let Ok(list) = shared.manager.deliveries(&info.id, n) else {
            continue;
        };
        all.extend(
            list.iter()
                .map(|a| (a.time, attempt_json(&info.id, &info.name, a))),
        );
    }
    all.sort_by_key(|(time, _)| std::cmp::Reverse(*time));
    all.truncate(n);
    let items: Vec<Value> = all.into_iter().map(|(_, v)| v).collect();
    Ok(Json(json!({"items": items})))
}

async fn dead_letters(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<LimitQuery>,
) -> ApiResult {
    let id = WebhookId::from(id.as_str());
    let letters = shared.manager.sink_of(&id)?.dead_letters();
    let total = letters.len();
    let items: Vec<Value> = letters
        .iter()
        .rev()
        .take(limit(&shared, &q))
        .map(|l| {
            json!({
                "time": l.time.unix_timestamp_nanos() / 1_000_000,
                "events": l.events.iter().map(|e| json!({"id": e.id(), "type": e.event_type()})).collect::<Vec<_>>(),
                "error": l.error,
            })
        })
        .collect();
    Ok(Json(json!({"total": total, "items": items})))
}

async fn retry(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    let id = WebhookId::from(id.as_str());
    let report = shared
        .manager
        .retry_failed(&id, OffsetDateTime::UNIX_EPOCH)
        .await?;
    Ok(Json(json!(report)))
}

async fn enable(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    let id = WebhookId::from(id.as_str());
    shared.manager.enable(&id)?;
    Ok(Json(json!({"id": id, "enabled": true})))
}

async fn disable(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    let id = WebhookId::from(id.as_str());
    shared.manager.disable(&id)?;
    Ok(Json(json!({"id": id, "enabled": false})))
}

/// A test event from a request body: `{"type": .., "data": ..}`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct TestEvent {
    #[serde(rename = "type")]
    event_type: Option<String>,
    data: Option<Value>,
}

impl TestEvent {
    fn into_event(self, default_type: &'static str) -> Result<Event, ApiError> {
        let ty = self.event_type.unwrap_or_else(|| default_type.to_owned());
        let data = self.data.unwrap_or_else(|| json!({"test": true}));
        Event::new(ty, data).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))
    }
}

fn body(bytes: &axum::body::Bytes) -> Result<TestEvent, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(TestEvent::default());
    }
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("the body must be {{\"type\": .., \"data\": ..}}: {e}"),
        )
    })
}

async fn test_webhook(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult {
    let id = WebhookId::from(id.as_str());
    let event = body(&bytes)?.into_event("hookbus.test")?;
    let result = shared.manager.test(&id, event).await?;
    Ok(Json(json!({
        "success": result.success,
        "status_code": result.status_code,
        "response_excerpt": result.response_excerpt,
        "latency_ms": result.latency.as_secs_f64() * 1000.0,
        "error": result.error,
    })))
}

async fn emit(State(shared): State<Arc<Shared>>, bytes: axum::body::Bytes) -> ApiResult {
    let event = body(&bytes)?.into_event("hookbus.test")?;
    // The bus's own announcements (`hookbus.endpoint_disabled`, ...) are
    // not to be forged from the page.
    if event.event_type().starts_with("hookbus.") && event.event_type() != "hookbus.test" {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!(
                "{} is reserved for the bus's own announcements (hookbus.test is allowed)",
                event.event_type()
            ),
        ));
    }
    let id = event.id().to_owned();
    shared
        .bus
        .emit(event)
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    Ok(Json(json!({"id": id})))
}
