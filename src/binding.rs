//! The CloudEvents context attributes as the protocol bindings carry them:
//! HTTP binary mode in `ce-` headers (webhooks out, the ingress in), Kafka
//! binary mode in `ce_` headers (the publisher out, the source in). One
//! list for every binding and both directions, so none can disagree on
//! which attributes exist, how they are written or how they are read.
//!
//! `specversion` and `datacontenttype` are not in the list: each binding
//! checks the first on its own and carries the second as its content type.
// Each binding reads the fields it needs: with only some of them built,
// the others are unused.
#![cfg_attr(
    not(all(feature = "webhook", feature = "axum", feature = "kafka")),
    allow(dead_code)
)]

use std::borrow::Cow;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::event::{Event, EventBuilder};

/// One context attribute.
pub(crate) struct Attribute {
    /// Its CloudEvents name.
    pub(crate) name: &'static str,
    /// Its HTTP header (`ce-<name>`).
    pub(crate) http: &'static str,
    /// Its Kafka header (`ce_<name>`).
    pub(crate) kafka: &'static str,
    /// Whether binary mode must carry it.
    pub(crate) required: bool,
    /// Its value in an event (None when the event has none).
    pub(crate) get: fn(&Event) -> Option<Cow<'_, str>>,
    /// What a valid value is, for errors ("… is not {expects}").
    pub(crate) expects: &'static str,
    /// Sets it on a builder; None when the value is not valid for it.
    /// `None` for `type`, which starts the builder instead.
    pub(crate) set: Option<fn(EventBuilder, &str) -> Option<EventBuilder>>,
}

/// Every context attribute but `specversion` and `datacontenttype`, in the
/// order they are written.
pub(crate) const ATTRIBUTES: [Attribute; 6] = [
    Attribute {
        name: "id",
        expects: "a string",
        http: "ce-id",
        kafka: "ce_id",
        required: true,
        get: |e| Some(Cow::Borrowed(e.id())),
        set: Some(|b, v| Some(b.id(v))),
    },
    Attribute {
        name: "source",
        expects: "a URI-reference",
        http: "ce-source",
        kafka: "ce_source",
        required: true,
        get: |e| Some(Cow::Borrowed(e.source())),
        set: Some(|b, v| Some(b.source(v.to_owned()))),
    },
    Attribute {
        name: "type",
        expects: "a string",
        http: "ce-type",
        kafka: "ce_type",
        required: true,
        get: |e| Some(Cow::Borrowed(e.event_type())),
        set: None,
    },
    Attribute {
        name: "time",
        expects: "RFC 3339",
        http: "ce-time",
        kafka: "ce_time",
        required: false,
        get: |e| Some(Cow::Owned(e.time_rfc3339())),
        set: Some(|b, v| OffsetDateTime::parse(v, &Rfc3339).ok().map(|t| b.time(t))),
    },
    Attribute {
        name: "subject",
        expects: "a string",
        http: "ce-subject",
        kafka: "ce_subject",
        required: false,
        get: |e| e.subject().map(Cow::Borrowed),
        set: Some(|b, v| Some(b.subject(v))),
    },
    Attribute {
        name: "dataschema",
        expects: "a URI",
        http: "ce-dataschema",
        kafka: "ce_dataschema",
        required: false,
        get: |e| e.dataschema().map(Cow::Borrowed),
        set: Some(|b, v| Some(b.dataschema(v))),
    },
];

/// The attribute of this name, if it is one of the list.
pub(crate) fn attribute(name: &str) -> Option<&'static Attribute> {
    ATTRIBUTES.iter().find(|a| a.name == name)
}

/// Whether `name` is a context attribute (so not an extension) in binary
/// mode: one of the list, `specversion`, or `datacontenttype`.
pub(crate) fn is_context_attribute(name: &str) -> bool {
    name == "specversion" || name == "datacontenttype" || attribute(name).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_attribute_reads_back_what_it_wrote() {
        let e = Event::builder("order.placed")
            .data(json!({}))
            .source("svc")
            .subject("orders/1")
            .dataschema("https://example.com/schema")
            .build()
            .unwrap();
        let ty = (ATTRIBUTES.iter().find(|a| a.set.is_none()).unwrap().get)(&e).unwrap();
        let mut b = Event::builder(ty.into_owned());
        for a in &ATTRIBUTES {
            assert_eq!(a.http, format!("ce-{}", a.name));
            assert_eq!(a.kafka, format!("ce_{}", a.name));
            if let (Some(set), Some(v)) = (a.set, (a.get)(&e)) {
                b = set(b, &v).unwrap();
            }
        }
        let back = b.build().unwrap();
        for a in &ATTRIBUTES {
            assert_eq!((a.get)(&back), (a.get)(&e), "{}", a.name);
        }
        assert!(is_context_attribute("specversion"));
        assert!(!is_context_attribute("tenant"));
        let time = attribute("time").unwrap();
        assert!((time.set.unwrap())(Event::builder("x"), "yesterday").is_none());
    }
}
