//! Correctly signed requests with arbitrary bodies, timestamps and ids:
//! they verify exactly when the timestamp is inside the tolerance, and one
//! flipped body byte always fails.
#![no_main]

use hookbus::signature::{Secret, SignRequest, SignatureScheme, SlackSignature, StripeSignature};
use hookbus::verify::Verifier;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((ts, rest)) = data.split_first_chunk::<8>() else {
        return;
    };
    let ts = i64::from_le_bytes(*ts).rem_euclid(4_000_000_000);
    let (id, body) = rest.split_at(rest.len().min(16));
    let id: String = id.iter().map(|&b| char::from(b'a' + b % 26)).collect();
    let id = if id.is_empty() { "m".to_owned() } else { id };
    let secret = Secret::new("whsec_a2V5LWtleS1rZXk=");
    let now = 2_000_000_000;
    let inside = (now - ts).abs() <= 300;

    let schemes = [
        SignatureScheme::timestamped("Rubric").unwrap(),
        SignatureScheme::standard_webhooks(),
    ];
    for scheme in &schemes {
        let headers = scheme
            .sign(
                std::slice::from_ref(&secret),
                &SignRequest {
                    id: &id,
                    timestamp: ts,
                    body,
                },
            )
            .unwrap();
        let v = Verifier::for_scheme(scheme, std::slice::from_ref(&secret)).unwrap();
        assert_eq!(v.verify_at(&headers, body, now).is_ok(), inside);
        check_tamper(&v, &headers, body, ts);
    }
    let t = ts.to_string();
    let slack = vec![
        (SlackSignature::HEADER_TIMESTAMP.to_owned(), t.clone()),
        (
            SlackSignature::HEADER_SIGNATURE.to_owned(),
            SlackSignature::sign(&secret, &t, body),
        ),
    ];
    let v = Verifier::slack(secret.clone());
    assert_eq!(v.verify_at(&slack, body, now).is_ok(), inside);
    check_tamper(&v, &slack, body, ts);
    let stripe = vec![(
        StripeSignature::HEADER.to_owned(),
        StripeSignature::sign(&[secret.clone()], ts, body),
    )];
    let v = Verifier::stripe(secret);
    assert_eq!(v.verify_at(&stripe, body, now).is_ok(), inside);
    check_tamper(&v, &stripe, body, ts);
});

fn check_tamper(v: &Verifier, headers: &Vec<(String, String)>, body: &[u8], ts: i64) {
    if let Some(first) = body.first() {
        let mut changed = body.to_vec();
        changed[0] = first ^ 0x01;
        assert!(v.verify_at(headers, &changed, ts).is_err());
    }
}
