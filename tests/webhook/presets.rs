//! Presets: the body, URL path and auth headers each service expects.

use crate::webhook_support::Receiver;
use base64::Engine;
use hookbus::Event;
use hookbus::webhook::presets;
use serde_json::json;

fn prediction() -> Event {
    Event::builder("level_4_prediction")
        .id("evt_42")
        .source("empathy")
        .data(json!({"prediction": "Schema change breaks \"mobile\"", "confidence": 0.87, "user_id": "user_123"}))
        .build()
        .unwrap()
}

#[tokio::test]
async fn chat_presets() {
    let mut rx = Receiver::ok().await;
    let text = "*Prediction:* {prediction} ({confidence:.0%})";
    let want = "*Prediction:* Schema change breaks \"mobile\" (87%)";

    let slack = presets::slack(&rx.url, text).build_emitter().unwrap();
    assert!(slack.emit(prediction()).await.is_delivered());
    let v = rx.next().await.json();
    assert_eq!(v["text"], want);
    assert_eq!(v["blocks"][0]["type"], "section");
    assert_eq!(
        v["blocks"][0]["text"],
        json!({"type": "mrkdwn", "text": want})
    );

    let discord = presets::discord(&rx.url, text).build_emitter().unwrap();
    assert!(discord.emit(prediction()).await.is_delivered());
    assert_eq!(rx.next().await.json(), json!({"content": want}));

    let teams = presets::teams(&rx.url, "Prediction", text)
        .build_emitter()
        .unwrap();
    assert!(teams.emit(prediction()).await.is_delivered());
    let v = rx.next().await.json();
    assert_eq!(v["@type"], "MessageCard");
    assert_eq!(v["title"], "Prediction");
    assert_eq!(v["text"], want);
}

#[tokio::test]
async fn datadog_and_pagerduty() {
    let mut rx = Receiver::ok().await;
    let dd = presets::datadog("dd-key-1", "Level 4 Prediction", "{prediction}")
        .url(&rx.url)
        .build_emitter()
        .unwrap();
    assert!(dd.emit(prediction()).await.is_delivered());
    let r = rx.next().await;
    assert_eq!(r.header("dd-api-key"), Some("dd-key-1"));
    let v = r.json();
    assert_eq!(v["title"], "Level 4 Prediction");
    assert_eq!(v["text"], "Schema change breaks \"mobile\"");
    assert_eq!(
        v["tags"],
        json!(["source:hookbus", "event_type:level_4_prediction"])
    );

    let pd = presets::pagerduty("routing-{key}", "{prediction}", "critical")
        .url(&rx.url)
        .build_emitter()
        .unwrap();
    assert!(pd.emit(prediction()).await.is_delivered());
    let v = rx.next().await.json();
    assert_eq!(
        v["routing_key"], "routing-{key}",
        "literals are not templates"
    );
    assert_eq!(v["event_action"], "trigger");
    assert_eq!(v["dedup_key"], "evt_42");
    assert_eq!(v["payload"]["source"], "empathy");
    assert_eq!(v["payload"]["severity"], "critical");
    assert_eq!(v["payload"]["custom_details"]["confidence"], 0.87);
}

#[tokio::test]
async fn github_and_jira_issues() {
    let mut rx = Receiver::ok().await;
    let base = rx.url.trim_end_matches("/hook").to_owned();
    let gh = presets::github_issue(
        "octo/repo",
        "ghp_abc",
        "Prediction: {{prediction | truncate(10)}}",
        "{confidence:.0%}",
        &["needs-review"],
    )
    .url(format!("{base}/repos/octo/repo/issues"))
    .build_emitter()
    .unwrap();
    assert!(gh.emit(prediction()).await.is_delivered());
    let r = rx.next().await;
    assert_eq!(r.path, "/repos/octo/repo/issues");
    assert_eq!(r.header("authorization"), Some("Bearer ghp_abc"));
    assert_eq!(r.header("accept"), Some("application/vnd.github+json"));
    assert!(r.header("user-agent").unwrap().starts_with("hookbus/"));
    assert_eq!(
        r.json(),
        json!({"title": "Prediction: Schema ch…", "body": "87%", "labels": ["needs-review"]})
    );

    let jira = presets::jira_issue(
        &base,
        "me@example.com",
        "tok",
        "ENG",
        "Predicted: {prediction}",
        "Confidence {confidence:.0%}",
    )
    .build_emitter()
    .unwrap();
    assert!(jira.emit(prediction()).await.is_delivered());
    let r = rx.next().await;
    assert_eq!(r.path, "/rest/api/2/issue");
    let basic = base64::engine::general_purpose::STANDARD.encode("me@example.com:tok");
    assert_eq!(
        r.header("authorization"),
        Some(format!("Basic {basic}").as_str())
    );
    let v = r.json();
    assert_eq!(v["fields"]["project"]["key"], "ENG");
    assert_eq!(
        v["fields"]["summary"],
        "Predicted: Schema change breaks \"mobile\""
    );
    assert_eq!(v["fields"]["issuetype"]["name"], "Task");
}
