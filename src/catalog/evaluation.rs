//! Evaluation events (the Rubric webhook docs), with the payloads the docs
//! describe and the fields their example handlers read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

catalog_event! {
    /// An evaluation started.
    EvaluationCreated = "evaluation.created", "new evaluation started" {
        /// The evaluation's id, e.g. `eval_xyz789`.
        evaluation_id: String,
        /// The project, e.g. `patient-triage`.
        project_id: Option<String>,
        /// Its configuration (any JSON).
        config: Value,
    }
    example: r#"{"evaluation_id": "eval_xyz789", "project_id": "patient-triage", "config": {"samples": 500}}"#
}

catalog_event! {
    /// An evaluation finished.
    EvaluationCompleted = "evaluation.completed", "evaluation finished" {
        /// The evaluation's id.
        evaluation_id: String,
        /// The project.
        project_id: Option<String>,
        /// Its name, e.g. "Daily Evaluation - March 15".
        name: Option<String>,
        /// Its status, `completed`.
        status: String,
        /// The results summary, e.g. `total_samples`, `triage_accuracy`,
        /// `safety_score`, `samples_for_review`.
        summary: Map<String, Value>,
        /// When it finished (RFC 3339).
        #[serde(with = "time::serde::rfc3339")]
        #[cfg_attr(feature = "schema", schemars(with = "String", extend("format" = "date-time")))]
        completed_at: OffsetDateTime,
    }
    example: r#"{"evaluation_id": "eval_xyz789", "project_id": "patient-triage", "name": "Daily Evaluation - March 15", "status": "completed", "summary": {"total_samples": 500, "triage_accuracy": 0.87, "safety_score": 0.99, "samples_for_review": 12}, "completed_at": "2024-03-15T10:30:00Z"}"#
}

catalog_event! {
    /// An evaluation errored.
    EvaluationFailed = "evaluation.failed", "evaluation errored" {
        /// The evaluation's id.
        evaluation_id: String,
        /// What went wrong.
        error: String,
        /// Error details (any JSON).
        details: Value,
    }
    example: r#"{"evaluation_id": "eval_xyz789", "error": "dataset missing", "details": {"dataset": "ds_1"}}"#
}

catalog_event! {
    /// A sample received scores.
    SampleScored = "sample.scored", "sample received score" {
        /// The sample's id.
        sample_id: String,
        /// The evaluation it belongs to.
        evaluation_id: Option<String>,
        /// Scores by metric name.
        scores: BTreeMap<String, f64>,
    }
    example: r#"{"sample_id": "sample_001", "evaluation_id": "eval_xyz789", "scores": {"triage_accuracy": 1.0, "safety": 0.95}}"#
}

catalog_event! {
    /// A sample was assigned for human review.
    ReviewAssigned = "review.assigned", "sample assigned for review" {
        /// The sample's id.
        sample_id: String,
        /// The reviewer.
        reviewer_id: String,
    }
    example: r#"{"sample_id": "sample_001", "reviewer_id": "dr_chen"}"#
}

/// A human review, as carried by [`ReviewCompleted`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Review {
    /// The reviewer.
    pub reviewer_id: String,
    /// Whether the AI's answer was correct.
    pub ai_correct: bool,
    /// Free-form notes.
    pub notes: Option<String>,
}

catalog_event! {
    /// A human review was submitted.
    ReviewCompleted = "review.completed", "human review submitted" {
        /// The sample's id.
        sample_id: String,
        /// The review.
        review: Review,
    }
    example: r#"{"sample_id": "sample_001", "review": {"reviewer_id": "dr_chen", "ai_correct": false, "notes": "should have been urgent"}}"#
}

catalog_event! {
    /// A monitoring alert fired.
    AlertTriggered = "alert.triggered", "monitoring alert fired" {
        /// The alert's id.
        alert_id: String,
        /// The alert's name.
        name: String,
        /// Severity, e.g. `high` or `critical`.
        severity: String,
        /// Alert details (any JSON).
        details: Value,
    }
    example: r#"{"alert_id": "alert_9", "name": "accuracy drop", "severity": "high", "details": {"metric": "triage_accuracy", "value": 0.71}}"#
}

/// A safety issue, as carried by [`SafetyCritical`]: its type, a
/// description, and any further details (kept as they come).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SafetyIssue {
    /// The issue's type (the JSON key is `type`).
    #[serde(rename = "type")]
    pub kind: String,
    /// What happened.
    pub description: String,
    /// Any further keys.
    #[serde(flatten)]
    pub details: Map<String, Value>,
}

catalog_event! {
    /// A critical safety issue: immediate action required.
    SafetyCritical = "safety.critical", "critical safety issue detected" {
        /// The sample's id.
        sample_id: String,
        /// The issue.
        issue: SafetyIssue,
    }
    example: r#"{"sample_id": "sample_001", "issue": {"type": "missed_emergency", "description": "chest pain triaged as routine", "score": 0.1}}"#
}
