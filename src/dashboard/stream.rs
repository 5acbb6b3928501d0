//! The dashboard's Server-Sent Events: `tick` (the overview after each
//! sample) and `event` (each bus event matching the connection's pattern).
//!
//! Bounded by construction: the stream produces the next message only when
//! axum asks for it, that is when the browser has taken the previous one
//! (TCP back-pressure), so nothing queues on the server but
//! - the newest tick number (a watch channel: ticks a slow browser missed
//!   are coalesced into the newest overview), and
//! - the live events, in a bus subscriber's mailbox of
//!   [`stream_buffer`](super::DashboardConfig::stream_buffer) events that
//!   drops the oldest when full; each `tick` carries the connection's drop
//!   count.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Shared;
use crate::event::Event;
use crate::subscriber::{EventStream, OverflowPolicy};

/// Bytes of an event's data shown in the live stream.
const DATA_EXCERPT: usize = 1024;

#[derive(Debug, Deserialize)]
pub(super) struct StreamQuery {
    pattern: Option<String>,
}

struct Connection {
    shared: Arc<Shared>,
    ticks: tokio::sync::watch::Receiver<u64>,
    closing: tokio::sync::watch::Receiver<bool>,
    events: Option<EventStream>,
    pattern: String,
}

pub(super) async fn stream(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<StreamQuery>,
) -> axum::response::Response {
    let pattern = q
        .pattern
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "*".to_owned());
    let events = match shared
        .bus
        .subscriber(pattern.as_str())
        .name(format!("dashboard stream ({pattern})"))
        .capacity(shared.stream_buffer)
        .overflow(OverflowPolicy::DropOldest)
        .stream()
    {
        Ok(s) => s,
        Err(e) => {
            return (
                axum::http::StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": e.to_string()})),
            )
                .into_response();
        }
    };
    let mut ticks = shared.ticks.subscribe();
    // The first message is the overview now.
    ticks.mark_changed();
    let closing = shared.closing.subscribe();
    let connection = Connection {
        shared,
        ticks,
        closing,
        events: Some(events),
        pattern,
    };
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
                self.ticks.borrow_and_update();
                let mut overview = super::api::overview_json(&self.shared).await;
                let dropped = self.events.as_ref().map_or(0, |e| e.stats().dropped);
                overview["stream"] = json!({"pattern": self.pattern, "dropped": dropped});
                Some(SseEvent::default().event("tick").data(overview.to_string()))
            }
            // `None`: the bus shut down.
            event = next_event(&mut self.events) => event.map(|e| {
                SseEvent::default().event("event").data(event_json(&e).to_string())
            }),
        }
    }
}

async fn next_event(events: &mut Option<EventStream>) -> Option<Arc<Event>> {
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
