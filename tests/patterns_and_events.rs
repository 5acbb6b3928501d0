//! Patterns (a table and properties) and events (validation, CloudEvents JSON).

use hookbus::{Event, EventError, ExtensionValue, Pattern};
use proptest::prelude::*;
use serde_json::json;

#[test]
fn pattern_table() {
    let table: &[(&str, &str, bool)] = &[
        ("decision.captured", "decision.captured", true),
        ("decision.captured", "decision.captured.v2", false),
        ("decision.captured", "decision", false),
        ("decision.*", "decision.captured", true),
        ("decision.*", "decision", false),
        ("decision.*", "decision.a.b", false),
        ("decision.*", "decisions.a", false),
        ("decision.**", "decision", true),
        ("decision.**", "decision.a", true),
        ("decision.**", "decision.a.b.c", true),
        ("decision.**", "decisions.a", false),
        ("decision.**", "decisio", false),
        ("*", "a", true),
        ("*", "a.b.c", true),
        ("**", "a.b.c", true),
        ("*.failed", "evaluation.failed", true),
        ("*.failed", "failed", false),
        ("*.failed", "a.evaluation.failed", false),
        ("**.failed", "failed", true),
        ("**.failed", "a.b.failed", true),
        ("**.failed", "a.failed.b", false),
        ("a.*.c", "a.b.c", true),
        ("a.*.c", "a.c", false),
        ("a.**.c", "a.c", true),
        ("a.**.c", "a.x.y.c", true),
        ("a.**.c", "a.x.y.d", false),
        ("**.a.**", "x.a.y", true),
        ("**.a.**", "a", true),
        ("**.a.**", "x.b.y", false),
        ("*.*", "a.b", true),
        ("*.*", "a", false),
        ("level_4_prediction", "level_4_prediction", true),
        ("github.pull_request.*", "github.pull_request.opened", true),
    ];
    for &(pattern, ty, expected) in table {
        let p = Pattern::new(pattern).unwrap();
        assert_eq!(p.matches(ty), expected, "{pattern:?} vs {ty:?}");
    }
}

#[test]
fn bad_patterns_say_what_is_wrong() {
    for (bad, says) in [
        ("", "empty"),
        ("a..b", "empty segment"),
        (".a", "empty segment"),
        ("a.", "empty segment"),
        ("dec*", "whole segment"),
        ("a.**.**", "**.**"),
        ("a b", "' '"),
        ("a/b", "'/'"),
    ] {
        let err = Pattern::new(bad).unwrap_err().to_string();
        assert!(err.contains(says), "{bad:?}: {err}");
    }
    assert!(Pattern::new(&"a".repeat(256)).is_err());
}

fn segment() -> impl Strategy<Value = String> {
    "[a-z0-9_-]{1,6}"
}

fn event_type() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(segment(), 1..6)
}

/// A reference matcher, written the obvious recursive way.
fn reference(pattern: &[&str], ty: &[&str]) -> bool {
    match (pattern.first(), ty.first()) {
        (None, None) => true,
        (None, Some(_)) => false,
        (Some(&"**"), _) => {
            reference(&pattern[1..], ty) || (!ty.is_empty() && reference(pattern, &ty[1..]))
        }
        (Some(_), None) => false,
        (Some(&"*"), Some(_)) => reference(&pattern[1..], &ty[1..]),
        (Some(p), Some(t)) => p == t && reference(&pattern[1..], &ty[1..]),
    }
}

proptest! {
    #[test]
    fn a_type_always_matches_itself(ty in event_type()) {
        let text = ty.join(".");
        prop_assert!(Pattern::new(&text).unwrap().matches(&text));
    }

    #[test]
    fn wildcards_agree_with_a_reference_matcher(
        ty in event_type(),
        mask in proptest::collection::vec(0u8..4, 1..6),
    ) {
        // Build a pattern from the type: keep, `*`, `**`, or another literal.
        let mut pattern: Vec<String> = Vec::new();
        for (i, m) in mask.iter().enumerate() {
            let seg = match m {
                0 => ty.get(i).cloned().unwrap_or_else(|| "x".into()),
                1 => "*".into(),
                2 => "**".into(),
                _ => "zz".into(),
            };
            if seg == "**" && pattern.last().map(String::as_str) == Some("**") {
                continue;
            }
            pattern.push(seg);
        }
        let text = pattern.join(".");
        let p = Pattern::new(&text).unwrap();
        let pat: Vec<&str> = pattern.iter().map(String::as_str).collect();
        let tys: Vec<&str> = ty.iter().map(String::as_str).collect();
        let expected = text == "*" || reference(&pat, &tys);
        prop_assert_eq!(p.matches(&ty.join(".")), expected, "{} vs {}", text, ty.join("."));
    }

    #[test]
    fn arbitrary_text_never_panics(s in ".{0,300}") {
        let _ = Pattern::new(&s).map(|p| p.matches(&s));
        let _ = Event::new(s.clone(), json!(null));
        let _ = serde_json::from_str::<Event>(&s);
    }
}

#[test]
fn event_types_are_validated() {
    assert!(Event::new("decision.captured", json!({})).is_ok());
    assert!(Event::new("a_b-c.D9", json!({})).is_ok());
    assert_eq!(
        Event::new("", json!({})).unwrap_err(),
        EventError::EmptyType
    );
    assert!(matches!(
        Event::new("a".repeat(256), json!({})),
        Err(EventError::TypeTooLong { len: 256 })
    ));
    assert!(Event::new("a".repeat(255), json!({})).is_ok());
    let err = Event::new("decision captured", json!({})).unwrap_err();
    assert!(matches!(
        err,
        EventError::InvalidTypeChar { ch: ' ', at: 8, .. }
    ));
    assert!(err.to_string().contains("' '"), "{err}");
    assert!(Event::new("émoji", json!({})).is_err());
}

#[test]
fn extension_names_follow_cloudevents() {
    let ok = Event::builder("a").extension("partitionkey", "k").build();
    assert!(ok.is_ok());
    for bad in [
        "PartitionKey",
        "with-dash",
        "",
        "abcdefghijklmnopqrstu",
        "type",
        "data",
    ] {
        let err = Event::builder("a").extension(bad, "v").build().unwrap_err();
        assert!(
            matches!(
                err,
                EventError::InvalidExtensionName { .. } | EventError::ReservedExtensionName { .. }
            ),
            "{bad:?}: {err}"
        );
    }
}

#[test]
fn events_round_trip_as_structured_cloudevents_json() {
    let event = Event::builder("decision.captured")
        .id("evt-1")
        .source("briefcase-ai")
        .subject("claims_review")
        .time(time::macros::datetime!(2024-03-15 10:30:00.5 +02:00))
        .data(json!({"decision_id": "abc123", "confidence": 0.91}))
        .extension("partitionkey", "abc123")
        .extension("attempt", 3)
        .extension("replayed", false)
        .build()
        .unwrap();
    let value: serde_json::Value = serde_json::from_slice(&event.structured_json()).unwrap();
    assert_eq!(
        value,
        json!({
            "specversion": "1.0",
            "id": "evt-1",
            "source": "briefcase-ai",
            "type": "decision.captured",
            "time": "2024-03-15T08:30:00.5Z",
            "subject": "claims_review",
            "datacontenttype": "application/json",
            "partitionkey": "abc123",
            "attempt": 3,
            "replayed": false,
            "data": {"decision_id": "abc123", "confidence": 0.91},
        })
    );
    let back: Event = serde_json::from_value(value).unwrap();
    assert_eq!(back, event);
    assert_eq!(back.extension("attempt"), Some(&ExtensionValue::Integer(3)));
}

#[test]
fn malformed_cloudevents_are_refused_with_reasons() {
    let cases = [
        (
            json!({"id": "1", "source": "s", "type": "t"}),
            "specversion",
        ),
        (
            json!({"specversion": "0.3", "id": "1", "source": "s", "type": "t"}),
            "0.3",
        ),
        (
            json!({"specversion": "1.0", "source": "s", "type": "t"}),
            "id",
        ),
        (
            json!({"specversion": "1.0", "id": "1", "type": "t"}),
            "source",
        ),
        (
            json!({"specversion": "1.0", "id": "1", "source": "s", "type": "bad type"}),
            "' '",
        ),
        (
            json!({"specversion": "1.0", "id": "1", "source": "s", "type": "t", "time": "yesterday"}),
            "RFC 3339",
        ),
        (
            json!({"specversion": "1.0", "id": "1", "source": "s", "type": "t", "Bad": "x"}),
            "Bad",
        ),
        (
            json!({"specversion": "1.0", "id": "1", "source": "s", "type": "t", "data_base64": "AA=="}),
            "data_base64",
        ),
    ];
    for (value, says) in cases {
        let err = serde_json::from_value::<Event>(value.clone())
            .unwrap_err()
            .to_string();
        assert!(err.contains(says), "{value}: {err}");
    }
}

#[test]
fn ids_are_unique_uuids_and_times_are_utc() {
    let a = Event::new("a", json!(1)).unwrap();
    let b = Event::new("a", json!(1)).unwrap();
    assert_ne!(a.id(), b.id());
    assert!(uuid::Uuid::parse_str(a.id()).is_ok());
    assert!(a.time_rfc3339().ends_with('Z'));
    // A clone keeps its id: retries of the same event carry the same id.
    assert_eq!(a.clone().id(), a.id());
}
