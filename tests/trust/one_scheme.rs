//! One scheme enum signs and verifies: whatever a `SignatureScheme` signs,
//! a `Verifier` built from the same value accepts, and reports that value
//! as its scheme (before, verifying took a twin `VerifyScheme` whose Stripe
//! variant alone could name another header).

use hookbus::signature::{Secret, SignRequest, SignatureScheme, StandardWebhooks};
use hookbus::verify::{Verifier, VerifyError};

const NOW: i64 = 1_700_000_000;

#[test]
fn every_scheme_verifies_what_it_signs_through_the_same_value() {
    let (whsk, whpk) = StandardWebhooks::keypair_from_seed([11; 32]);
    let schemes = [
        (
            SignatureScheme::default(),
            Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            None,
        ),
        (
            SignatureScheme::standard_webhooks(),
            whsk,
            Some(Secret::new(whpk)),
        ),
        (SignatureScheme::briefcase(), Secret::new("s3cret"), None),
        (
            SignatureScheme::body("X-Empathy-Signature", "").unwrap(),
            Secret::new("s3cret"),
            None,
        ),
        (SignatureScheme::github(), Secret::new("s3cret"), None),
        (
            SignatureScheme::timestamped("Rubric").unwrap(),
            Secret::new("s3cret"),
            None,
        ),
        (SignatureScheme::slack(), Secret::new("s3cret"), None),
        (SignatureScheme::stripe(), Secret::new("whsec_s3cret"), None),
        (
            SignatureScheme::stripe_style("X-Acme-Signature").unwrap(),
            Secret::new("s3cret"),
            None,
        ),
    ];
    for (scheme, signing, verifying) in schemes {
        let body = br#"{"a":1}"#;
        let headers = scheme
            .sign(
                std::slice::from_ref(&signing),
                &SignRequest {
                    id: "msg_1",
                    timestamp: NOW,
                    body,
                },
            )
            .unwrap();
        let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, scheme.header_names(), "{scheme:?}");
        let verifier = Verifier::new(scheme.clone(), verifying.unwrap_or(signing)).unwrap();
        assert_eq!(verifier.scheme(), &scheme);
        verifier
            .verify_at(&headers, body, NOW)
            .unwrap_or_else(|e| panic!("{scheme:?}: {e}"));
        assert!(
            matches!(
                verifier.verify_at(&headers, b"{\"a\":2}", NOW),
                Err(VerifyError::Mismatch { .. })
            ),
            "{scheme:?}"
        );
    }
}
