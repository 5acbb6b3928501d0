//! Every verifier against arbitrary header values and bodies: never a panic,
//! and never an accepted request (the fuzzer does not know the secrets).
#![no_main]

use hookbus::verify::Verifier;
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 9] = [
    "X-Briefcase-Signature",
    "X-Hub-Signature-256",
    "X-Rubric-Timestamp",
    "X-Rubric-Signature",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "X-Slack-Request-Timestamp",
    "Stripe-Signature",
];

fuzz_target!(|data: &[u8]| {
    // Input layout: values for each header separated by 0xFF, then the body;
    // the first 8 bytes (if any) are the clock.
    let (now, rest) = match data.split_first_chunk::<8>() {
        Some((n, rest)) => (i64::from_le_bytes(*n), rest),
        None => (0, data),
    };
    let mut parts = rest.split(|&b| b == 0xFF);
    let mut headers: Vec<(&str, &[u8])> = Vec::new();
    for name in NAMES.iter().chain(["X-Slack-Signature"].iter()) {
        if let Some(v) = parts.next() {
            headers.push((name, v));
        }
    }
    let body = parts.next().unwrap_or_default();
    let verifiers = [
        Verifier::briefcase("k"),
        Verifier::github("k"),
        Verifier::timestamped("Rubric", "k").unwrap(),
        Verifier::standard_webhooks("whsec_a2V5").unwrap(),
        Verifier::slack("k"),
        Verifier::stripe("k"),
    ];
    for v in &verifiers {
        assert!(v.verify_at(&headers, body, now).is_err());
    }
});
