//! Ready-made webhooks for common services, built on templates, with their
//! URL and auth-header conventions. Each returns a [`WebhookBuilder`] to adjust
//! further (`.events(..)`, `.filter(..)`, `.url(..)` for a stand-in server…).
//!
//! The text arguments are templates themselves (see
//! [`Template`](super::Template)): `"Prediction: {prediction} ({confidence:.0%})"`.
//! Tokens and keys go into headers (or, for PagerDuty, the body) as literals.
//!
//! ```
//! use hookbus::webhook::presets;
//!
//! let slack = presets::slack(
//!     "https://hooks.slack.com/services/T000/B000/XXXX",
//!     "*Prediction:* {prediction}\n*Confidence:* {confidence:.0%}",
//! )
//! .events(["level_4_prediction"])
//! .filter("confidence > 0.85")
//! .build()?;
//! let gh = presets::github_issue(
//!     "octo/repo",
//!     "ghp_token",
//!     "Prediction: {{prediction | truncate(50)}}",
//!     "**Confidence:** {confidence:.0%}",
//!     &["empathy-prediction", "needs-review"],
//! )
//! .build()?;
//! # let _ = (slack, gh);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use base64::Engine;
use serde_json::{Value, json};

use super::builder::WebhookBuilder;

/// Datadog's events API.
pub const DATADOG_EVENTS_URL: &str = "https://api.datadoghq.com/api/v1/events";
/// PagerDuty Events API v2.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";
/// GitHub's REST API.
pub const GITHUB_API_URL: &str = "https://api.github.com";

/// A literal for a template: braces escaped so they are not placeholders.
fn lit(s: &str) -> Value {
    Value::String(s.replace('{', "\\{").replace('}', "\\}"))
}

/// A Slack incoming webhook: `text` plus one mrkdwn section block.
pub fn slack(url: &str, text: &str) -> WebhookBuilder {
    WebhookBuilder::new(url).name("slack").template(json!({
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}}
        ]
    }))
}

/// A Discord webhook: `{"content": …}`.
pub fn discord(url: &str, content: &str) -> WebhookBuilder {
    WebhookBuilder::new(url)
        .name("discord")
        .template(json!({ "content": content }))
}

/// A Microsoft Teams incoming webhook (MessageCard).
pub fn teams(url: &str, title: &str, text: &str) -> WebhookBuilder {
    WebhookBuilder::new(url).name("teams").template(json!({
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": title,
        "title": title,
        "text": text,
    }))
}

/// A Datadog event (`DD-API-KEY` header), tagged with the event type.
pub fn datadog(api_key: &str, title: &str, text: &str) -> WebhookBuilder {
    WebhookBuilder::new(DATADOG_EVENTS_URL)
        .name("datadog")
        .header("DD-API-KEY", api_key)
        .template(json!({
            "title": title,
            "text": text,
            "priority": "normal",
            "tags": ["source:hookbus", "event_type:{{event.type}}"],
            "alert_type": "info",
        }))
}

/// A PagerDuty Events v2 trigger, deduplicated on the event id, with the
/// event data as custom details. `severity` is `critical`, `error`,
/// `warning` or `info` (or a template).
pub fn pagerduty(routing_key: &str, summary: &str, severity: &str) -> WebhookBuilder {
    WebhookBuilder::new(PAGERDUTY_EVENTS_URL)
        .name("pagerduty")
        .template(json!({
            "routing_key": lit(routing_key),
            "event_action": "trigger",
            "dedup_key": "{{event.id}}",
            "payload": {
                "summary": summary,
                "source": "{{event.source}}",
                "severity": severity,
                "custom_details": "{{data | json}}",
            },
        }))
}

/// GitHub "create an issue" in `repo` (`owner/name`) with a token.
pub fn github_issue(
    repo: &str,
    token: &str,
    title: &str,
    body: &str,
    labels: &[&str],
) -> WebhookBuilder {
    WebhookBuilder::new(format!("{GITHUB_API_URL}/repos/{repo}/issues"))
        .name("github-issue")
        .header("Authorization", format!("Bearer {token}"))
        .header("Accept", "application/vnd.github+json")
        .header("X-GitHub-Api-Version", "2022-11-28")
        .template(json!({
            "title": title,
            "body": body,
            "labels": labels.iter().map(|l| lit(l)).collect::<Vec<_>>(),
        }))
}

/// JIRA "create an issue" (REST API v2, basic auth with an API token).
pub fn jira_issue(
    base_url: &str,
    email: &str,
    api_token: &str,
    project_key: &str,
    summary: &str,
    description: &str,
) -> WebhookBuilder {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{email}:{api_token}"));
    WebhookBuilder::new(format!(
        "{}/rest/api/2/issue",
        base_url.trim_end_matches('/')
    ))
    .name("jira-issue")
    .header("Authorization", format!("Basic {auth}"))
    .template(json!({
        "fields": {
            "project": {"key": lit(project_key)},
            "summary": summary,
            "description": description,
            "issuetype": {"name": "Task"},
        }
    }))
}
