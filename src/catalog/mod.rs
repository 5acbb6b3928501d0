//! The standard event catalogs as typed events, with documented fields.
//!
//! Each event is a plain struct that derives `Serialize`/`Deserialize` and
//! implements [`TypedEvent`], so it can be emitted on a bus
//! (`bus.emit(LowConfidence { .. })`), with the default-bus helpers
//! ([`crate::emit_event`]), and received typed (`bus.on_typed(|e:
//! Typed<PatternLearned>| ..)`). Every field is always serialized (an absent
//! optional field is `null`), so receivers see the same keys every time.
//! [`ALL`] lists every type with its description and fields.
//!
//! | module | events | from |
//! |---|---|---|
//! | [`decision`] | `decision.captured`, `decision.low_confidence`, `decision.drift_detected` | the Briefcase guide |
//! | [`interaction`] | `interaction_started` … `error` (19 events) | the Empathy event catalog |
//! | [`evaluation`] | `evaluation.created` … `safety.critical` (8 events) | the Rubric webhook docs |
//!
//! With feature `schema`, every catalog type implements `schemars::JsonSchema`
//! and [`json_schema`] gives the JSON Schema (draft 2020-12) of a type's data,
//! with its example under `examples`, for receivers in other languages. The
//! `catalog::validate(type, data)` checks an event's data against its
//! type's schema, naming the first error's JSON path; the ingress does it on
//! request (`Ingress::validate_catalog`, with features `axum` and `schema`).
//! The
//! command-line tool prints them: `hookbus catalog` lists the types,
//! `hookbus catalog TYPE` shows one with its example, `hookbus catalog
//! --json-schema [TYPE]` prints the schemas.
//!
//! # Every catalog type, with example data
//!
//! The `data` of each event (the CloudEvents envelope around it carries
//! `type`, `id`, `source`, `time`). Each type's page lists its fields.
//!
//! | type | Rust type | example data |
//! |---|---|---|
//! | `decision.captured` | [`decision::DecisionCaptured`] | `{"decision_id": "abc123", "function_name": "claims_review", "confidence": 0.91}` |
//! | `decision.low_confidence` | [`decision::LowConfidence`] | `{"decision_id": "abc123", "confidence": 0.72, "threshold": 0.8}` |
//! | `decision.drift_detected` | [`decision::DriftDetected`] | `{"window": "1h", "drift_score": 0.18}` |
//! | `interaction_started` | [`interaction::InteractionStarted`] | `{"user_id": "user_123", "user_input": "Analyze this code", "timestamp": "2024-03-15T10:30:00Z"}` |
//! | `interaction_completed` | [`interaction::InteractionCompleted`] | `{"user_id": "user_123", "response": "Found two issues", "level": 4, "confidence": 0.95, "duration_ms": 120}` |
//! | `level_transition` | [`interaction::LevelTransition`] | `{"user_id": "user_123", "from_level": 3, "to_level": 4, "reason": "trust above 0.75"}` |
//! | `level_1_response` | [`interaction::Level1Response`] | `{"user_id": "user_123", "response": "The function returns None on empty input"}` |
//! | `level_2_clarification` | [`interaction::Level2Clarification`] | `{"user_id": "user_123", "question": "Should the retry also cover 429 responses?"}` |
//! | `level_3_proactive_suggestion` | [`interaction::Level3ProactiveSuggestion`] | `{"user_id": "user_123", "suggestion": "Add a test for the empty-input case", "confidence": 0.7}` |
//! | `level_4_prediction` | [`interaction::Level4Prediction`] | `{"user_id": "user_123", "prediction": "Schema modification may break mobile app", "confidence": 0.87, "timestamp": "2024-03-15T10:30:00Z", "tags": ["security"], "severity": "high", "recommendation": "Version the API before migrating"}` |
//! | `level_5_transformation` | [`interaction::Level5Transformation`] | `{"user_id": "user_123", "framework": "contract-first APIs", "description": "Generate clients from one schema"}` |
//! | `pattern_learned` | [`interaction::PatternLearned`] | `{"pattern_id": "p_17", "pattern_name": "sql_injection_detection", "confidence": 0.95, "user_id": "user_123"}` |
//! | `pattern_applied` | [`interaction::PatternApplied`] | `{"pattern_id": "p_17", "pattern_name": "sql_injection_detection", "confidence": 0.9, "success": true}` |
//! | `pattern_updated` | [`interaction::PatternUpdated`] | `{"pattern_id": "p_17", "old_confidence": 0.9, "new_confidence": 0.93}` |
//! | `trust_increased` | [`interaction::TrustIncreased`] | `{"user_id": "user_123", "old_trust": 0.5, "new_trust": 0.6, "delta": 0.1}` |
//! | `trust_decreased` | [`interaction::TrustDecreased`] | `{"user_id": "user_123", "old_trust": 0.6, "new_trust": 0.5, "delta": -0.1}` |
//! | `trust_milestone` | [`interaction::TrustMilestone`] | `{"user_id": "user_123", "trust_level": 0.76, "milestone": 0.75}` |
//! | `coordination_request` | [`interaction::CoordinationRequest`] | `{"requesting_agent": "reviewer", "target_agents": ["tester", "deployer"], "topic": "release 2.3", "priority": "high"}` |
//! | `conflict_detected` | [`interaction::ConflictDetected`] | `{"agent1": "migrator", "agent2": "backup", "resource": "orders_db", "severity": "high"}` |
//! | `handoff_initiated` | [`interaction::HandoffInitiated`] | `{"from_agent": "triage", "to_agent": "billing", "task": "refund request", "context": {"ticket": 7}}` |
//! | `prediction_failure` | [`interaction::PredictionFailure`] | `{"prediction_id": "pred_42", "reason": "rejected by user", "confidence": 0.6}` |
//! | `error` | [`interaction::InteractionError`] | `{"error_type": "TimeoutError", "error_message": "model call timed out after 30 s", "context": {"attempt": 3}}` |
//! | `evaluation.created` | [`evaluation::EvaluationCreated`] | `{"evaluation_id": "eval_xyz789", "project_id": "patient-triage", "config": {"samples": 500}}` |
//! | `evaluation.completed` | [`evaluation::EvaluationCompleted`] | `{"evaluation_id": "eval_xyz789", "project_id": "patient-triage", "name": "Daily Evaluation - March 15", "status": "completed", "summary": {"total_samples": 500, "triage_accuracy": 0.87, "safety_score": 0.99, "samples_for_review": 12}, "completed_at": "2024-03-15T10:30:00Z"}` |
//! | `evaluation.failed` | [`evaluation::EvaluationFailed`] | `{"evaluation_id": "eval_xyz789", "error": "dataset missing", "details": {"dataset": "ds_1"}}` |
//! | `sample.scored` | [`evaluation::SampleScored`] | `{"sample_id": "sample_001", "evaluation_id": "eval_xyz789", "scores": {"triage_accuracy": 1.0, "safety": 0.95}}` |
//! | `review.assigned` | [`evaluation::ReviewAssigned`] | `{"sample_id": "sample_001", "reviewer_id": "dr_chen"}` |
//! | `review.completed` | [`evaluation::ReviewCompleted`] | `{"sample_id": "sample_001", "review": {"reviewer_id": "dr_chen", "ai_correct": false, "notes": "should have been urgent"}}` |
//! | `alert.triggered` | [`evaluation::AlertTriggered`] | `{"alert_id": "alert_9", "name": "accuracy drop", "severity": "high", "details": {"metric": "triage_accuracy", "value": 0.71}}` |
//! | `safety.critical` | [`evaluation::SafetyCritical`] | `{"sample_id": "sample_001", "issue": {"type": "missed_emergency", "description": "chest pain triaged as routine", "score": 0.1}}` |
//!
//! # Emitting and receiving catalog events
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use hookbus::catalog::interaction::PatternLearned;
//! use hookbus::{Bus, Typed};
//!
//! let bus = Bus::new()?;
//! bus.on_typed(|p: Typed<PatternLearned>| println!("learned {} ({:.0}%)", p.pattern_name, p.confidence * 100.0))?
//!     .detach();
//! bus.emit(PatternLearned {
//!     pattern_id: "p_17".into(),
//!     pattern_name: "sql_injection_detection".into(),
//!     confidence: 0.95,
//!     user_id: "user_123".into(),
//! })?;
//! # bus.shutdown(std::time::Duration::from_secs(1)).await;
//! # Ok(()) }
//! ```
//!
//! # Your own domain events
//!
//! A domain event of your own is a struct and a one-line impl; it then works
//! everywhere a catalog event does:
//!
//! ```
//! use serde::{Deserialize, Serialize};
//!
//! /// A claim was paid.
//! #[derive(Serialize, Deserialize)]
//! struct ClaimPaid {
//!     claim_id: String,
//!     amount_cents: u64,
//! }
//!
//! impl hookbus::TypedEvent for ClaimPaid {
//!     const TYPE: &'static str = "claims.paid";
//! }
//!
//! let event = hookbus::Event::from_typed(&ClaimPaid { claim_id: "c_1".into(), amount_cents: 12_500 })?;
//! assert_eq!(event.event_type(), "claims.paid");
//! assert_eq!(event.data()["amount_cents"], 12_500);
//! # Ok::<(), hookbus::EventError>(())
//! ```

#[cfg(doc)]
use crate::TypedEvent;

/// Defines one catalog event: the struct, its `TypedEvent` impl, its
/// description, its field list and an example of its data (shown in the
/// docs, put in its JSON Schema, checked by the tests to read back as the
/// type).
macro_rules! catalog_event {
    (
        $(#[$meta:meta])*
        $name:ident = $ty:literal, $description:literal {
            $( $(#[$fmeta:meta])* $field:ident : $fty:ty ),* $(,)?
        }
        example: $example:literal
    ) => {
        $(#[$meta])*
        #[doc = ""]
        #[doc = concat!("Event type `", $ty, "`: ", $description, ".")]
        #[doc = ""]
        #[doc = "Example data:"]
        #[doc = ""]
        #[doc = concat!("```json\n", $example, "\n```")]
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
        #[cfg_attr(
            feature = "schema",
            schemars(
                title = $ty,
                description = concat!("The data of a `", $ty, "` event: ", $description, "."),
            )
        )]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $fty, )*
        }

        impl crate::TypedEvent for $name {
            const TYPE: &'static str = $ty;
        }

        impl $name {
            /// When the event is emitted.
            pub const DESCRIPTION: &'static str = $description;
            /// The keys of the event's data, in order.
            pub const FIELDS: &'static [&'static str] = &[$(stringify!($field)),*];
            /// An example of the event's data, as JSON.
            pub const EXAMPLE: &'static str = $example;
            /// This event's catalog entry.
            pub const ENTRY: $crate::catalog::CatalogEntry = $crate::catalog::CatalogEntry {
                event_type: $ty,
                description: $description,
                fields: Self::FIELDS,
                example: $example,
            };

            /// The JSON Schema (draft 2020-12) of the event's data, with
            /// [`EXAMPLE`](Self::EXAMPLE) under `examples`.
            #[cfg(feature = "schema")]
            #[cfg_attr(docsrs, doc(cfg(feature = "schema")))]
            pub fn json_schema() -> serde_json::Value {
                $crate::catalog::schema_with_example(schemars::schema_for!($name), $example)
            }
        }
    };
}

/// Lists every catalog event once: [`ALL`] and [`json_schema`] come from
/// this list.
macro_rules! catalog_index {
    ($($module:ident :: $name:ident),* $(,)?) => {
        /// Every event of the three catalogs.
        pub const ALL: &[CatalogEntry] = &[$($module::$name::ENTRY),*];

        /// The JSON Schema of the data of the catalog event `event_type`
        /// (see each type's `json_schema()`), if it is a catalog event.
        #[cfg(feature = "schema")]
        #[cfg_attr(docsrs, doc(cfg(feature = "schema")))]
        pub fn json_schema(event_type: &str) -> Option<serde_json::Value> {
            $(
                if event_type == <$module::$name as crate::TypedEvent>::TYPE {
                    return Some($module::$name::json_schema());
                }
            )*
            None
        }
    };
}

pub mod bus;
pub mod decision;
pub mod evaluation;
pub mod interaction;
#[cfg(feature = "schema")]
mod validate;

#[cfg(feature = "schema")]
#[cfg_attr(docsrs, doc(cfg(feature = "schema")))]
pub use validate::{SchemaViolation, validate};

/// One event type of a catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogEntry {
    /// The event type, e.g. `decision.low_confidence`.
    pub event_type: &'static str,
    /// When it is emitted.
    pub description: &'static str,
    /// The keys of its data.
    pub fields: &'static [&'static str],
    /// An example of its data, as JSON.
    pub example: &'static str,
}

/// Adds `example` (JSON) to a derived schema as its `examples`.
#[cfg(feature = "schema")]
fn schema_with_example(schema: schemars::Schema, example: &str) -> serde_json::Value {
    let mut schema = serde_json::Value::from(schema);
    // The examples are literals checked by the tests; one that did not parse
    // would be left out rather than fail a caller.
    if let (Some(obj), Ok(example)) = (
        schema.as_object_mut(),
        serde_json::from_str::<serde_json::Value>(example),
    ) {
        obj.insert(
            "examples".to_owned(),
            serde_json::Value::Array(vec![example]),
        );
    }
    schema
}

catalog_index! {
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
}

/// The catalog entry of `event_type`, if it is a standard event.
pub fn lookup(event_type: &str) -> Option<&'static CatalogEntry> {
    ALL.iter().find(|e| e.event_type == event_type)
}

#[cfg(test)]
mod tests {
    /// The table in this module's docs lists every catalog type with the
    /// example its entry carries.
    #[test]
    fn the_docs_table_lists_every_type_with_its_example() {
        let docs = include_str!("mod.rs");
        for e in super::ALL {
            let row = docs
                .lines()
                .find(|l| l.starts_with(&format!("//! | `{}` | [`", e.event_type)))
                .unwrap_or_else(|| panic!("no docs row for {}", e.event_type));
            assert!(
                row.ends_with(&format!("| `{}` |", e.example)),
                "{}: the docs row's example differs from the entry's:\n{row}",
                e.event_type
            );
        }
    }
}
