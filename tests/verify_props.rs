//! Property tests: the header parsers and verifiers never panic on any
//! input, accept exactly the correctly signed requests, and refuse any
//! change to a signed body. (CI runs these; fuzz/ holds the cargo-fuzz
//! targets for longer runs.)

use hookbus::signature::{Secret, SignRequest, SignatureScheme, SlackSignature, StripeSignature};
use hookbus::verify::{ReplayGuard, Verifier};
use proptest::prelude::*;

fn verifiers() -> Vec<Verifier> {
    vec![
        Verifier::briefcase("k"),
        Verifier::body("X-Empathy-Signature", "", "k").unwrap(),
        Verifier::github("k"),
        Verifier::timestamped("Rubric", "k").unwrap(),
        Verifier::standard_webhooks("whsec_a2V5").unwrap(),
        Verifier::slack("k"),
        Verifier::stripe("k"),
    ]
}

const NAMES: [&str; 11] = [
    "X-Briefcase-Signature",
    "X-Empathy-Signature",
    "X-Hub-Signature-256",
    "X-Rubric-Timestamp",
    "X-Rubric-Signature",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "X-Slack-Request-Timestamp",
    "X-Slack-Signature",
    "Stripe-Signature",
];

/// Header values shaped like the real ones, and plain garbage.
fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<Vec<u8>>(),
        "(sha256=|v0=|v1,|t=|v1=|,| )*[0-9a-fA-F=+/,. tv-]{0,80}".prop_map(String::into_bytes),
        "[0-9]{0,20}".prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn verifiers_never_panic_and_never_accept_garbage(
        values in proptest::collection::vec(proptest::option::of(value()), NAMES.len()),
        body in any::<Vec<u8>>(),
        now in any::<i64>(),
    ) {
        let headers: Vec<(&str, Vec<u8>)> = NAMES
            .iter()
            .zip(values)
            .filter_map(|(n, v)| v.map(|v| (*n, v)))
            .collect();
        for v in verifiers() {
            prop_assert!(v.verify_at(&headers, &body, now).is_err());
        }
    }

    #[test]
    fn signed_requests_verify_inside_the_tolerance_only(
        ts in 0i64..4_000_000_000,
        id in "[a-zA-Z0-9_]{1,30}",
        body in any::<Vec<u8>>(),
        flip in any::<prop::sample::Index>(),
    ) {
        let secret = Secret::new("whsec_a2V5LWtleS1rZXk=");
        let now = 2_000_000_000;
        let inside = (now - ts).abs() <= 300;
        let t = ts.to_string();
        let mut cases: Vec<(Verifier, Vec<(String, String)>)> = Vec::new();
        for scheme in [
            SignatureScheme::briefcase(),
            SignatureScheme::timestamped("Rubric").unwrap(),
            SignatureScheme::standard_webhooks(),
        ] {
            let h = scheme
                .sign(std::slice::from_ref(&secret), &SignRequest { id: &id, timestamp: ts, body: &body })
                .unwrap();
            cases.push((Verifier::for_scheme(&scheme, std::slice::from_ref(&secret)).unwrap(), h));
        }
        cases.push((
            Verifier::slack(secret.clone()),
            vec![
                (SlackSignature::HEADER_TIMESTAMP.into(), t.clone()),
                (SlackSignature::HEADER_SIGNATURE.into(), SlackSignature::sign(&secret, &t, &body)),
            ],
        ));
        cases.push((
            Verifier::stripe(secret.clone()),
            vec![(StripeSignature::HEADER.into(), StripeSignature::sign(std::slice::from_ref(&secret), ts, &body))],
        ));
        for (i, (v, h)) in cases.iter().enumerate() {
            let timestamped = i != 0;
            prop_assert_eq!(v.verify_at(h, &body, now).is_ok(), inside || !timestamped);
            if !body.is_empty() {
                let mut changed = body.clone();
                changed[flip.index(body.len())] ^= 0x20;
                prop_assert!(v.verify_at(h, &changed, ts).is_err());
            }
        }
    }

    #[test]
    fn replay_guard_stays_bounded(ids in proptest::collection::vec("[a-z]{1,4}", 0..300), cap in 1usize..50) {
        let g = ReplayGuard::new(cap);
        for (i, id) in ids.iter().enumerate() {
            g.first_seen(id, 1_000 + i as i64 % 7, i as i64 % 11);
            prop_assert!(g.len() <= cap);
        }
    }
}
