//! Interaction events (the Empathy event catalog), with the data fields the
//! guide lists for each. The guide lists no fields for the level 1, 2, 3 and
//! 5 events; hookbus gives them the user and the content of the response,
//! and gives `level_4_prediction` the fields the guide's handlers read.

use serde_json::Value;
use time::OffsetDateTime;

catalog_event! {
    /// A user started an interaction.
    InteractionStarted = "interaction_started", "user started interaction" {
        /// The user.
        user_id: String,
        /// What the user said or asked.
        user_input: String,
        /// When it started (RFC 3339).
        #[serde(with = "time::serde::rfc3339")]
        #[cfg_attr(feature = "schema", schemars(with = "String", extend("format" = "date-time")))]
        timestamp: OffsetDateTime,
    }
    example: r#"{"user_id": "user_123", "user_input": "Analyze this code", "timestamp": "2024-03-15T10:30:00Z"}"#
}

catalog_event! {
    /// An interaction completed.
    InteractionCompleted = "interaction_completed", "interaction completed" {
        /// The user.
        user_id: String,
        /// The response given.
        response: String,
        /// The empathy level of the response, 1..=5.
        level: u8,
        /// The confidence of the response, 0..=1.
        confidence: f64,
        /// How long the interaction took, in milliseconds.
        duration_ms: u64,
    }
    example: r#"{"user_id": "user_123", "response": "Found two issues", "level": 4, "confidence": 0.95, "duration_ms": 120}"#
}

catalog_event! {
    /// The empathy level changed.
    LevelTransition = "level_transition", "empathy level changed" {
        /// The user.
        user_id: String,
        /// The level before, 1..=5.
        from_level: u8,
        /// The level after, 1..=5.
        to_level: u8,
        /// Why it changed.
        reason: String,
    }
    example: r#"{"user_id": "user_123", "from_level": 3, "to_level": 4, "reason": "trust above 0.75"}"#
}

catalog_event! {
    /// A reactive response (level 1).
    Level1Response = "level_1_response", "reactive response (level 1)" {
        /// The user.
        user_id: String,
        /// The response.
        response: String,
    }
    example: r#"{"user_id": "user_123", "response": "The function returns None on empty input"}"#
}

catalog_event! {
    /// A guided clarification (level 2).
    Level2Clarification = "level_2_clarification", "guided clarification (level 2)" {
        /// The user.
        user_id: String,
        /// The clarifying question asked.
        question: String,
    }
    example: r#"{"user_id": "user_123", "question": "Should the retry also cover 429 responses?"}"#
}

catalog_event! {
    /// A proactive suggestion (level 3).
    Level3ProactiveSuggestion = "level_3_proactive_suggestion", "proactive suggestion (level 3)" {
        /// The user.
        user_id: String,
        /// The suggestion.
        suggestion: String,
        /// Its confidence, 0..=1.
        confidence: f64,
    }
    example: r#"{"user_id": "user_123", "suggestion": "Add a test for the empty-input case", "confidence": 0.7}"#
}

catalog_event! {
    /// An anticipatory prediction (level 4): what the guide's Slack, GitHub and
    /// JIRA integrations react to.
    Level4Prediction = "level_4_prediction", "anticipatory prediction (level 4)" {
        /// The user.
        user_id: String,
        /// What is predicted, e.g. "Schema modification may break mobile app".
        prediction: String,
        /// Its confidence, 0..=1.
        confidence: f64,
        /// When it was made (RFC 3339).
        #[serde(with = "time::serde::rfc3339")]
        #[cfg_attr(feature = "schema", schemars(with = "String", extend("format" = "date-time")))]
        timestamp: OffsetDateTime,
        /// Tags such as `security` or `bug` (empty when none).
        #[serde(default)]
        tags: Vec<String>,
        /// Severity, e.g. `high`.
        severity: Option<String>,
        /// The recommended action.
        recommendation: Option<String>,
    }
    example: r#"{"user_id": "user_123", "prediction": "Schema modification may break mobile app", "confidence": 0.87, "timestamp": "2024-03-15T10:30:00Z", "tags": ["security"], "severity": "high", "recommendation": "Version the API before migrating"}"#
}

catalog_event! {
    /// A transformative framework (level 5).
    Level5Transformation = "level_5_transformation", "transformative framework (level 5)" {
        /// The user.
        user_id: String,
        /// The framework's name.
        framework: String,
        /// What it changes.
        description: String,
    }
    example: r#"{"user_id": "user_123", "framework": "contract-first APIs", "description": "Generate clients from one schema"}"#
}

catalog_event! {
    /// A new pattern was learned.
    PatternLearned = "pattern_learned", "new pattern learned" {
        /// The pattern's id.
        pattern_id: String,
        /// The pattern's name, e.g. `sql_injection_detection`.
        pattern_name: String,
        /// Its confidence, 0..=1.
        confidence: f64,
        /// The user it was learned from.
        user_id: String,
    }
    example: r#"{"pattern_id": "p_17", "pattern_name": "sql_injection_detection", "confidence": 0.95, "user_id": "user_123"}"#
}

catalog_event! {
    /// A pattern was applied to an interaction.
    PatternApplied = "pattern_applied", "pattern applied to interaction" {
        /// The pattern's id.
        pattern_id: String,
        /// The pattern's name.
        pattern_name: String,
        /// Its confidence, 0..=1.
        confidence: f64,
        /// Whether applying it succeeded.
        success: bool,
    }
    example: r#"{"pattern_id": "p_17", "pattern_name": "sql_injection_detection", "confidence": 0.9, "success": true}"#
}

catalog_event! {
    /// A pattern's confidence was updated.
    PatternUpdated = "pattern_updated", "pattern confidence updated" {
        /// The pattern's id.
        pattern_id: String,
        /// The confidence before, 0..=1.
        old_confidence: f64,
        /// The confidence after, 0..=1.
        new_confidence: f64,
    }
    example: r#"{"pattern_id": "p_17", "old_confidence": 0.9, "new_confidence": 0.93}"#
}

catalog_event! {
    /// Trust increased.
    TrustIncreased = "trust_increased", "trust level increased" {
        /// The user.
        user_id: String,
        /// Trust before, 0..=1.
        old_trust: f64,
        /// Trust after, 0..=1.
        new_trust: f64,
        /// `new_trust - old_trust`.
        delta: f64,
    }
    example: r#"{"user_id": "user_123", "old_trust": 0.5, "new_trust": 0.6, "delta": 0.1}"#
}

catalog_event! {
    /// Trust decreased.
    TrustDecreased = "trust_decreased", "trust level decreased" {
        /// The user.
        user_id: String,
        /// Trust before, 0..=1.
        old_trust: f64,
        /// Trust after, 0..=1.
        new_trust: f64,
        /// `new_trust - old_trust` (negative).
        delta: f64,
    }
    example: r#"{"user_id": "user_123", "old_trust": 0.6, "new_trust": 0.5, "delta": -0.1}"#
}

catalog_event! {
    /// A trust milestone was reached.
    TrustMilestone = "trust_milestone", "trust milestone reached (e.g. 0.5, 0.75, 0.9)" {
        /// The user.
        user_id: String,
        /// The trust level now, 0..=1.
        trust_level: f64,
        /// The milestone crossed, e.g. 0.75.
        milestone: f64,
    }
    example: r#"{"user_id": "user_123", "trust_level": 0.76, "milestone": 0.75}"#
}

catalog_event! {
    /// An agent asked other agents to coordinate (multi-agent).
    CoordinationRequest = "coordination_request", "agent requested coordination" {
        /// The agent asking.
        requesting_agent: String,
        /// The agents asked.
        target_agents: Vec<String>,
        /// What about.
        topic: String,
        /// Priority, e.g. `high`.
        priority: String,
    }
    example: r#"{"requesting_agent": "reviewer", "target_agents": ["tester", "deployer"], "topic": "release 2.3", "priority": "high"}"#
}

catalog_event! {
    /// Two agents conflict over a resource.
    ConflictDetected = "conflict_detected", "conflict detected between agents" {
        /// One agent.
        agent1: String,
        /// The other agent.
        agent2: String,
        /// The contested resource.
        resource: String,
        /// Severity, e.g. `high`.
        severity: String,
    }
    example: r#"{"agent1": "migrator", "agent2": "backup", "resource": "orders_db", "severity": "high"}"#
}

catalog_event! {
    /// A task is handed from one agent to another.
    HandoffInitiated = "handoff_initiated", "task handoff between agents" {
        /// The agent handing off.
        from_agent: String,
        /// The agent taking over.
        to_agent: String,
        /// The task.
        task: String,
        /// Whatever context travels with it (any JSON).
        context: Value,
    }
    example: r#"{"from_agent": "triage", "to_agent": "billing", "task": "refund request", "context": {"ticket": 7}}"#
}

catalog_event! {
    /// A prediction was incorrect or rejected.
    PredictionFailure = "prediction_failure", "prediction was incorrect or rejected" {
        /// The prediction's id.
        prediction_id: String,
        /// Why it failed.
        reason: String,
        /// The confidence it had, 0..=1.
        confidence: f64,
    }
    example: r#"{"prediction_id": "pred_42", "reason": "rejected by user", "confidence": 0.6}"#
}

catalog_event! {
    /// An error occurred during an interaction.
    InteractionError = "error", "error occurred during interaction" {
        /// The kind of error, e.g. `TimeoutError`.
        error_type: String,
        /// The error message.
        error_message: String,
        /// Context (any JSON).
        context: Value,
    }
    example: r#"{"error_type": "TimeoutError", "error_message": "model call timed out after 30 s", "context": {"attempt": 3}}"#
}
