//! The catalog's JSON Schemas say exactly what its types accept: whatever
//! `catalog::validate` accepts decodes into the catalog type, and whatever
//! decodes is accepted, but for one leniency of serde's derive (a struct
//! read from a JSON array of its fields), which the schema refuses. Checked
//! on every catalog type's example data with one field set to an arbitrary
//! JSON value (numbers written every way JSON allows: `4`, `4.0`, `1e2`,
//! huge, negative), removed, or added.

use hookbus::TypedEvent;
use hookbus::catalog::{self, decision, evaluation, interaction};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

type Decode = fn(&Value) -> bool;

fn decodes<T: TypedEvent>(data: &Value) -> bool {
    serde_json::from_value::<T>(data.clone()).is_ok()
}

macro_rules! decoders {
    ($($module:ident :: $name:ident),* $(,)?) => {
        &[$((<$module::$name as TypedEvent>::TYPE, decodes::<$module::$name> as Decode)),*]
    };
}

/// Every catalog type with its decoder (the test below checks none is
/// missing).
const DECODERS: &[(&str, Decode)] = decoders![
    decision::DecisionCaptured,
    decision::LowConfidence,
    decision::DriftDetected,
    interaction::InteractionStarted,
    interaction::InteractionCompleted,
    interaction::LevelTransition,
    interaction::Level1Response,
    interaction::Level2Clarification,
    interaction::Level3ProactiveSuggestion,
    interaction::Level4Prediction,
    interaction::Level5Transformation,
    interaction::PatternLearned,
    interaction::PatternApplied,
    interaction::PatternUpdated,
    interaction::TrustIncreased,
    interaction::TrustDecreased,
    interaction::TrustMilestone,
    interaction::CoordinationRequest,
    interaction::ConflictDetected,
    interaction::HandoffInitiated,
    interaction::PredictionFailure,
    interaction::InteractionError,
    evaluation::EvaluationCreated,
    evaluation::EvaluationCompleted,
    evaluation::EvaluationFailed,
    evaluation::SampleScored,
    evaluation::ReviewAssigned,
    evaluation::ReviewCompleted,
    evaluation::AlertTriggered,
    evaluation::SafetyCritical,
];

#[test]
fn every_catalog_type_has_a_decoder() {
    for entry in catalog::ALL {
        assert!(
            DECODERS.iter().any(|(t, _)| *t == entry.event_type),
            "no decoder for {}",
            entry.event_type
        );
    }
    assert_eq!(DECODERS.len(), catalog::ALL.len());
}

/// A JSON number written as text, parsed as serde_json parses a body.
fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        (0u8..=255).prop_map(|n| n.to_string()),
        (0u8..=255).prop_map(|n| format!("{n}.0")),
        (1u8..=9, 0u8..=3).prop_map(|(m, e)| format!("{m}e{e}")),
        (-1_000_000i64..1_000_000).prop_map(|n| format!("{}.{}", n / 100, (n % 100).abs())),
        any::<f64>()
            .prop_filter("finite", |x| x.is_finite())
            .prop_map(|x| format!("{x:e}")),
        Just("-0".to_owned()),
        Just("-0.0".to_owned()),
        Just("1e30".to_owned()),
        Just("18446744073709551616".to_owned()),
    ]
    .prop_map(|text| serde_json::from_str(&text).expect("a JSON number"))
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        number(),
        "[a-z ]{0,8}".prop_map(Value::String),
        Just(json!("2026-12-07T15:00:00Z")),
        Just(json!("2026-12-07T15:00:00.5+01:00")),
        Just(json!("yesterday")),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// What to do to one field of an example.
#[derive(Debug, Clone)]
enum Change {
    /// Any value in any field.
    Set(Value),
    /// A number written another way in a field that holds a number.
    Renumber(Value),
    Remove,
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        4 => value().prop_map(Change::Set),
        4 => number().prop_map(Change::Renumber),
        1 => Just(Change::Remove),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn what_the_schema_accepts_decodes_and_vice_versa(
        which in 0..catalog::ALL.len(),
        field in any::<prop::sample::Index>(),
        nested in any::<prop::sample::Index>(),
        change in change(),
    ) {
        let entry = &catalog::ALL[which];
        let decode = DECODERS.iter().find(|(t, _)| *t == entry.event_type).unwrap().1;
        let mut data: Value = serde_json::from_str(entry.example).unwrap();
        let obj = data.as_object_mut().unwrap();
        // A type without numeric fields takes the number anywhere.
        let numeric = matches!(change, Change::Renumber(_))
            && obj.values().any(|v| v.is_number() || v.is_object());
        let mut keys: Vec<String> = obj
            .iter()
            .filter(|(_, v)| !numeric || v.is_number() || v.is_object())
            .map(|(k, _)| k.clone())
            .collect();
        if !numeric {
            keys.push("extra_field".to_owned());
        }
        let key = field.get(&keys).clone();
        // Half of the time, change a field inside a nested object instead.
        let target = match obj.get_mut(&key) {
            Some(Value::Object(inner)) if !inner.is_empty() && (numeric || nested.index(2) == 0) => {
                let inner_keys: Vec<String> = inner.keys().cloned().collect();
                let inner_key = nested.get(&inner_keys).clone();
                (inner, inner_key)
            }
            _ => (obj, key),
        };
        let (map, name) = target;
        match change {
            Change::Set(v) | Change::Renumber(v) => { map.insert(name, v); }
            Change::Remove => { map.remove(&name); }
        }
        let accepted = catalog::validate(entry.event_type, &data);
        let decoded = decode(&data);
        // serde's derive also reads a struct from a JSON array of its
        // fields in order; the schema (rightly) asks for an object. The
        // only difference, and on the safe side: what validates decodes.
        let struct_as_array = matches!(
            &accepted,
            Err(v) if v.message == "expected object, found array"
        );
        prop_assume!(!(struct_as_array && decoded));
        prop_assert_eq!(
            accepted.is_ok(),
            decoded,
            "{}: schema says {:?}, serde decodes: {}; data {}",
            entry.event_type,
            accepted,
            decoded,
            data
        );
    }
}

#[test]
fn integers_written_as_floats_are_refused_as_serde_refuses_them() {
    let mut completed: Value =
        serde_json::from_str(interaction::InteractionCompleted::EXAMPLE).unwrap();
    for text in ["4.0", "1e2", "4.5"] {
        completed["level"] = serde_json::from_str(text).unwrap();
        let err = catalog::validate("interaction_completed", &completed).unwrap_err();
        assert_eq!(err.path, "/level", "{text}");
        assert_eq!(err.message, "expected integer, found number", "{text}");
        assert!(
            serde_json::from_value::<interaction::InteractionCompleted>(completed.clone()).is_err()
        );
    }
    completed["level"] = json!(4);
    assert_eq!(
        catalog::validate("interaction_completed", &completed),
        Ok(())
    );
}
