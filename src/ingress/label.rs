//! The one place that reads which event a request carries and under which
//! id: the ingress's GitHub route names its events with it, and `hookbus
//! listen` / `hookbus verify` print it.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;
use serde_json::Value;

use crate::signature::StandardWebhooks;
use crate::verify::HeaderSource;

/// GitHub's event name header (not covered by GitHub's signature).
pub(crate) const GITHUB_EVENT: &str = "X-GitHub-Event";
/// GitHub's delivery id header (not covered by GitHub's signature).
pub(crate) const GITHUB_DELIVERY: &str = "X-GitHub-Delivery";

/// Which event a request carries, as far as the request says: its type
/// and its id, when found. Read in this order, first match wins:
///
/// | request | type | id |
/// |---|---|---|
/// | CloudEvents structured (`application/cloudevents+json`) | the body's `type` | the body's `id` |
/// | CloudEvents batched (`application/cloudevents-batch+json`) | the first event's `type` | the first event's `id` |
/// | CloudEvents binary (`ce-specversion`) | `ce-type` | `ce-id` (percent-decoded) |
/// | GitHub (`X-GitHub-Event`) | `github.<X-GitHub-Event>[.<action>]` | `X-GitHub-Delivery` |
/// | anything else | a JSON body's string `type` (the Standard Webhooks payload shape) | `webhook-id` |
///
/// A label is for naming, never for trust: under a body-only signature
/// (GitHub, Briefcase) the headers it may come from are not signed.
///
/// ```
/// use hookbus::ingress::EventLabel;
///
/// let body = br#"{"specversion":"1.0","id":"evt_1","source":"s","type":"order.paid"}"#;
/// let headers = [("Content-Type", "application/cloudevents+json")];
/// let label = EventLabel::of(&headers, body);
/// assert_eq!(label.event_type.as_deref(), Some("order.paid"));
/// assert_eq!(label.id.as_deref(), Some("evt_1"));
///
/// let headers = [("X-GitHub-Event", "pull_request"), ("X-GitHub-Delivery", "72d3")];
/// let label = EventLabel::of(&headers, br#"{"action":"opened"}"#);
/// assert_eq!(label.event_type.as_deref(), Some("github.pull_request.opened"));
/// assert_eq!(label.id.as_deref(), Some("72d3"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventLabel {
    /// The event type, if the request names one.
    pub event_type: Option<String>,
    /// The event (or delivery, or message) id, if the request names one.
    pub id: Option<String>,
}

fn text<'h>(headers: &'h (impl HeaderSource + ?Sized), name: &str) -> Option<&'h str> {
    headers
        .header_bytes(name)
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn string_field(value: &Value, name: &str) -> Option<String> {
    value.get(name).and_then(Value::as_str).map(str::to_owned)
}

/// The media type of `Content-Type`, lowercased, without parameters.
fn media_type(headers: &(impl HeaderSource + ?Sized)) -> String {
    text(headers, "content-type")
        .and_then(|v| v.split(';').next())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// `github.<event>[.<action>]`: the action is the payload's `action`.
pub(crate) fn github_type(event: &str, data: &Value) -> String {
    match data.get("action").and_then(Value::as_str) {
        Some(action) => format!("github.{event}.{action}"),
        None => format!("github.{event}"),
    }
}

impl EventLabel {
    /// Reads the label of a request from its headers and raw body (see the
    /// table above). Never fails: what cannot be read is `None`.
    pub fn of(headers: &(impl HeaderSource + ?Sized), body: &[u8]) -> EventLabel {
        let media = media_type(headers);
        let json = || serde_json::from_slice::<Value>(body).ok();
        if media == "application/cloudevents+json" {
            let event = json().unwrap_or(Value::Null);
            return EventLabel {
                event_type: string_field(&event, "type"),
                id: string_field(&event, "id"),
            };
        }
        if media == "application/cloudevents-batch+json" {
            let first = json()
                .and_then(|v| v.get(0).cloned())
                .unwrap_or(Value::Null);
            return EventLabel {
                event_type: string_field(&first, "type"),
                id: string_field(&first, "id"),
            };
        }
        if headers.header_bytes("ce-specversion").is_some() {
            let decoded = |name| {
                text(headers, name).map(|v| percent_decode_str(v).decode_utf8_lossy().into_owned())
            };
            return EventLabel {
                event_type: decoded("ce-type"),
                id: decoded("ce-id"),
            };
        }
        if let Some(event) = text(headers, GITHUB_EVENT) {
            return EventLabel {
                event_type: Some(github_type(event, &json().unwrap_or(Value::Null))),
                id: text(headers, GITHUB_DELIVERY).map(str::to_owned),
            };
        }
        EventLabel {
            event_type: json().and_then(|v| string_field(&v, "type")),
            id: text(headers, StandardWebhooks::HEADER_ID).map(str::to_owned),
        }
    }

    /// The type, or `-` when the request names none (for printing).
    pub fn event_type_or_dash(&self) -> Cow<'_, str> {
        Cow::Borrowed(self.event_type.as_deref().unwrap_or("-"))
    }

    /// The id, or `-` when the request names none (for printing).
    pub fn id_or_dash(&self) -> Cow<'_, str> {
        Cow::Borrowed(self.id.as_deref().unwrap_or("-"))
    }
}
