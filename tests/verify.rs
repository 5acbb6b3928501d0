//! Signature verification: known vectors, each scheme's failure modes,
//! rotation, tolerance and replay.

#[cfg(feature = "webhook")]
mod webhook_support;

use std::sync::Arc;
use std::time::Duration;

use hookbus::signature::{
    BodySignature, Secret, SignRequest, SignatureScheme, SlackSignature, StripeSignature,
};
use hookbus::verify::{ReplayGuard, Verifier, VerifyError};

const NOW: i64 = 1_700_000_000;
const BODY: &[u8] = br#"{"decision_id":"abc123","confidence":0.91}"#;

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn malformed(err: VerifyError) -> String {
    match err {
        VerifyError::MalformedHeader { header, .. } => header,
        other => panic!("expected MalformedHeader, got {other:?}"),
    }
}

// ---- known vectors ----

#[test]
fn github_documented_vector() {
    let v = Verifier::github("It's a Secret to Everybody");
    let h = headers(&[(
        "X-Hub-Signature-256",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    )]);
    let ok = v.verify(&h, b"Hello, World!").unwrap();
    assert_eq!(ok.timestamp, None);
    assert!(matches!(
        v.verify(&h, b"Hello, World?"),
        Err(VerifyError::Mismatch { .. })
    ));
    // The signing helper produces the same value.
    assert_eq!(
        BodySignature::github().sign(&Secret::new("It's a Secret to Everybody"), b"Hello, World!"),
        h[0].1
    );
}

#[test]
fn standard_webhooks_reference_vector() {
    let v = Verifier::standard_webhooks("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let h = headers(&[
        ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
        ("webhook-timestamp", "1614265330"),
        (
            "webhook-signature",
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        ),
    ]);
    let ok = v
        .verify_at(&h, br#"{"test": 2432232314}"#, 1614265330)
        .unwrap();
    assert_eq!(ok.id.as_deref(), Some("msg_p5jXN8AQM9LWM0D4loKWxJek"));
    assert_eq!(ok.timestamp, Some(1614265330));
    assert!(matches!(
        v.verify_at(&h, br#"{"test": 2432232315}"#, 1614265330),
        Err(VerifyError::Mismatch { .. })
    ));
}

#[test]
fn slack_documented_vector() {
    let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    let h = headers(&[
        ("X-Slack-Request-Timestamp", "1531420618"),
        (
            "X-Slack-Signature",
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
        ),
    ]);
    let v = Verifier::slack("8f742231b10e8888abcd99yyyzzz85a5");
    v.verify_at(&h, body.as_bytes(), 1531420618 + 10).unwrap();
    assert_eq!(
        SlackSignature::sign(
            &Secret::new("8f742231b10e8888abcd99yyyzzz85a5"),
            "1531420618",
            body.as_bytes()
        ),
        h[1].1
    );
    // Slack's own rule: older than 5 minutes is refused.
    assert!(matches!(
        v.verify_at(&h, body.as_bytes(), 1531420618 + 301),
        Err(VerifyError::TimestampOutsideTolerance {
            skew_secs: 301,
            tolerance_secs: 300
        })
    ));
}

// ---- one table of cases, run against every scheme ----

type Headers = Vec<(String, String)>;
type SignFn = fn(&[Secret], i64, &[u8]) -> Headers;

/// A scheme under test: how to sign (with several secrets and a timestamp)
/// and the verifier for a list of secrets.
struct Case {
    name: &'static str,
    timestamped: bool,
    sign: SignFn,
    verifier: fn(&[&str]) -> Verifier,
}

fn subscriber_sign(
    scheme: SignatureScheme,
) -> impl Fn(&[Secret], i64, &[u8]) -> Vec<(String, String)> {
    move |secrets, ts, body| {
        scheme
            .sign(
                secrets,
                &SignRequest {
                    id: "msg_1",
                    timestamp: ts,
                    body,
                },
            )
            .unwrap()
    }
}

fn add_secrets(mut v: Verifier, rest: &[&str]) -> Verifier {
    for s in rest {
        v = v.secret(*s).unwrap();
    }
    v
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "briefcase",
            timestamped: false,
            sign: |s, ts, b| subscriber_sign(SignatureScheme::briefcase())(s, ts, b),
            verifier: |s| add_secrets(Verifier::briefcase(s[0]), &s[1..]),
        },
        Case {
            name: "empathy",
            timestamped: false,
            sign: |s, ts, b| {
                subscriber_sign(SignatureScheme::body("X-Empathy-Signature", "").unwrap())(s, ts, b)
            },
            verifier: |s| {
                add_secrets(
                    Verifier::body("X-Empathy-Signature", "", s[0]).unwrap(),
                    &s[1..],
                )
            },
        },
        Case {
            name: "github",
            timestamped: false,
            sign: |s, ts, b| {
                subscriber_sign(SignatureScheme::Body(BodySignature::github()))(s, ts, b)
            },
            verifier: |s| add_secrets(Verifier::github(s[0]), &s[1..]),
        },
        Case {
            name: "timestamped",
            timestamped: true,
            sign: |s, ts, b| {
                subscriber_sign(SignatureScheme::timestamped("Rubric").unwrap())(s, ts, b)
            },
            verifier: |s| add_secrets(Verifier::timestamped("Rubric", s[0]).unwrap(), &s[1..]),
        },
        Case {
            name: "standard",
            timestamped: true,
            sign: |s, ts, b| subscriber_sign(SignatureScheme::standard_webhooks())(s, ts, b),
            verifier: |s| add_secrets(Verifier::standard_webhooks(s[0]).unwrap(), &s[1..]),
        },
        Case {
            name: "slack",
            timestamped: true,
            sign: |s, ts, b| {
                let t = ts.to_string();
                vec![
                    (SlackSignature::HEADER_TIMESTAMP.into(), t.clone()),
                    (
                        SlackSignature::HEADER_SIGNATURE.into(),
                        SlackSignature::sign(&s[0], &t, b),
                    ),
                ]
            },
            verifier: |s| add_secrets(Verifier::slack(s[0]), &s[1..]),
        },
        Case {
            name: "stripe",
            timestamped: true,
            sign: |s, ts, b| {
                vec![(
                    StripeSignature::HEADER.into(),
                    StripeSignature::sign(s, ts, b),
                )]
            },
            verifier: |s| add_secrets(Verifier::stripe(s[0]), &s[1..]),
        },
    ]
}

const K1: &str = "whsec_c2VjcmV0LW9uZS1zZWNyZXQtb25lLXNlY3JldA==";
const K2: &str = "whsec_c2Vjb25kLXNlY3JldC1zZWNvbmQtc2VjcmV0LTI=";

#[test]
fn valid_requests_verify() {
    for c in cases() {
        let h = (c.sign)(&[Secret::new(K1)], NOW, BODY);
        let ok = (c.verifier)(&[K1])
            .verify_at(&h, BODY, NOW)
            .unwrap_or_else(|e| panic!("{}: {e}", c.name));
        assert_eq!(ok.secret_index, 0, "{}", c.name);
        assert_eq!(ok.timestamp.is_some(), c.timestamped, "{}", c.name);
    }
}

#[test]
fn tampered_body_is_a_mismatch() {
    for c in cases() {
        let h = (c.sign)(&[Secret::new(K1)], NOW, BODY);
        let mut tampered = BODY.to_vec();
        tampered[5] ^= 1;
        let err = (c.verifier)(&[K1])
            .verify_at(&h, &tampered, NOW)
            .unwrap_err();
        assert!(
            matches!(err, VerifyError::Mismatch { .. }),
            "{}: {err:?}",
            c.name
        );
        // Re-serialised JSON (whitespace) is not the raw body either.
        let err = (c.verifier)(&[K1])
            .verify_at(&h, br#"{"decision_id": "abc123", "confidence": 0.91}"#, NOW)
            .unwrap_err();
        assert!(matches!(err, VerifyError::Mismatch { .. }), "{}", c.name);
    }
}

#[test]
fn wrong_secret_is_a_mismatch_that_reveals_nothing() {
    for c in cases() {
        let h = (c.sign)(&[Secret::new(K2)], NOW, BODY);
        let err = (c.verifier)(&[K1]).verify_at(&h, BODY, NOW).unwrap_err();
        assert!(
            matches!(
                err,
                VerifyError::Mismatch {
                    signatures: 1,
                    secrets: 1
                }
            ),
            "{}: {err:?}",
            c.name
        );
        // The message names neither the expected signature nor a secret.
        let expected = (c.sign)(&[Secret::new(K1)], NOW, BODY);
        let text = format!("{err} {err:?}");
        for (_, value) in expected {
            if value.len() > 20 {
                assert!(!text.contains(&value), "{}: {text}", c.name);
                for part in value.split([',', '=', ' ']) {
                    if part.len() > 20 {
                        assert!(!text.contains(part), "{}: {text}", c.name);
                    }
                }
            }
        }
        assert!(!text.contains("c2VjcmV0"), "{}", c.name);
    }
}

#[test]
fn expired_and_future_timestamps_are_refused() {
    for c in cases().into_iter().filter(|c| c.timestamped) {
        let v = (c.verifier)(&[K1]);
        for (signed_at, skew) in [(NOW - 301, 301), (NOW + 301, -301), (NOW - 86_400, 86_400)] {
            let h = (c.sign)(&[Secret::new(K1)], signed_at, BODY);
            let err = v.verify_at(&h, BODY, NOW).unwrap_err();
            assert_eq!(
                err,
                VerifyError::TimestampOutsideTolerance {
                    skew_secs: skew,
                    tolerance_secs: 300
                },
                "{}",
                c.name
            );
        }
        // The edges of the window are inside.
        for signed_at in [NOW - 300, NOW + 300] {
            let h = (c.sign)(&[Secret::new(K1)], signed_at, BODY);
            v.verify_at(&h, BODY, NOW)
                .unwrap_or_else(|e| panic!("{}: {e}", c.name));
        }
        // A custom tolerance.
        for (signed_at, side) in [(NOW - 30, "past"), (NOW + 30, "future")] {
            let h = (c.sign)(&[Secret::new(K1)], signed_at, BODY);
            let err = v
                .clone()
                .tolerance(Duration::from_secs(10))
                .verify_at(&h, BODY, NOW)
                .unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("timestamp is 30 s in the {side}; the tolerance is 10 s")
            );
        }
    }
}

#[test]
fn rotated_secrets_are_all_accepted() {
    for c in cases() {
        let v = (c.verifier)(&[K2, K1]);
        for (secret, index) in [(K2, 0), (K1, 1)] {
            let h = (c.sign)(&[Secret::new(secret)], NOW, BODY);
            let ok = v
                .verify_at(&h, BODY, NOW)
                .unwrap_or_else(|e| panic!("{}: {e}", c.name));
            assert_eq!(ok.secret_index, index, "{}", c.name);
        }
        let h = (c.sign)(
            &[Secret::new("whsec_b3RoZXItb3RoZXItb3RoZXItb3RoZXI=")],
            NOW,
            BODY,
        );
        assert!(v.verify_at(&h, BODY, NOW).is_err(), "{}", c.name);
    }
}

#[test]
fn senders_signing_with_several_secrets_verify_with_any_one() {
    // Standard Webhooks and Stripe carry one signature per secret.
    for c in cases()
        .into_iter()
        .filter(|c| c.name == "standard" || c.name == "stripe")
    {
        let h = (c.sign)(&[Secret::new(K1), Secret::new(K2)], NOW, BODY);
        for k in [K1, K2] {
            (c.verifier)(&[k])
                .verify_at(&h, BODY, NOW)
                .unwrap_or_else(|e| panic!("{}: {e}", c.name));
        }
    }
}

#[test]
fn missing_headers_are_named() {
    for c in cases() {
        let full = (c.sign)(&[Secret::new(K1)], NOW, BODY);
        for (name, _) in &full {
            let partial: Vec<_> = full.iter().filter(|(n, _)| n != name).cloned().collect();
            let err = (c.verifier)(&[K1])
                .verify_at(&partial, BODY, NOW)
                .unwrap_err();
            assert_eq!(
                err,
                VerifyError::MissingHeader {
                    header: name.clone()
                },
                "{}",
                c.name
            );
            assert_eq!(err.to_string(), format!("missing header {name}"));
        }
    }
}

#[test]
fn malformed_headers_say_which_and_why() {
    let v = Verifier::briefcase("s");
    for bad in [
        "",
        "sha256=",
        "sha256=zz",
        "md5=00",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1g",
    ] {
        let err = v
            .verify_at(&headers(&[("X-Briefcase-Signature", bad)]), BODY, NOW)
            .unwrap_err();
        assert_eq!(malformed(err), "X-Briefcase-Signature", "{bad:?}");
    }
    let err = v
        .verify_at(&[("X-Briefcase-Signature", &b"sha256=\xff"[..])], BODY, NOW)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "malformed header X-Briefcase-Signature: not valid UTF-8"
    );

    let v = Verifier::timestamped("Rubric", "s").unwrap();
    let sig = "sha256=".to_owned() + &"0".repeat(64);
    for ts in ["-5", "1.5", "abc", "99999999999999999999"] {
        let err = v
            .verify_at(
                &headers(&[("X-Rubric-Timestamp", ts), ("X-Rubric-Signature", &sig)]),
                BODY,
                NOW,
            )
            .unwrap_err();
        assert_eq!(malformed(err), "X-Rubric-Timestamp", "{ts:?}");
    }

    let v = Verifier::standard_webhooks("whsec_c2VjcmV0").unwrap();
    for sig in ["v1", "v1,***", "v2,abcd", "   "] {
        let err = v
            .verify_at(
                &headers(&[
                    ("webhook-id", "m"),
                    ("webhook-timestamp", "1700000000"),
                    ("webhook-signature", sig),
                ]),
                BODY,
                NOW,
            )
            .unwrap_err();
        assert_eq!(malformed(err), "webhook-signature", "{sig:?}");
    }

    let v = Verifier::stripe("s");
    let good = "0".repeat(64);
    for value in [
        format!("v1={good}"),
        "t=1700000000".to_owned(),
        format!("t=1700000000,t=1700000000,v1={good}"),
        format!("t=1700000000,v1={good},junk"),
        "t=1700000000,v1=abc".to_owned(),
        "t=1700000000,v1=bad_signature".to_owned(),
        format!("t=x,v1={good}"),
    ] {
        let err = v
            .verify_at(&headers(&[("Stripe-Signature", &value)]), BODY, NOW)
            .unwrap_err();
        assert_eq!(malformed(err), "Stripe-Signature", "{value:?}");
    }

    let v = Verifier::slack("s");
    let err = v
        .verify_at(
            &headers(&[
                ("X-Slack-Request-Timestamp", "1700000000"),
                ("X-Slack-Signature", &format!("v1={good}")),
            ]),
            BODY,
            NOW,
        )
        .unwrap_err();
    assert_eq!(malformed(err), "X-Slack-Signature");
}

#[test]
fn unknown_signature_versions_are_skipped() {
    // Standard Webhooks: other versions beside a v1 are ignored.
    let s = Secret::new(K1);
    let mut h =
        subscriber_sign(SignatureScheme::standard_webhooks())(std::slice::from_ref(&s), NOW, BODY);
    let sig = h
        .iter_mut()
        .find(|(n, _)| n == "webhook-signature")
        .unwrap();
    sig.1 = format!("v1a,bm90LWEtc2lnbmF0dXJl {}", sig.1);
    Verifier::standard_webhooks(K1)
        .unwrap()
        .verify_at(&h, BODY, NOW)
        .unwrap();
    // Stripe: v0 test signatures are ignored.
    let value = StripeSignature::sign(&[s], NOW, BODY) + ",v0=" + &"1".repeat(64);
    Verifier::stripe(K1)
        .verify_at(&headers(&[("stripe-signature", &value)]), BODY, NOW)
        .unwrap();
}

#[test]
fn a_verifier_without_secret_accepts_nothing() {
    let h = (cases()[0].sign)(&[Secret::new("x")], NOW, BODY);
    assert_eq!(
        Verifier::briefcase("").verify_at(&h, BODY, NOW),
        Err(VerifyError::NoSecret)
    );
}

#[test]
fn bad_standard_secret_is_refused_when_built() {
    assert!(Verifier::standard_webhooks("whsec_***").is_err());
    let err = Verifier::standard_webhooks("whsec_c2VjcmV0")
        .unwrap()
        .secret("whsec_%%")
        .unwrap_err();
    assert!(!format!("{err} {err:?}").contains("%%"));
}

#[test]
fn secrets_stay_out_of_debug() {
    let v = Verifier::github("hunter2-very-secret")
        .secret("another-secret-value")
        .unwrap();
    let text = format!("{v:?}");
    assert!(
        !text.contains("hunter2") && !text.contains("another-secret"),
        "{text}"
    );
}

#[test]
fn replay_guard_refuses_a_second_delivery_inside_the_window() {
    for c in cases().into_iter().filter(|c| c.timestamped) {
        let guard = Arc::new(ReplayGuard::new(1000));
        let v = (c.verifier)(&[K1]).replay_guard(guard.clone());
        let h = (c.sign)(&[Secret::new(K1)], NOW, BODY);
        v.verify_at(&h, BODY, NOW).unwrap();
        assert_eq!(
            v.verify_at(&h, BODY, NOW + 10),
            Err(VerifyError::Replay),
            "{}",
            c.name
        );
        // A clone shares the guard.
        assert_eq!(
            v.clone().verify_at(&h, BODY, NOW + 20),
            Err(VerifyError::Replay)
        );
        // A fresh signature (new timestamp) is a new request, except for
        // Standard Webhooks, where the same webhook-id is the same message.
        let h2 = (c.sign)(&[Secret::new(K1)], NOW + 1, BODY);
        if c.name != "standard" {
            v.verify_at(&h2, BODY, NOW + 1).unwrap();
        }
        // Past the window the timestamp check refuses it, not the guard.
        assert!(matches!(
            v.verify_at(&h, BODY, NOW + 301),
            Err(VerifyError::TimestampOutsideTolerance { .. })
        ));
        // A forged request does not fill the guard.
        let before = guard.len();
        let forged = (c.sign)(&[Secret::new(K2)], NOW, BODY);
        assert!(v.verify_at(&forged, BODY, NOW).is_err());
        assert_eq!(guard.len(), before, "{}", c.name);
    }
}

#[test]
fn standard_webhooks_replay_is_keyed_on_the_message_id() {
    let guard = Arc::new(ReplayGuard::new(1000));
    let v = Verifier::standard_webhooks(K1).unwrap().replay_guard(guard);
    let scheme = SignatureScheme::standard_webhooks();
    let sign = |ts| {
        scheme
            .sign(
                &[Secret::new(K1)],
                &SignRequest {
                    id: "msg_7",
                    timestamp: ts,
                    body: BODY,
                },
            )
            .unwrap()
    };
    v.verify_at(&sign(NOW), BODY, NOW).unwrap();
    // The sender's retry: same id, fresh timestamp and signature.
    assert_eq!(
        v.verify_at(&sign(NOW + 5), BODY, NOW + 5),
        Err(VerifyError::Replay)
    );
}

#[test]
fn headers_are_found_in_any_case() {
    let h = (cases()[0].sign)(&[Secret::new("k")], NOW, BODY);
    let lower: Vec<(String, String)> = h
        .iter()
        .map(|(k, v)| (k.to_lowercase(), v.clone()))
        .collect();
    Verifier::briefcase("k")
        .verify_at(&lower, BODY, NOW)
        .unwrap();
}

#[cfg(feature = "webhook")]
mod over_http {
    //! Round trips: the webhook subscriber signs over real HTTP, the verifier
    //! checks what the receiver got.
    use super::*;
    use crate::webhook_support;
    use hookbus::Event;
    use hookbus::webhook::WebhookEmitter;
    use serde_json::json;
    use webhook_support::Receiver;

    #[tokio::test]
    async fn every_subscriber_scheme_round_trips() {
        let schemes = [
            (SignatureScheme::briefcase(), Verifier::briefcase(K1)),
            (
                SignatureScheme::body("X-Empathy-Signature", "").unwrap(),
                Verifier::body("X-Empathy-Signature", "", K1).unwrap(),
            ),
            (
                SignatureScheme::timestamped("Rubric").unwrap(),
                Verifier::timestamped("Rubric", K1).unwrap(),
            ),
            (
                SignatureScheme::standard_webhooks(),
                Verifier::standard_webhooks(K1).unwrap(),
            ),
        ];
        for (scheme, verifier) in schemes {
            let mut rx = Receiver::ok().await;
            let emitter = WebhookEmitter::builder(&rx.url)
                .secret(K1)
                .signature(scheme.clone())
                .build_emitter()
                .unwrap();
            let event = Event::new(
                "decision.captured",
                json!({"decision_id": "abc123", "note": "Euro € 100%"}),
            )
            .unwrap();
            assert!(emitter.emit(event).await.is_delivered());
            let r = rx.next().await;
            verifier
                .verify(&r.headers, &r.body)
                .unwrap_or_else(|e| panic!("{scheme:?}: {e}"));
            // And the same request with one byte changed fails.
            let mut body = r.body.to_vec();
            body.push(b' ');
            assert!(verifier.verify(&r.headers, &body).is_err());
            // Verifier::for_scheme builds the same check from the subscriber's settings.
            Verifier::for_scheme(&scheme, &[Secret::new(K1)])
                .unwrap()
                .verify(&r.headers, &r.body)
                .unwrap();
        }
    }
}

// ---- issue #11: the replay guard keys on what was verified ----

/// Re-spellings of a captured request that still verify: each must be
/// refused as a replay once the original was accepted.
fn respellings(name: &str, h: &Headers) -> Vec<Headers> {
    let mut out = Vec::new();
    let mut with = |f: &dyn Fn(&str, &str) -> Option<String>| {
        let mut changed = false;
        let v: Headers = h
            .iter()
            .map(|(k, v)| match f(k, v) {
                Some(nv) => {
                    changed = true;
                    (k.clone(), nv)
                }
                None => (k.clone(), v.clone()),
            })
            .collect();
        if changed {
            out.push(v);
        }
    };
    let is_sig = |k: &str| k.to_ascii_lowercase().contains("signature");
    // Upper-case hex (the hex schemes decode either case).
    if name != "standard" {
        with(&|k, v| {
            is_sig(k).then(|| {
                let (prefix, hex) = v.split_at(v.find('=').map_or(0, |i| i + 1));
                if name == "stripe" {
                    v.split(',')
                        .map(|item| match item.strip_prefix("v1=") {
                            Some(hex) => format!("v1={}", hex.to_uppercase()),
                            None => item.to_owned(),
                        })
                        .collect::<Vec<_>>()
                        .join(",")
                } else {
                    format!("{prefix}{}", hex.to_uppercase())
                }
            })
        });
    }
    if name == "stripe" {
        with(&|k, v| is_sig(k).then(|| format!("{v},v0=abc")));
        with(&|k, v| is_sig(k).then(|| format!("{v}, x=1")));
        with(&|k, v| is_sig(k).then(|| format!("{v},v1={}", "0".repeat(64))));
    }
    if name == "standard" {
        with(&|k, v| is_sig(k).then(|| format!("v1a,c29tZXRoaW5n {v}")));
    }
    // Surrounding whitespace is trimmed before verifying.
    with(&|k, v| is_sig(k).then(|| format!(" {v} ")));
    out
}

#[test]
fn replays_cannot_pass_the_guard_by_respelling_the_signature() {
    for c in cases() {
        let v = (c.verifier)(&[K1]).replay_guard(Arc::new(ReplayGuard::new(1000)));
        let h = (c.sign)(&[Secret::new(K1)], NOW, BODY);
        v.verify_at(&h, BODY, NOW).unwrap();
        let variants = respellings(c.name, &h);
        assert!(!variants.is_empty(), "{}", c.name);
        for r in variants {
            // Each re-spelling verifies on its own...
            (c.verifier)(&[K1])
                .verify_at(&r, BODY, NOW)
                .unwrap_or_else(|e| panic!("{}: {r:?}: {e}", c.name));
            // ...and is the same request to the guard.
            assert_eq!(
                v.verify_at(&r, BODY, NOW + 1),
                Err(VerifyError::Replay),
                "{}: {r:?}",
                c.name
            );
        }
    }
}

#[test]
fn a_rotation_signature_stripped_from_a_replay_is_still_a_replay() {
    // Signed with both secrets; the replay keeps only the second signature,
    // so a different secret matches: the guard key must not depend on it.
    let v = Verifier::stripe(K1)
        .secret(K2)
        .unwrap()
        .replay_guard(Arc::new(ReplayGuard::new(100)));
    let both = StripeSignature::sign(&[Secret::new(K1), Secret::new(K2)], NOW, BODY);
    v.verify_at(&headers(&[("Stripe-Signature", &both)]), BODY, NOW)
        .unwrap();
    let second = StripeSignature::sign(&[Secret::new(K2)], NOW, BODY);
    assert_eq!(
        v.verify_at(&headers(&[("Stripe-Signature", &second)]), BODY, NOW),
        Err(VerifyError::Replay)
    );
}

#[test]
fn body_only_schemes_refuse_a_replayed_body_inside_the_tolerance() {
    for c in cases().into_iter().filter(|c| !c.timestamped) {
        let v = (c.verifier)(&[K1]).replay_guard(Arc::new(ReplayGuard::new(100)));
        let h = (c.sign)(&[Secret::new(K1)], NOW, BODY);
        v.verify_at(&h, BODY, NOW).unwrap();
        assert_eq!(
            v.verify_at(&h, BODY, NOW + 299),
            Err(VerifyError::Replay),
            "{}",
            c.name
        );
        // Without a signed timestamp the window runs from the first receipt.
        v.verify_at(&h, BODY, NOW + 301)
            .unwrap_or_else(|e| panic!("{}: {e}", c.name));
    }
}

#[test]
fn a_pending_verification_leaves_no_trace_unless_accepted() {
    for c in cases() {
        let guard = Arc::new(ReplayGuard::new(100));
        let v = (c.verifier)(&[K1]).replay_guard(guard.clone());
        let h = (c.sign)(&[Secret::new(K1)], NOW, BODY);
        let pending = v.verify_pending_at(&h, BODY, NOW).unwrap();
        // While the first is under way a second copy is neither new nor a
        // duplicate.
        assert_eq!(
            v.verify_at(&h, BODY, NOW).unwrap_err(),
            VerifyError::InFlight,
            "{}",
            c.name
        );
        drop(pending); // e.g. the bus refused the event: 503
        assert!(guard.is_empty(), "{}", c.name);
        let verified = v.verify_pending_at(&h, BODY, NOW).unwrap().accept();
        assert_eq!(verified.secret_index, 0);
        assert_eq!(v.verify_at(&h, BODY, NOW), Err(VerifyError::Replay));
    }
}
