//! Every catalog event serializes with exactly its documented fields, under
//! its documented type, and reads back unchanged.

use std::collections::{BTreeMap, BTreeSet};

use hookbus::catalog::{self, decision::*, evaluation::*, interaction::*};
use hookbus::{Event, TypedEvent};
use serde::de::DeserializeOwned;
use serde_json::{Map, json};
use time::macros::datetime;

/// Checks one sample: type, keys = FIELDS, catalog entry, round trip.
fn check<T: TypedEvent + Clone + PartialEq + std::fmt::Debug + DeserializeOwned>(
    sample: T,
    fields: &[&str],
    entry: catalog::CatalogEntry,
) -> serde_json::Value {
    let event = Event::from_typed(&sample).unwrap();
    assert_eq!(event.event_type(), T::TYPE);
    hookbus::event::validate_type(T::TYPE).unwrap();
    let keys: BTreeSet<&str> = event
        .data()
        .as_object()
        .expect("data is a JSON object")
        .keys()
        .map(String::as_str)
        .collect();
    let documented: BTreeSet<&str> = fields.iter().copied().collect();
    assert_eq!(keys, documented, "{}: serialized keys", T::TYPE);
    assert_eq!(entry.event_type, T::TYPE);
    assert_eq!(catalog::lookup(T::TYPE), Some(&entry));
    check_example::<T>(&entry, &documented);
    // Through the wire: structured CloudEvents JSON and back.
    let text = serde_json::to_string(&event).unwrap();
    let back: Event = serde_json::from_str(&text).unwrap();
    assert_eq!(
        back.data_as::<T>().unwrap(),
        sample,
        "{}: round trip",
        T::TYPE
    );
    event.data().clone()
}

/// The entry's example data reads as the type, has exactly the documented
/// keys and writes back as given; with feature `schema`, the type's schema
/// describes those keys and carries the example.
#[track_caller]
fn check_example<T: TypedEvent + serde::Serialize + DeserializeOwned>(
    entry: &catalog::CatalogEntry,
    documented: &BTreeSet<&str>,
) {
    let example: serde_json::Value = serde_json::from_str(entry.example)
        .unwrap_or_else(|e| panic!("{}: example is not JSON: {e}", T::TYPE));
    let typed: T = serde_json::from_value(example.clone())
        .unwrap_or_else(|e| panic!("{}: example does not read as the type: {e}", T::TYPE));
    let keys: BTreeSet<&str> = example
        .as_object()
        .expect("example is an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(&keys, documented, "{}: example keys", T::TYPE);
    assert_eq!(
        serde_json::to_value(&typed).unwrap(),
        example,
        "{}: example round trip",
        T::TYPE
    );
    #[cfg(feature = "schema")]
    {
        let schema = catalog::json_schema(T::TYPE).expect("every catalog type has a schema");
        assert_eq!(schema["title"], T::TYPE);
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert_eq!(schema["type"], "object");
        let properties: BTreeSet<&str> = schema["properties"]
            .as_object()
            .expect("properties")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(&properties, documented, "{}: schema properties", T::TYPE);
        for required in schema["required"].as_array().into_iter().flatten() {
            assert!(documented.contains(required.as_str().unwrap()));
        }
        assert_eq!(schema["examples"], serde_json::json!([example]));
    }
}

macro_rules! event_test {
    ($test:ident, $ty:ident, $sample:expr, |$data:ident| $extra:block) => {
        #[test]
        fn $test() {
            let $data = check($sample, $ty::FIELDS, $ty::ENTRY);
            $extra
        }
    };
    ($test:ident, $ty:ident, $sample:expr) => {
        event_test!($test, $ty, $sample, |_data| {});
    };
}

fn s(v: &str) -> String {
    v.to_owned()
}

event_test!(
    decision_captured,
    DecisionCaptured,
    DecisionCaptured {
        decision_id: s("abc123"),
        function_name: Some(s("claims_review")),
        confidence: None
    },
    |d| {
        assert_eq!(d["confidence"], serde_json::Value::Null);
        assert_eq!(d["function_name"], "claims_review");
    }
);
event_test!(
    low_confidence,
    LowConfidence,
    LowConfidence {
        decision_id: s("abc123"),
        confidence: 0.72,
        threshold: Some(0.8)
    },
    |d| {
        assert_eq!(d["confidence"], 0.72);
    }
);
event_test!(
    drift_detected,
    DriftDetected,
    DriftDetected {
        window: s("1h"),
        drift_score: 0.18
    }
);

event_test!(
    interaction_started,
    InteractionStarted,
    InteractionStarted {
        user_id: s("user_123"),
        user_input: s("Analyze this code"),
        timestamp: datetime!(2024-03-15 10:30:00 UTC)
    },
    |d| {
        assert_eq!(d["timestamp"], "2024-03-15T10:30:00Z");
    }
);
event_test!(
    interaction_completed,
    InteractionCompleted,
    InteractionCompleted {
        user_id: s("user_123"),
        response: s("done"),
        level: 4,
        confidence: 0.95,
        duration_ms: 120
    }
);
event_test!(
    level_transition,
    LevelTransition,
    LevelTransition {
        user_id: s("u"),
        from_level: 3,
        to_level: 4,
        reason: s("trust")
    }
);
event_test!(
    level_1_response,
    Level1Response,
    Level1Response {
        user_id: s("u"),
        response: s("r")
    }
);
event_test!(
    level_2_clarification,
    Level2Clarification,
    Level2Clarification {
        user_id: s("u"),
        question: s("q?")
    }
);
event_test!(
    level_3_proactive_suggestion,
    Level3ProactiveSuggestion,
    Level3ProactiveSuggestion {
        user_id: s("u"),
        suggestion: s("add tests"),
        confidence: 0.7
    }
);
event_test!(
    level_4_prediction,
    Level4Prediction,
    Level4Prediction {
        user_id: s("user_123"),
        prediction: s("Schema modification may break mobile app"),
        confidence: 0.87,
        timestamp: datetime!(2024-03-15 10:30:00.5 UTC),
        tags: vec![s("security")],
        severity: Some(s("high")),
        recommendation: None,
    },
    |d| {
        assert_eq!(d["tags"], json!(["security"]));
        assert_eq!(d["recommendation"], serde_json::Value::Null);
    }
);
event_test!(
    level_5_transformation,
    Level5Transformation,
    Level5Transformation {
        user_id: s("u"),
        framework: s("f"),
        description: s("d")
    }
);
event_test!(
    pattern_learned,
    PatternLearned,
    PatternLearned {
        pattern_id: s("p1"),
        pattern_name: s("sql_injection_detection"),
        confidence: 0.95,
        user_id: s("u")
    }
);
event_test!(
    pattern_applied,
    PatternApplied,
    PatternApplied {
        pattern_id: s("p1"),
        pattern_name: s("n"),
        confidence: 0.9,
        success: true
    }
);
event_test!(
    pattern_updated,
    PatternUpdated,
    PatternUpdated {
        pattern_id: s("p1"),
        old_confidence: 0.5,
        new_confidence: 0.6
    }
);
event_test!(
    trust_increased,
    TrustIncreased,
    TrustIncreased {
        user_id: s("u"),
        old_trust: 0.5,
        new_trust: 0.6,
        delta: 0.1
    }
);
event_test!(
    trust_decreased,
    TrustDecreased,
    TrustDecreased {
        user_id: s("u"),
        old_trust: 0.6,
        new_trust: 0.5,
        delta: -0.1
    }
);
event_test!(
    trust_milestone,
    TrustMilestone,
    TrustMilestone {
        user_id: s("u"),
        trust_level: 0.76,
        milestone: 0.75
    }
);
event_test!(
    coordination_request,
    CoordinationRequest,
    CoordinationRequest {
        requesting_agent: s("a"),
        target_agents: vec![s("b"), s("c")],
        topic: s("deploy"),
        priority: s("high")
    }
);
event_test!(
    conflict_detected,
    ConflictDetected,
    ConflictDetected {
        agent1: s("a"),
        agent2: s("b"),
        resource: s("db"),
        severity: s("high")
    }
);
event_test!(
    handoff_initiated,
    HandoffInitiated,
    HandoffInitiated {
        from_agent: s("a"),
        to_agent: s("b"),
        task: s("t"),
        context: json!({"ticket": 7})
    }
);
event_test!(
    prediction_failure,
    PredictionFailure,
    PredictionFailure {
        prediction_id: s("x"),
        reason: s("rejected"),
        confidence: 0.6
    }
);
event_test!(
    interaction_error,
    InteractionError,
    InteractionError {
        error_type: s("TimeoutError"),
        error_message: s("timed out"),
        context: json!({})
    },
    |_d| {
        assert_eq!(InteractionError::TYPE, "error");
    }
);

event_test!(
    evaluation_created,
    EvaluationCreated,
    EvaluationCreated {
        evaluation_id: s("eval_xyz789"),
        project_id: Some(s("patient-triage")),
        config: json!({"samples": 500})
    }
);
event_test!(
    evaluation_completed,
    EvaluationCompleted,
    EvaluationCompleted {
        evaluation_id: s("eval_xyz789"),
        project_id: Some(s("patient-triage")),
        name: Some(s("Daily Evaluation - March 15")),
        status: s("completed"),
        summary: Map::from_iter([
            (s("total_samples"), json!(500)),
            (s("triage_accuracy"), json!(0.87))
        ]),
        completed_at: datetime!(2024-03-15 10:30:00 UTC),
    },
    |d| {
        assert_eq!(d["summary"]["triage_accuracy"], 0.87);
        assert_eq!(d["completed_at"], "2024-03-15T10:30:00Z");
    }
);
event_test!(
    evaluation_failed,
    EvaluationFailed,
    EvaluationFailed {
        evaluation_id: s("e"),
        error: s("dataset missing"),
        details: json!({"dataset": "ds_1"})
    }
);
event_test!(
    sample_scored,
    SampleScored,
    SampleScored {
        sample_id: s("s1"),
        evaluation_id: None,
        scores: BTreeMap::from([(s("safety"), 0.95)])
    }
);
event_test!(
    review_assigned,
    ReviewAssigned,
    ReviewAssigned {
        sample_id: s("s1"),
        reviewer_id: s("r1")
    }
);
event_test!(
    review_completed,
    ReviewCompleted,
    ReviewCompleted {
        sample_id: s("s1"),
        review: Review {
            reviewer_id: s("r1"),
            ai_correct: false,
            notes: None
        }
    },
    |d| {
        assert_eq!(d["review"]["ai_correct"], false);
    }
);
event_test!(
    alert_triggered,
    AlertTriggered,
    AlertTriggered {
        alert_id: s("a1"),
        name: s("accuracy drop"),
        severity: s("high"),
        details: json!({"metric": "triage_accuracy"})
    }
);
event_test!(
    safety_critical,
    SafetyCritical,
    SafetyCritical {
        sample_id: s("s1"),
        issue: SafetyIssue {
            kind: s("missed_emergency"),
            description: s("chest pain triaged as routine"),
            details: Map::from_iter([(s("score"), json!(0.1))])
        },
    },
    |d| {
        assert_eq!(d["issue"]["type"], "missed_emergency");
        assert_eq!(d["issue"]["score"], 0.1);
    }
);

#[test]
fn catalog_lists_every_event_once() {
    assert_eq!(catalog::ALL.len(), 3 + 19 + 8);
    let types: BTreeSet<&str> = catalog::ALL.iter().map(|e| e.event_type).collect();
    assert_eq!(types.len(), catalog::ALL.len(), "duplicate event type");
    assert!(catalog::lookup("level_4_prediction").is_some());
    assert!(catalog::lookup("no.such.event").is_none());
    for e in catalog::ALL {
        assert!(!e.description.is_empty() && !e.fields.is_empty(), "{e:?}");
    }
}

#[cfg(feature = "schema")]
#[test]
fn schemas_say_what_a_receiver_must_check() {
    assert!(catalog::json_schema("no.such.event").is_none());
    let s = catalog::json_schema("decision.low_confidence").unwrap();
    assert_eq!(s["required"], json!(["decision_id", "confidence"]));
    assert_eq!(s["properties"]["confidence"]["type"], "number");
    assert_eq!(
        s["properties"]["decision_id"]["description"],
        "The decision's id."
    );
    // Timestamps are RFC 3339 strings, not the Rust type's shape.
    let s = Level4Prediction::json_schema();
    assert_eq!(
        s["properties"]["timestamp"],
        json!({"type": "string", "format": "date-time", "description": "When it was made (RFC 3339)."})
    );
    assert!(
        !s["required"].as_array().unwrap().contains(&json!("tags")),
        "tags has a default"
    );
    // Nested types are described too.
    let s = SafetyCritical::json_schema();
    assert_eq!(
        s["$defs"]["SafetyIssue"]["properties"]["type"]["type"],
        "string"
    );
}

#[test]
fn missing_optional_fields_read_as_none() {
    let d: DecisionCaptured = serde_json::from_value(json!({"decision_id": "abc123"})).unwrap();
    assert_eq!(d.function_name, None);
    let p: Result<PatternLearned, _> = serde_json::from_value(json!({"pattern_id": "p"}));
    assert!(p.is_err(), "a required field is required");
}
