//! Two-way GitHub integration: a `pull_request.opened` delivery comes in
//! through the ingress, a closure on the bus reviews the pull request, and a
//! comment plus labels go back out through the GitHub client.
//!
//! ```text
//! cargo run --example github_pr_review
//!     # local stand-in for GitHub; the example sends itself a signed delivery
//! GITHUB_TOKEN=ghp_… GITHUB_REPO=owner/repo GITHUB_PR=12 cargo run --example github_pr_review
//!     # real GitHub: comments on and labels pull request 12 of owner/repo
//! ```
//!
//! In production the ingress listens on a public URL registered as the
//! repository's webhook (content type `application/json`, the same secret).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use hookbus::ingress::Ingress;
use hookbus::integrations::GitHubClient;
use hookbus::signature::{BodySignature, Secret};
use hookbus::verify::Verifier;
use hookbus::{Bus, Event};
use serde_json::json;
use tokio::sync::mpsc;

const WEBHOOK_SECRET: &str = "It's a Secret to Everybody";

/// A stand-in for the GitHub endpoints the review uses, checking the token.
async fn local_github(token: &'static str) -> String {
    let app = Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: axum::body::Bytes| async move {
            if headers.get("authorization").and_then(|v| v.to_str().ok())
                != Some(&format!("Bearer {token}"))
            {
                return (StatusCode::UNAUTHORIZED, r#"{"message":"Bad credentials"}"#).into_response();
            }
            println!("[github] {method} {} {}", uri.path(), String::from_utf8_lossy(&body));
            let path = uri.path();
            if path.ends_with("/files") {
                let files = json!([
                    {"filename": "src/db.rs", "status": "modified", "additions": 12, "deletions": 3, "changes": 15,
                     "patch": "+ let q = format!(\"SELECT * FROM users WHERE id = {}\", id);"},
                    {"filename": "README.md", "status": "modified", "additions": 1, "deletions": 0, "changes": 1}
                ]);
                (StatusCode::OK, files.to_string()).into_response()
            } else if path.ends_with("/comments") {
                let c = json!({"id": 1, "html_url": "https://github.com/octo/repo/pull/42#issuecomment-1"});
                (StatusCode::CREATED, c.to_string()).into_response()
            } else if path.ends_with("/labels") {
                // GitHub answers with every label the issue now has.
                let sent: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let labels: Vec<_> = sent["labels"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|l| json!({"name": l}))
                    .collect();
                (StatusCode::OK, json!(labels).to_string()).into_response()
            } else {
                (StatusCode::OK, "diff --git a/src/db.rs b/src/db.rs\n").into_response()
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// A toy review: flags string-built SQL in added lines.
fn review(files: &[hookbus::integrations::PrFile]) -> (String, bool) {
    let risky: Vec<&str> = files
        .iter()
        .filter(|f| {
            f.patch
                .as_deref()
                .is_some_and(|p| p.contains("SELECT") && p.contains("format!"))
        })
        .map(|f| f.filename.as_str())
        .collect();
    let mut text = format!("## 🤖 Code review\n{} file(s) changed.\n", files.len());
    for f in &risky {
        text.push_str(&format!(
            "- `{f}` builds SQL from a string: use bound parameters.\n"
        ));
    }
    (text, !risky.is_empty())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let real = match (std::env::var("GITHUB_TOKEN"), std::env::var("GITHUB_REPO")) {
        (Ok(t), Ok(r)) => Some((t, r)),
        _ => None,
    };
    let (github, pr_number) = match &real {
        Some((token, repo)) => {
            let pr = std::env::var("GITHUB_PR")
                .ok()
                .and_then(|p| p.parse().ok())
                .unwrap_or(1);
            (GitHubClient::new(token.as_str(), repo)?, pr)
        }
        None => {
            let base = local_github("ghp_stand_in_token").await;
            (
                GitHubClient::new("ghp_stand_in_token", "octo/repo")?.base_url(&base)?,
                42,
            )
        }
    };
    let github = Arc::new(github);

    // The bus reacts to opened pull requests.
    let bus = Bus::new()?;
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let gh = github.clone();
    bus.on_async("github.pull_request.opened", move |event: Arc<Event>| {
        let gh = gh.clone();
        let done = done_tx.clone();
        async move {
            let outcome = async {
                let pr = event.data()["number"].as_u64().unwrap_or_default();
                let files = gh.pr_files(pr).await?;
                let diff = gh.pr_diff(pr).await?;
                println!(
                    "[review] PR #{pr}: {} file(s), {} byte diff",
                    files.len(),
                    diff.len()
                );
                let (comment, risky) = review(&files);
                let c = gh.comment_on_pr(pr, &comment).await?;
                println!("[review] commented: {}", c.html_url);
                if risky {
                    gh.add_labels(pr, &["⚠️ empathy-prediction", "needs-review"])
                        .await?;
                    println!("[review] labelled");
                }
                Ok::<_, hookbus::integrations::IntegrationError>(())
            }
            .await;
            let _ = done.send(outcome.as_ref().map_err(|e| e.to_string()).err());
            outcome
        }
    })?
    .detach();

    let app = Ingress::new(bus.clone())
        .github("/webhooks/github", Verifier::github(WEBHOOK_SECRET))
        .into_router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let ingress = format!("http://{}/webhooks/github", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    println!("ingress listening on {ingress}");

    // What GitHub sends when the pull request is opened.
    let delivery = json!({
        "action": "opened",
        "number": pr_number,
        "pull_request": {"title": "Add user lookup", "user": {"login": "octocat"}},
        "repository": {"full_name": github.repo()}
    })
    .to_string();
    let signature = BodySignature::github().sign(&Secret::new(WEBHOOK_SECRET), delivery.as_bytes());
    let resp = reqwest::Client::new()
        .post(&ingress)
        .header("content-type", "application/json")
        .header("X-GitHub-Event", "pull_request")
        .header("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
        .header("X-Hub-Signature-256", signature)
        .body(delivery)
        .send()
        .await?;
    println!("delivery -> {} {}", resp.status(), resp.text().await?);

    match done_rx.recv().await {
        Some(None) => println!("review posted"),
        Some(Some(err)) => println!("review failed: {err}"),
        None => println!("the subscriber went away"),
    }
    let report = bus.shutdown(Duration::from_secs(5)).await;
    print!("{report}");
    Ok(())
}
