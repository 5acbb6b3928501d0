//! Turning a verified request into events: CloudEvents (binary, structured,
//! batched), GitHub deliveries, Slack slash commands, other JSON.

use http::HeaderMap;
use http::header::CONTENT_TYPE;
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Rejection;
use super::label::{GITHUB_DELIVERY, GITHUB_EVENT, github_type};
use crate::binding::{ATTRIBUTES, is_context_attribute};
use crate::event::{Event, EventBuilder, SPEC_VERSION, validate_type};
use crate::verify::Verified;

/// An event and whether its id came from the sender (only those can be
/// deduplicated: a generated id is new every time).
#[derive(Debug)]
pub(crate) struct Incoming {
    pub(crate) event: Event,
    pub(crate) sender_id: bool,
}

impl Incoming {
    pub(crate) fn dedupe_key(&self) -> Option<String> {
        self.sender_id
            .then(|| format!("{}\n{}", self.event.source(), self.event.id()))
    }
}

fn malformed(msg: impl Into<String>) -> Rejection {
    Rejection::Malformed(msg.into())
}

/// The `Content-Type` as sent (trimmed), parameters included: binary mode
/// maps it to `datacontenttype` (HTTP binding §3.1.1).
fn content_type(headers: &HeaderMap) -> Result<Option<&str>, Rejection> {
    Ok(text_header(headers, CONTENT_TYPE.as_str())?
        .map(str::trim)
        .filter(|ct| !ct.is_empty()))
}

/// The extension hookbus sets on an event received without `time`: the
/// receive time it put in `time`, so a consumer can tell.
pub(crate) const RECEIVED_TIME: &str = "receivedtime";

/// An event without a sender's time: the receive time, marked as such.
fn received_now(b: EventBuilder) -> EventBuilder {
    let now = OffsetDateTime::now_utc();
    let text = now.format(&Rfc3339).unwrap_or_default();
    b.time(now).extension(RECEIVED_TIME, text)
}

/// The media type of `Content-Type`, lowercased, without parameters.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    Some(
        v.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    )
}

fn is_json(media: &str) -> bool {
    media == "application/json" || media.ends_with("+json")
}

fn text_header<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, Rejection> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(Some)
            .map_err(|_| malformed(format!("header {name} is not visible ASCII"))),
    }
}

fn parse_json(body: &[u8]) -> Result<Value, Rejection> {
    serde_json::from_slice(body).map_err(|e| malformed(format!("the body is not valid JSON: {e}")))
}

fn build(b: EventBuilder) -> Result<Event, Rejection> {
    b.build().map_err(|e| malformed(e.to_string()))
}

/// The CloudEvents route: structured, batched or binary mode, else any JSON
/// under `json_type` (with the signed Standard Webhooks `webhook-id` as its
/// id when the request carried one). `body_only`: the signature covers the
/// body alone, so binary mode (attributes in unsigned headers) is refused.
pub(crate) fn cloudevents(
    headers: &HeaderMap,
    body: &[u8],
    verified: &Verified,
    body_only: bool,
    json_type: &str,
) -> Result<Vec<Incoming>, Rejection> {
    let media = media_type(headers).unwrap_or_default();
    if media == "application/cloudevents+json" {
        let event: Event = serde_json::from_slice(body)
            .map_err(|e| malformed(format!("not a CloudEvents JSON event: {e}")))?;
        return Ok(vec![Incoming {
            event,
            sender_id: true,
        }]);
    }
    if media == "application/cloudevents-batch+json" {
        let events: Vec<Event> = serde_json::from_slice(body)
            .map_err(|e| malformed(format!("not a CloudEvents JSON batch: {e}")))?;
        return Ok(events
            .into_iter()
            .map(|event| Incoming {
                event,
                sender_id: true,
            })
            .collect());
    }
    if headers.contains_key("ce-specversion") {
        if body_only {
            return Err(malformed(
                "CloudEvents binary mode is refused under a body-only signature: its ce-* headers are not signed; send structured mode (application/cloudevents+json), where the attributes are in the signed body",
            ));
        }
        return binary(headers, body, &media).map(|event| {
            vec![Incoming {
                event,
                sender_id: true,
            }]
        });
    }
    if !media.is_empty() && !is_json(&media) {
        return Err(malformed(format!(
            "content type {media:?} is neither CloudEvents nor JSON"
        )));
    }
    let data = parse_json(body)?;
    let mut b = received_now(Event::builder(json_type.to_owned()).received().data(data));
    // Only a signed id (Standard Webhooks) may name the event: an unsigned
    // header could make a replay look new.
    let id = verified.id.clone();
    let sender_id = id.is_some();
    if let Some(id) = id {
        b = b.id(id);
    }
    Ok(vec![Incoming {
        event: build(b)?,
        sender_id,
    }])
}

/// A `ce-*` header value decoded as HTTP binding §3.1.3.2 says: a
/// double-quoted string is unescaped first (RFC 7230 §3.2.6), then one round
/// of percent-decoding.
fn ce_header(headers: &HeaderMap, name: &str) -> Result<Option<String>, Rejection> {
    let Some(raw) = text_header(headers, name)? else {
        return Ok(None);
    };
    let raw = raw.trim();
    let unquoted = match raw.strip_prefix('"') {
        Some(rest) => std::borrow::Cow::Owned(unquote(rest).ok_or_else(|| {
            malformed(format!("header {name} has an unterminated quoted string"))
        })?),
        None => std::borrow::Cow::Borrowed(raw),
    };
    percent_decode_str(&unquoted)
        .decode_utf8()
        .map(|s| Some(s.into_owned()))
        .map_err(|_| malformed(format!("header {name} does not percent-decode to UTF-8")))
}

/// The content of a quoted string whose opening quote is gone: backslash
/// escapes resolved, up to the closing quote, which must end the value.
fn unquote(rest: &str) -> Option<String> {
    let mut out = String::with_capacity(rest.len());
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return chars.as_str().is_empty().then_some(out),
            c => out.push(c),
        }
    }
    None
}

fn required_ce(headers: &HeaderMap, name: &str) -> Result<String, Rejection> {
    ce_header(headers, name)?
        .ok_or_else(|| malformed(format!("binary-mode CloudEvent without {name}")))
}

/// CloudEvents binary mode: attributes in `ce-*` headers, the data in the body.
fn binary(headers: &HeaderMap, body: &[u8], media: &str) -> Result<Event, Rejection> {
    let spec = required_ce(headers, "ce-specversion")?;
    if spec != SPEC_VERSION {
        return Err(malformed(format!(
            "unsupported CloudEvents specversion {spec:?}; expected \"1.0\""
        )));
    }
    let mut b = Event::builder(required_ce(headers, "ce-type")?).received();
    let mut has_time = false;
    for attribute in &ATTRIBUTES {
        let Some(set) = attribute.set else {
            continue; // `type` started the builder
        };
        let value = if attribute.required {
            Some(required_ce(headers, attribute.http)?)
        } else {
            ce_header(headers, attribute.http)?
        };
        if let Some(v) = value {
            b = set(b, &v).ok_or_else(|| {
                malformed(format!(
                    "{} {v:?} is not {}",
                    attribute.http, attribute.expects
                ))
            })?;
            has_time |= attribute.name == "time";
        }
    }
    for name in headers.keys() {
        let Some(ext) = name.as_str().strip_prefix("ce-") else {
            continue;
        };
        if is_context_attribute(ext) {
            continue;
        }
        if let Some(v) = ce_header(headers, name.as_str())? {
            b = b.extension(ext.to_owned(), v);
        }
    }
    if !has_time {
        // After the sender's extensions, so a receivedtime of theirs is
        // replaced: without a sender's time, it is ours.
        b = received_now(b);
    }
    let data = if body.is_empty() {
        Value::Null
    } else if media.is_empty() || is_json(media) {
        parse_json(body)?
    } else {
        // Non-JSON data travels as a JSON string when it is text.
        let text = std::str::from_utf8(body)
            .map_err(|_| malformed("binary (non-text) CloudEvents data is not supported"))?;
        Value::String(text.to_owned())
    };
    if let Some(ct) = content_type(headers)? {
        b = b.datacontenttype(ct.to_owned());
    }
    build(b.data(data))
}

/// One segment of an event type: `[A-Za-z0-9_-]+`.
fn segment(what: &str, s: &str) -> Result<(), Rejection> {
    if s.is_empty()
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        let shown: String = s.chars().take(64).collect();
        return Err(malformed(format!(
            "{what} {shown:?} cannot be part of an event type: use ASCII letters, digits, '_' and '-'"
        )));
    }
    Ok(())
}

/// A GitHub delivery: `github.<X-GitHub-Event>[.<action>]`, id from
/// `X-GitHub-Delivery`, subject the repository's full name.
pub(crate) fn github(headers: &HeaderMap, body: &[u8]) -> Result<Vec<Incoming>, Rejection> {
    let event_name = text_header(headers, GITHUB_EVENT)?
        .ok_or_else(|| malformed("a GitHub delivery without X-GitHub-Event"))?;
    segment(GITHUB_EVENT, event_name)?;
    let data = parse_json(body)?;
    if let Some(action) = data.get("action").and_then(Value::as_str) {
        segment("the payload's action", action)?;
    }
    let ty = github_type(event_name, &data);
    validate_type(&ty).map_err(|e| malformed(e.to_string()))?;
    let mut b = received_now(Event::builder(ty).received().source("github"));
    let delivery = text_header(headers, GITHUB_DELIVERY)?;
    if let Some(id) = delivery {
        b = b.id(id);
    }
    if let Some(repo) = data
        .pointer("/repository/full_name")
        .and_then(Value::as_str)
    {
        b = b.subject(repo);
    }
    Ok(vec![Incoming {
        event: build(b.data(data))?,
        sender_id: delivery.is_some(),
    }])
}

/// A Slack slash command (form-encoded): `slack.command.<name>` with every
/// form field as a string in the data; `trigger_id` as the id.
pub(crate) fn slack_command(body: &[u8]) -> Result<Vec<Incoming>, Rejection> {
    let mut fields = Map::new();
    for (k, v) in form_urlencoded::parse(body) {
        fields.insert(k.into_owned(), Value::String(v.into_owned()));
    }
    let command = fields
        .get("command")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("a Slack slash command without a command field"))?;
    let name = command.strip_prefix('/').unwrap_or(command);
    segment("the slash command", name)?;
    let mut b = received_now(
        Event::builder(format!("slack.command.{name}"))
            .received()
            .source("slack"),
    );
    let trigger = fields
        .get("trigger_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if let Some(id) = &trigger {
        b = b.id(id.clone());
    }
    if let Some(team) = fields.get("team_domain").and_then(Value::as_str) {
        b = b.subject(team.to_owned());
    }
    Ok(vec![Incoming {
        event: build(b.data(Value::Object(fields)))?,
        sender_id: trigger.is_some(),
    }])
}

/// The CloudEvents a request carries (structured, batched or binary mode),
/// for the test receiver: `None` when the body is not CloudEvents or does
/// not parse as such. Binary mode is read whatever signed it.
#[cfg(feature = "testing")]
pub(crate) fn cloudevents_only(headers: &HeaderMap, body: &[u8]) -> Option<Vec<Event>> {
    let media = media_type(headers).unwrap_or_default();
    if media == "application/cloudevents+json" {
        return serde_json::from_slice::<Event>(body).ok().map(|e| vec![e]);
    }
    if media == "application/cloudevents-batch+json" {
        return serde_json::from_slice(body).ok();
    }
    if headers.contains_key("ce-specversion") {
        return binary(headers, body, &media).ok().map(|e| vec![e]);
    }
    None
}
