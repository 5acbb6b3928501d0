#![cfg(all(feature = "integrations", feature = "webhook"))]
//! The integration clients against local HTTP servers that check method,
//! path, auth header and JSON body. (The shared test receiver in
//! tests/webhook_support needs the webhook feature too.)

mod webhook_support;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use base64::Engine;
use hookbus::integrations::{
    GitHubClient, IntegrationError, JiraClient, JiraIssue, JiraUser, NewIssue, SlackClient,
    SlackMessage,
};
use hookbus::signature::{Secret, SlackSignature};
use hookbus::verify::VerifyError;
use serde_json::json;
use webhook_support::Receiver;

const TOKEN: &str = "ghp_thisIsNotARealToken0123456789";

/// A stand-in answering `status` with `body` to every request.
async fn stand_in(status: u16, body: serde_json::Value) -> Receiver {
    Receiver::start(move |_, _| {
        (
            StatusCode::from_u16(status).unwrap(),
            [("content-type", "application/json")],
            body.to_string(),
        )
            .into_response()
    })
    .await
}

fn base(rx: &Receiver) -> String {
    format!("http://{}", rx.addr)
}

fn github(rx: &Receiver) -> GitHubClient {
    GitHubClient::new(TOKEN, "octo/repo")
        .unwrap()
        .base_url(&base(rx))
        .unwrap()
}

#[tokio::test]
async fn github_create_issue_with_labels_and_assignees() {
    let mut rx = stand_in(
        201,
        json!({"number": 789, "html_url": "https://github.com/octo/repo/issues/789", "title": "t"}),
    )
    .await;
    let issue = github(&rx)
        .create_issue(
            &NewIssue::new("🔮 Prediction: schema change")
                .body("**Confidence:** 87%")
                .labels(["empathy-prediction", "needs-review"])
                .assignees(["tech-lead"]),
        )
        .await
        .unwrap();
    assert_eq!(issue.number, 789);
    let r = rx.next().await;
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/repos/octo/repo/issues");
    assert_eq!(r.header("authorization"), Some(&*format!("Bearer {TOKEN}")));
    assert_eq!(r.header("accept"), Some("application/vnd.github+json"));
    assert_eq!(r.header("x-github-api-version"), Some("2022-11-28"));
    assert!(r.header("user-agent").unwrap().starts_with("hookbus/"));
    assert_eq!(
        r.json(),
        json!({
            "title": "🔮 Prediction: schema change",
            "body": "**Confidence:** 87%",
            "labels": ["empathy-prediction", "needs-review"],
            "assignees": ["tech-lead"]
        })
    );
}

#[tokio::test]
async fn github_comment_and_labels_on_a_pull_request() {
    let mut rx = Receiver::start(|r, _| {
        let body = if r.path.ends_with("/comments") {
            json!({"id": 1, "html_url": "https://github.com/octo/repo/pull/42#issuecomment-1"})
        } else {
            json!([{"name": "needs-review"}, {"name": "⚠️ empathy-prediction"}])
        };
        (StatusCode::CREATED, body.to_string()).into_response()
    })
    .await;
    let gh = github(&rx);
    let c = gh
        .comment_on_pr(42, "## 🤖 Review\nLooks good")
        .await
        .unwrap();
    assert_eq!(c.id, 1);
    let labels = gh
        .add_labels(42, &["⚠️ empathy-prediction", "needs-review"])
        .await
        .unwrap();
    assert_eq!(labels.len(), 2);

    let r = rx.next().await;
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/repos/octo/repo/issues/42/comments")
    );
    assert_eq!(r.json(), json!({"body": "## 🤖 Review\nLooks good"}));
    assert_eq!(r.header("authorization"), Some(&*format!("Bearer {TOKEN}")));
    let r = rx.next().await;
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/repos/octo/repo/issues/42/labels")
    );
    assert_eq!(
        r.json(),
        json!({"labels": ["⚠️ empathy-prediction", "needs-review"]})
    );
}

#[tokio::test]
async fn github_pr_files_follow_pages_and_diff_asks_for_the_diff_media_type() {
    let mut rx = Receiver::start(|r, n| {
        if r.path.ends_with("/files") {
            // Page 1 is full (100 files), page 2 has one: two requests.
            let count = if n == 0 { 100 } else { 1 };
            let files: Vec<_> = (0..count)
                .map(|i| json!({"filename": format!("src/f{n}_{i}.rs"), "status": "modified", "additions": 3, "deletions": 1, "changes": 4, "patch": "@@ -1 +1 @@"}))
                .collect();
            (StatusCode::OK, json!(files).to_string()).into_response()
        } else {
            (StatusCode::OK, "diff --git a/x b/x\n").into_response()
        }
    })
    .await;
    let gh = github(&rx);
    let files = gh.pr_files(42).await.unwrap();
    assert_eq!(files.len(), 101);
    assert_eq!(files[100].filename, "src/f1_0.rs");
    assert_eq!(files[0].additions, 3);
    for _ in 0..2 {
        let r = rx.next().await;
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("GET", "/repos/octo/repo/pulls/42/files")
        );
    }
    let diff = gh.pr_diff(42).await.unwrap();
    assert!(diff.starts_with("diff --git"));
    let r = rx.next().await;
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("GET", "/repos/octo/repo/pulls/42")
    );
    let accepts: Vec<_> = r.headers.get_all("accept").iter().collect();
    assert_eq!(accepts, ["application/vnd.github.diff"]);
}

#[tokio::test]
async fn github_errors_carry_status_and_excerpt_but_never_the_token() {
    let rx = stand_in(401, json!({"message": "Bad credentials"})).await;
    let gh = github(&rx);
    let err = gh.create_issue(&NewIssue::new("x")).await.unwrap_err();
    assert!(
        matches!(err, IntegrationError::Status { status: 401, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("Bad credentials"));
    for text in [format!("{err} {err:?}"), format!("{gh:?}")] {
        assert!(!text.contains(TOKEN), "{text}");
    }
    assert!(GitHubClient::new(TOKEN, "not a repo").is_err());
    assert!(
        GitHubClient::new(TOKEN, "a/b")
            .unwrap()
            .base_url("ftp://x")
            .is_err()
    );
}

#[tokio::test]
async fn slack_post_message_with_blocks() {
    let mut rx = stand_in(
        200,
        json!({"ok": true, "channel": "C123", "ts": "1503435956.000247"}),
    )
    .await;
    let slack = SlackClient::new("xoxb-not-a-real-token")
        .base_url(&base(&rx))
        .unwrap();
    let blocks = vec![
        json!({"type": "section", "text": {"type": "mrkdwn", "text": "*Pattern:* retry storms"}}),
        json!({"type": "context", "elements": [{"type": "mrkdwn", "text": "Confidence: 91%"}]}),
    ];
    let posted = slack
        .post_message(
            &SlackMessage::new("#engineering", "📚 New Pattern Learned").blocks(blocks.clone()),
        )
        .await
        .unwrap();
    assert_eq!(posted.ts, "1503435956.000247");
    let r = rx.next().await;
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/chat.postMessage")
    );
    assert_eq!(
        r.header("authorization"),
        Some("Bearer xoxb-not-a-real-token")
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json(),
        json!({"channel": "#engineering", "text": "📚 New Pattern Learned", "blocks": blocks})
    );
    assert!(!format!("{slack:?}").contains("xoxb-not"));
}

#[tokio::test]
async fn slack_ok_false_is_an_api_error() {
    let rx = stand_in(200, json!({"ok": false, "error": "channel_not_found"})).await;
    let slack = SlackClient::new("xoxb-t").base_url(&base(&rx)).unwrap();
    let err = slack
        .post_message(&SlackMessage::new("#nope", "hi"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        IntegrationError::Api {
            service: "Slack",
            error: "channel_not_found".into()
        }
    );
}

#[test]
fn slack_verifies_slash_command_requests() {
    let body = b"command=%2Fempathy&text=hello";
    let ts = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
    let sig = SlackSignature::sign(&Secret::new("signing-secret"), &ts, body);
    let headers = [
        (SlackSignature::HEADER_TIMESTAMP, ts.as_str()),
        (SlackSignature::HEADER_SIGNATURE, sig.as_str()),
    ];
    let slack = SlackClient::new("xoxb-t").signing_secret("signing-secret");
    slack.verify_request(&headers, body).unwrap();
    assert!(matches!(
        slack.verify_request(&headers, b"command=%2Fempathy&text=hellO"),
        Err(VerifyError::Mismatch { .. })
    ));
    assert_eq!(
        SlackClient::new("xoxb-t").verify_request(&headers, body),
        Err(VerifyError::NoSecret)
    );
}

#[tokio::test]
async fn jira_create_issue() {
    let mut rx = stand_in(
        201,
        json!({"id": "10000", "key": "ENG-24", "self": "https://company.atlassian.net/rest/api/2/issue/10000"}),
    )
    .await;
    let jira = JiraClient::new(&base(&rx), "bot@company.com", "jira-api-token-123").unwrap();
    let created = jira
        .create_issue(
            &JiraIssue::new("ENG", "Bug", "🔮 Predicted Issue: schema change")
                .description("h2. Empathy Level 4 Prediction\n*Confidence:* 92%")
                .priority("High")
                .labels(["empathy-prediction", "ai-generated"])
                .assignee(JiraUser::Name("tech-lead".into())),
        )
        .await
        .unwrap();
    assert_eq!(created.key, "ENG-24");
    let r = rx.next().await;
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/rest/api/2/issue")
    );
    let expected_auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("bot@company.com:jira-api-token-123")
    );
    assert_eq!(r.header("authorization"), Some(expected_auth.as_str()));
    assert_eq!(
        r.json(),
        json!({"fields": {
            "project": {"key": "ENG"},
            "issuetype": {"name": "Bug"},
            "summary": "🔮 Predicted Issue: schema change",
            "description": "h2. Empathy Level 4 Prediction\n*Confidence:* 92%",
            "priority": {"name": "High"},
            "labels": ["empathy-prediction", "ai-generated"],
            "assignee": {"name": "tech-lead"}
        }})
    );
    assert!(!format!("{jira:?}").contains("jira-api-token-123"));

    // JIRA Cloud assigns by account id; optional fields stay out.
    let body = JiraIssue::new("ENG", "Task", "s")
        .assignee(JiraUser::AccountId("5b10ac8d82e05b22cc7d4ef5".into()))
        .to_json();
    assert_eq!(
        body,
        json!({"fields": {"project": {"key": "ENG"}, "issuetype": {"name": "Task"}, "summary": "s", "assignee": {"accountId": "5b10ac8d82e05b22cc7d4ef5"}}})
    );
}

#[tokio::test]
async fn jira_field_errors_are_reported() {
    let rx = stand_in(
        400,
        json!({"errorMessages": [], "errors": {"project": "project is required"}}),
    )
    .await;
    let jira = JiraClient::new(&base(&rx), "u", "t0ken-value").unwrap();
    let err = jira
        .create_issue(&JiraIssue::new("", "Task", "s"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("project is required"), "{err}");
    assert!(!format!("{err:?}").contains("t0ken-value"));
}
