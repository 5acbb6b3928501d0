//! Replay protection keyed by sender: one guard shared by several senders
//! (two verifiers, two ingress routes) keeps their ids apart, while a
//! replay from the same sender is still refused however it is re-spelled.

use std::sync::Arc;

use hookbus::signature::{Secret, SignRequest, SignatureScheme};
use hookbus::verify::{ReplayGuard, Verifier, VerifyError};

const ALICE: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const BOB: &str = "whsec_bm90LWFsaWNlLW5vdC1hbGljZS1ub3QtYWxpY2U=";
const NOW: i64 = 1_700_000_000;

fn standard(secret: &str, id: &str, body: &[u8]) -> Vec<(String, String)> {
    SignatureScheme::standard_webhooks()
        .sign(
            &[Secret::new(secret)],
            &SignRequest {
                id,
                timestamp: NOW,
                body,
            },
        )
        .unwrap()
}

#[test]
fn one_guard_keeps_the_same_id_from_two_senders_apart() {
    let guard = Arc::new(ReplayGuard::new(1000));
    let alice = Verifier::standard_webhooks(ALICE)
        .unwrap()
        .replay_guard(guard.clone());
    let bob = Verifier::standard_webhooks(BOB)
        .unwrap()
        .replay_guard(guard.clone());
    let a = standard(ALICE, "msg_1", b"{\"from\":\"alice\"}");
    let b = standard(BOB, "msg_1", b"{\"from\":\"bob\"}");
    alice.verify_at(&a, b"{\"from\":\"alice\"}", NOW).unwrap();
    // Bob's msg_1 is not Alice's: it is new.
    bob.verify_at(&b, b"{\"from\":\"bob\"}", NOW).unwrap();
    // Each sender's replay is still refused.
    assert_eq!(
        alice.verify_at(&a, b"{\"from\":\"alice\"}", NOW + 1),
        Err(VerifyError::Replay)
    );
    assert_eq!(
        bob.verify_at(&b, b"{\"from\":\"bob\"}", NOW + 1),
        Err(VerifyError::Replay)
    );
    // A verifier made afresh for the same sender (same keys) shares its
    // memory: building one per request does not open a gap.
    let again = Verifier::standard_webhooks(ALICE)
        .unwrap()
        .replay_guard(guard.clone());
    assert_eq!(
        again.verify_at(&a, b"{\"from\":\"alice\"}", NOW + 2),
        Err(VerifyError::Replay)
    );
}

#[test]
fn a_rotating_sender_is_one_sender_whichever_signature_is_kept() {
    // During rotation the sender signs with the new and the old secret;
    // stripping one signature from a captured request must not make its
    // replay look new.
    let guard = Arc::new(ReplayGuard::new(1000));
    let verifier = Verifier::standard_webhooks(ALICE)
        .unwrap()
        .secret(BOB)
        .unwrap()
        .replay_guard(guard);
    let body = b"{}";
    let both = SignatureScheme::standard_webhooks()
        .sign(
            &[Secret::new(ALICE), Secret::new(BOB)],
            &SignRequest {
                id: "msg_9",
                timestamp: NOW,
                body,
            },
        )
        .unwrap();
    verifier.verify_at(&both, body, NOW).unwrap();
    let only_bob = standard(BOB, "msg_9", body);
    assert_eq!(
        verifier.verify_at(&only_bob, body, NOW + 1),
        Err(VerifyError::Replay)
    );
}

#[cfg(all(feature = "axum", feature = "webhook"))]
mod over_http {
    use hookbus::ingress::Ingress;
    use hookbus::{Bus, Event};
    use tokio::sync::mpsc;

    use super::*;

    /// Two senders with their own routes and secrets on one ingress (whose
    /// request guard and event dedupe the routes share) each send plain
    /// JSON under the same webhook-id: both events arrive.
    #[tokio::test]
    async fn two_routes_receive_the_same_message_id_from_their_own_senders() {
        let bus = Bus::new().unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        bus.on("webhook.received", move |e: &Event| {
            let _ = tx.send(e.data().clone());
        })
        .unwrap()
        .detach();
        let app = Ingress::new(bus.clone())
            .cloudevents("/alice", Verifier::standard_webhooks(ALICE).unwrap())
            .cloudevents("/bob", Verifier::standard_webhooks(BOB).unwrap())
            .into_router();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let client = reqwest::Client::new();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        for (path, secret, body, status) in [
            ("/alice", ALICE, r#"{"from":"alice"}"#, "received"),
            ("/bob", BOB, r#"{"from":"bob"}"#, "received"),
            // Alice again: her own duplicate.
            ("/alice", ALICE, r#"{"from":"alice"}"#, "duplicate"),
        ] {
            let headers = SignatureScheme::standard_webhooks()
                .sign(
                    &[Secret::new(secret)],
                    &SignRequest {
                        id: "msg_1",
                        timestamp: now,
                        body: body.as_bytes(),
                    },
                )
                .unwrap();
            let mut request = client
                .post(format!("http://{addr}{path}"))
                .header("content-type", "application/json")
                .body(body);
            for (k, v) in headers {
                request = request.header(k, v);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            let answer: serde_json::Value = response.json().await.unwrap();
            assert_eq!(answer["status"], status, "{path} {body}");
        }
        bus.shutdown(std::time::Duration::from_secs(5)).await;
        let mut got = Vec::new();
        while let Ok(data) = rx.try_recv() {
            got.push(data["from"].as_str().unwrap().to_owned());
        }
        assert_eq!(got, ["alice", "bob"], "each sender's msg_1 once");
    }

    /// GitHub does not sign `X-GitHub-Event`: a captured delivery
    /// re-labelled as another event is still the same signed request, so
    /// inside the window it is a duplicate and nothing new is emitted
    /// (past the window a body-only signature cannot tell; see the verify
    /// docs, "What a body-only signature protects").
    #[tokio::test]
    async fn a_github_delivery_relabelled_as_another_event_is_a_duplicate() {
        use hookbus::signature::BodySignature;

        let bus = Bus::new().unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        bus.on("github.**", move |e: &Event| {
            let _ = tx.send(e.event_type().to_owned());
        })
        .unwrap()
        .detach();
        let app = Ingress::new(bus.clone())
            .github("/github", Verifier::github("gh-secret"))
            .into_router();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let body = r#"{"action":"opened","number":1,"repository":{"full_name":"o/r"}}"#;
        let sig = BodySignature::github().sign(&Secret::new("gh-secret"), body.as_bytes());
        for (event, status) in [("pull_request", "received"), ("issues", "duplicate")] {
            let response = reqwest::Client::new()
                .post(format!("http://{addr}/github"))
                .header("content-type", "application/json")
                .header("x-github-event", event)
                .header("x-github-delivery", format!("d-{event}"))
                .header("x-hub-signature-256", &sig)
                .body(body)
                .send()
                .await
                .unwrap();
            let answer: serde_json::Value = response.json().await.unwrap();
            assert_eq!(answer["status"], status, "{event}");
        }
        bus.shutdown(std::time::Duration::from_secs(5)).await;
        let mut got = Vec::new();
        while let Ok(ty) = rx.try_recv() {
            got.push(ty);
        }
        assert_eq!(got, ["github.pull_request.opened"]);
    }
}
