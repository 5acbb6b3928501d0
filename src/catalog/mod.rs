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
/// description and its field list.
macro_rules! catalog_event {
    (
        $(#[$meta:meta])*
        $name:ident = $ty:literal, $description:literal {
            $( $(#[$fmeta:meta])* $field:ident : $fty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[doc = ""]
        #[doc = concat!("Event type `", $ty, "`: ", $description, ".")]
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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
            /// This event's catalog entry.
            pub const ENTRY: $crate::catalog::CatalogEntry = $crate::catalog::CatalogEntry {
                event_type: $ty,
                description: $description,
                fields: Self::FIELDS,
            };
        }
    };
}

pub mod decision;
pub mod evaluation;
pub mod interaction;

/// One event type of a catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogEntry {
    /// The event type, e.g. `decision.low_confidence`.
    pub event_type: &'static str,
    /// When it is emitted.
    pub description: &'static str,
    /// The keys of its data.
    pub fields: &'static [&'static str],
}

/// Every event of the three catalogs.
pub const ALL: &[CatalogEntry] = &[
    decision::DecisionCaptured::ENTRY,
    decision::LowConfidence::ENTRY,
    decision::DriftDetected::ENTRY,
    interaction::InteractionStarted::ENTRY,
    interaction::InteractionCompleted::ENTRY,
    interaction::LevelTransition::ENTRY,
    interaction::Level1Response::ENTRY,
    interaction::Level2Clarification::ENTRY,
    interaction::Level3ProactiveSuggestion::ENTRY,
    interaction::Level4Prediction::ENTRY,
    interaction::Level5Transformation::ENTRY,
    interaction::PatternLearned::ENTRY,
    interaction::PatternApplied::ENTRY,
    interaction::PatternUpdated::ENTRY,
    interaction::TrustIncreased::ENTRY,
    interaction::TrustDecreased::ENTRY,
    interaction::TrustMilestone::ENTRY,
    interaction::CoordinationRequest::ENTRY,
    interaction::ConflictDetected::ENTRY,
    interaction::HandoffInitiated::ENTRY,
    interaction::PredictionFailure::ENTRY,
    interaction::InteractionError::ENTRY,
    evaluation::EvaluationCreated::ENTRY,
    evaluation::EvaluationCompleted::ENTRY,
    evaluation::EvaluationFailed::ENTRY,
    evaluation::SampleScored::ENTRY,
    evaluation::ReviewAssigned::ENTRY,
    evaluation::ReviewCompleted::ENTRY,
    evaluation::AlertTriggered::ENTRY,
    evaluation::SafetyCritical::ENTRY,
];

/// The catalog entry of `event_type`, if it is a standard event.
pub fn lookup(event_type: &str) -> Option<&'static CatalogEntry> {
    ALL.iter().find(|e| e.event_type == event_type)
}
