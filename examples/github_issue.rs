//! Open a GitHub issue for each high-confidence prediction, with the
//! GitHub-issue preset.
//!
//! ```text
//! cargo run --example github_issue                                    # local stand-in for GitHub
//! GITHUB_TOKEN=ghp_… GITHUB_REPO=owner/repo cargo run --example github_issue   # real GitHub
//! ```

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use hookbus::Event;
use hookbus::webhook::presets;
use serde_json::json;

/// A stand-in for `POST /repos/{owner}/{repo}/issues` that checks the token
/// and answers like GitHub.
async fn local_github(expected_token: &'static str) -> String {
    let app = Router::new().fallback(
        move |uri: Uri, headers: HeaderMap, body: axum::body::Bytes| async move {
            let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
            if auth != Some(&format!("Bearer {expected_token}")) {
                return (StatusCode::UNAUTHORIZED, "bad credentials").into_response();
            }
            let issue: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            println!("[github] {} {}", uri.path(), issue);
            (
                StatusCode::CREATED,
                axum::Json(json!({"number": 789, "title": issue["title"], "html_url": "https://github.com/octo/repo/issues/789"})),
            )
                .into_response()
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (token, repo, base) = match (std::env::var("GITHUB_TOKEN"), std::env::var("GITHUB_REPO")) {
        (Ok(t), Ok(r)) => (t, r, None),
        _ => (
            "local-token".to_owned(),
            "octo/repo".to_owned(),
            Some(local_github("local-token").await),
        ),
    };
    let mut builder = presets::github_issue(
        &repo,
        &token,
        "🔮 Prediction: {{prediction | truncate(50)}}",
        "## Empathy Level 4 Prediction\n\n**Prediction:** {prediction}\n**Confidence:** {confidence:.0%}\n\n- User: {user_id}\n- Timestamp: {{event.time}}\n\n**Recommended Action:**\n{{recommendation | default('Review and address this prediction')}}\n\n---\n*This issue was automatically created by hookbus*",
        &["empathy-prediction", "needs-review"],
    )
    .events(["level_4_prediction"])
    .filter("confidence > 0.85");
    if let Some(base) = base {
        builder = builder.url(format!("{base}/repos/{repo}/issues"));
    }
    let github = builder.build_emitter()?;

    let event = Arc::new(Event::new(
        "level_4_prediction",
        json!({
            "prediction": "Deploying the authentication refactor may lock out SSO users",
            "confidence": 0.92,
            "user_id": "user_123",
        }),
    )?);
    let outcome = github.emit(event).await;
    println!(
        "{:?}: HTTP {:?} after {} attempt(s) in {:?}\n{}",
        outcome.status,
        outcome.status_code,
        outcome.attempts,
        outcome.latency,
        outcome.response_excerpt.unwrap_or_default()
    );
    Ok(())
}
