//! Decision events (the Briefcase guide): what a decision-making service
//! reports about its decisions.

catalog_event! {
    /// A decision was recorded.
    DecisionCaptured = "decision.captured", "a decision record is captured by a handler" {
        /// The decision's id (also the Kafka record key).
        decision_id: String,
        /// The function that made the decision, e.g. `claims_review`.
        function_name: Option<String>,
        /// The decision's confidence, 0..=1.
        confidence: Option<f64>,
    }
    example: r#"{"decision_id": "abc123", "function_name": "claims_review", "confidence": 0.91}"#
}

catalog_event! {
    /// A decision's confidence fell below the routing threshold
    /// (what [`emit_low_confidence`](crate::global::emit_low_confidence) emits).
    LowConfidence = "decision.low_confidence", "confidence is below the routing threshold" {
        /// The decision's id.
        decision_id: String,
        /// The decision's confidence, 0..=1.
        confidence: f64,
        /// The threshold it fell below, if known.
        threshold: Option<f64>,
    }
    example: r#"{"decision_id": "abc123", "confidence": 0.72, "threshold": 0.8}"#
}

catalog_event! {
    /// Statistical drift across decisions (what
    /// [`emit_drift_detected`](crate::global::emit_drift_detected) emits).
    DriftDetected = "decision.drift_detected", "statistical drift is detected across decisions" {
        /// The window the drift was measured over, e.g. `1h`.
        window: String,
        /// The drift score.
        drift_score: f64,
    }
    example: r#"{"window": "1h", "drift_score": 0.18}"#
}
