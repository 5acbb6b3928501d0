//! The schemes a sender can now sign with (`SignatureScheme::github()`,
//! `SignatureScheme::slack()`, as `hookbus send` does) verify on the
//! receiving side with the matching `Verifier`.

use hookbus::signature::{Secret, SignRequest, SignatureScheme};
use hookbus::verify::{Verifier, VerifyError};

#[test]
fn github_and_slack_signatures_round_trip_through_the_verifier() {
    let secret = Secret::new("It's a Secret to Everybody");
    let body = br#"{"decision_id":"abc123"}"#;
    let ts = 1_700_000_000;
    for scheme in [SignatureScheme::github(), SignatureScheme::slack()] {
        let headers = scheme
            .sign(
                std::slice::from_ref(&secret),
                &SignRequest {
                    id: "e1",
                    timestamp: ts,
                    body,
                },
            )
            .unwrap();
        let names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, scheme.header_names(), "{scheme:?}");
        let verifier = Verifier::for_scheme(&scheme, std::slice::from_ref(&secret)).unwrap();
        verifier.verify_at(&headers, body, ts).unwrap();
        let err = verifier.verify_at(&headers, b"{}", ts).unwrap_err();
        assert!(
            matches!(err, VerifyError::Mismatch { .. }),
            "{scheme:?}: {err}"
        );
    }
    // GitHub's documented vector, through the scheme.
    let headers = SignatureScheme::github()
        .sign(
            &[secret],
            &SignRequest {
                id: "",
                timestamp: 0,
                body: b"Hello, World!",
            },
        )
        .unwrap();
    assert_eq!(
        headers,
        [(
            "X-Hub-Signature-256".to_owned(),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17".to_owned()
        )]
    );
}
