//! The dashboard's Server-Sent Events: `tick` (the overview after each
//! sample) and `event` (each bus event matching the connection's pattern).
//!
//! Bounded by construction: the stream produces the next message only when
//! axum asks for it, that is when the browser has taken the previous one
//! (TCP back-pressure), so nothing queues on the server but
//! - the newest overview (a watch channel: ticks a slow browser missed are
//!   coalesced into the newest; the sampler computes it once for all
//!   connections), and
//! - the live events, read from a [`Tap`] on the bus's broadcast ring
//!   (one ring for every tap: a connection costs an emit nothing of its
//!   own); a connection a whole ring behind skips the oldest, and each
//!   `tick` carries its count of skipped events.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Shared;
use crate::Tap;
use crate::event::Event;

/// Bytes of an event's data shown in the live stream.
const DATA_EXCERPT: usize = 1024;

#[derive(Debug, Deserialize)]
pub(super) struct StreamQuery {
    pattern: Option<String>,
}

/// One open stream, counted in [`Shared::streams`] while it lives.
struct Connection {
    shared: Arc<Shared>,
    ticks: tokio::sync::watch::Receiver<Option<Arc<str>>>,
    closing: tokio::sync::watch::Receiver<bool>,
    events: Option<Tap>,
    pattern: String,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shared.streams.fetch_sub(1, Ordering::AcqRel);
    }
}

pub(super) async fn stream(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<StreamQuery>,
) -> axum::response::Response {
    let pattern = q
        .pattern
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "*".to_owned());
    let open = shared.streams.fetch_add(1, Ordering::AcqRel);
    // Counted from here: the connection's drop gives the place back.
    let (ticks, closing) = (shared.ticks.subscribe(), shared.closing.subscribe());
    let mut connection = Connection {
        shared,
        ticks,
        closing,
        events: None,
        pattern,
    };
    if open >= connection.shared.max_streams {
        let limit = connection.shared.max_streams;
        return (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(json!({"error": format!("{limit} event streams are open already (the dashboard's max_streams)")})),
        )
            .into_response();
    }
    match connection.shared.bus.tap(connection.pattern.as_str()) {
        Ok(tap) => connection.events = Some(tap),
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": e.to_string()})),
            )
                .into_response();
        }
    }
    // The first message is the overview now.
    connection.ticks.mark_changed();
    let messages = futures_util::stream::unfold(connection, |mut c| async move {
        let message = c.next_message().await?;
        Some((Ok::<_, Infallible>(message), c))
    });
    Sse::new(messages)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

impl Connection {
    /// The next message, or `None` when the stream should end (the server
    /// is closing or the bus shut down).
    async fn next_message(&mut self) -> Option<SseEvent> {
        if *self.closing.borrow() {
            return None;
        }
        tokio::select! {
            biased;
            _ = self.closing.changed() => None,
            changed = self.ticks.changed() => {
                changed.ok()?;
                let sampled = self.ticks.borrow_and_update().clone();
                let overview = match sampled {
                    Some(text) => text,
                    // Before the first sample: compute one for this page.
                    None => super::api::overview_json(&self.shared).await.to_string().into(),
                };
                let dropped = self.events.as_ref().map_or(0, Tap::lagged);
                let stream = json!({"pattern": self.pattern, "dropped": dropped});
                Some(SseEvent::default().event("tick").data(with_field(&overview, "stream", &stream)))
            }
            // `None`: the bus shut down.
            event = next_event(&mut self.events) => event.map(|e| {
                SseEvent::default().event("event").data(event_json(&e).to_string())
            }),
        }
    }
}

/// `object` (the JSON text of an object) with one more field, without
/// parsing it again.
fn with_field(object: &str, name: &str, value: &Value) -> String {
    let body = object.trim_end().strip_suffix('}').unwrap_or(object);
    let sep = if body.trim_end().ends_with('{') {
        ""
    } else {
        ","
    };
    format!("{body}{sep}{}:{value}}}", Value::from(name))
}

async fn next_event(events: &mut Option<Tap>) -> Option<Arc<Event>> {
    match events {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

fn event_json(e: &Event) -> Value {
    let data = e.data().to_string();
    let excerpt = if data.len() > DATA_EXCERPT {
        let mut end = DATA_EXCERPT;
        while !data.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &data[..end])
    } else {
        data
    };
    json!({
        "id": e.id(),
        "type": e.event_type(),
        "source": e.source(),
        "time": e.time_rfc3339(),
        "data": excerpt,
    })
}
