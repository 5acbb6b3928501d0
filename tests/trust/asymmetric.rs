//! Standard Webhooks asymmetric signatures (`v1a`, ed25519, `whsk_` /
//! `whpk_` keys) on both sides, checked against an independent
//! implementation (Python's `cryptography`), the spec's example header, and
//! the errors a wrong key gives.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hookbus::Event;
use hookbus::signature::{Secret, SignRequest, SignatureError, SignatureScheme, StandardWebhooks};
use hookbus::verify::{Verifier, VerifyError};
use hookbus::webhook::WebhookEmitter;
use serde_json::json;

use crate::python;

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// A fixed seed, so the Python side can make the same key pair.
const SEED: [u8; 32] = [
    0x4c, 0xcd, 0x08, 0x9b, 0x28, 0xff, 0x96, 0xda, 0x9d, 0xb6, 0xc3, 0x46, 0xec, 0x11, 0x4e, 0x0f,
    0x5b, 0x8a, 0x31, 0x9f, 0x35, 0xab, 0xa6, 0x24, 0xda, 0x8c, 0xf6, 0xed, 0x4f, 0xb8, 0xa6, 0xfb,
];
const NOW: i64 = 1_700_000_000;

fn keys() -> (Secret, Secret) {
    let (signing, public) = StandardWebhooks::keypair_from_seed(SEED);
    (signing, Secret::new(public))
}

fn headers(id: &str, ts: i64, signature: &str) -> Vec<(String, String)> {
    vec![
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), ts.to_string()),
        ("webhook-signature".into(), signature.into()),
    ]
}

/// Python: ed25519 from the seed given as hex in argv[1] with the
/// `cryptography` package; prints the whpk_ public key, then verifies each
/// "v1a," signature of stdin's JSON {id, ts, body, signature} and signs the
/// same content, printing "verified" or "REFUSED" and the signature.
const PY_ED25519: &str = r#"
import base64, json, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization
from cryptography.exceptions import InvalidSignature

private = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(sys.argv[1]))
public = private.public_key()
raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
print("whpk_" + base64.b64encode(raw).decode())
req = json.loads(sys.stdin.read())
content = (req["id"] + "." + str(req["ts"]) + ".").encode() + req["body"].encode()
verified = False
for entry in req["signature"].split(" "):
    version, _, sig = entry.partition(",")
    if version != "v1a":
        continue
    try:
        public.verify(base64.b64decode(sig), content)
        verified = True
    except InvalidSignature:
        pass
print("verified" if verified else "REFUSED")
print("v1a," + base64.b64encode(private.sign(content)).decode())
"#;

fn python_ed25519(id: &str, ts: i64, body: &str, signature: &str) -> Vec<String> {
    let input = json!({"id": id, "ts": ts, "body": body, "signature": signature}).to_string();
    let script = format!(
        "import sys\nsys.argv.append({:?})\n{PY_ED25519}",
        hex::encode(SEED)
    );
    python::run_ok(&script, input.as_bytes())
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn v1a_round_trips_both_ways_with_an_independent_implementation() {
    if !python::require(
        "v1a_round_trips_both_ways_with_an_independent_implementation",
        &["cryptography"],
    ) {
        return;
    }
    let (signing, public) = keys();
    let body = r#"{"type":"order.paid","data":{"order_id":42}}"#;
    // hookbus signs, with a whsec_ secret and a whsk_ key side by side
    // (rotation from symmetric to asymmetric).
    let signed = SignatureScheme::standard_webhooks()
        .sign(
            &[Secret::new(WHSEC), signing.clone()],
            &SignRequest {
                id: "msg_1",
                timestamp: NOW,
                body: body.as_bytes(),
            },
        )
        .unwrap();
    let value = &signed[2].1;
    assert!(
        value.starts_with("v1,") && value.contains(" v1a,"),
        "{value}"
    );
    let out = python_ed25519("msg_1", NOW, body, value);
    // The same public key, derived independently.
    assert_eq!(out[0].as_bytes(), public.expose());
    assert_eq!(
        out[1], "verified",
        "Python verifies hookbus's v1a signature"
    );
    // ed25519 is deterministic: Python's signature is hookbus's, byte for byte.
    let ours = value.split(' ').nth(1).unwrap();
    assert_eq!(out[2], ours);
    // Python signs, hookbus verifies with the public key alone.
    let verifier = Verifier::standard_webhooks(public.clone()).unwrap();
    let got = verifier
        .verify_at(&headers("msg_1", NOW, &out[2]), body.as_bytes(), NOW)
        .unwrap();
    assert_eq!(got.id.as_deref(), Some("msg_1"));
    // And a tampered body fails on the Python side as it does on ours.
    let tampered = python_ed25519("msg_1", NOW, &body.replace("42", "43"), value);
    assert_eq!(tampered[1], "REFUSED");
}

#[test]
fn a_tampered_body_a_wrong_key_and_a_secret_key_to_verify_are_refused_clearly() {
    let (signing, public) = keys();
    let body = br#"{"order_id":42}"#;
    let sig = StandardWebhooks::sign(&signing, "msg_1", &NOW.to_string(), body).unwrap();
    let hs = headers("msg_1", NOW, &sig);
    let verifier = Verifier::standard_webhooks(public).unwrap();
    assert!(verifier.verify_at(&hs, body, NOW).is_ok());

    let err = verifier
        .verify_at(&hs, br#"{"order_id":43}"#, NOW)
        .unwrap_err();
    assert_eq!(
        err,
        VerifyError::Mismatch {
            signatures: 1,
            secrets: 1
        }
    );
    assert!(err.to_string().contains("signature mismatch"), "{err}");

    let (_, other) = StandardWebhooks::keypair_from_seed([3; 32]);
    let err = Verifier::standard_webhooks(other)
        .unwrap()
        .verify_at(&hs, body, NOW)
        .unwrap_err();
    assert!(matches!(err, VerifyError::Mismatch { .. }), "{err}");

    let err = Verifier::standard_webhooks(signing.clone()).unwrap_err();
    assert_eq!(err, SignatureError::SigningKeyToVerify);
    let text = err.to_string();
    assert!(
        text.contains("whsk_ secret key was given to verify") && text.contains("whpk_"),
        "{text}"
    );
    assert!(!text.contains(std::str::from_utf8(signing.expose()).unwrap()));

    // A public key cannot sign: refused when the webhook is built.
    let (_, public) = keys();
    let err = WebhookEmitter::builder("http://127.0.0.1:9/hook")
        .secret(public)
        .build_emitter()
        .unwrap_err()
        .to_string();
    assert!(err.contains("whpk_ public key cannot sign"), "{err}");
    // An ed25519 key given to an HMAC scheme is refused, not used as bytes.
    let err = Verifier::briefcase("").secret(signing).unwrap_err();
    assert_eq!(err, SignatureError::AsymmetricKeyForHmacScheme);
}

#[test]
fn the_specs_example_header_carries_v1_and_v1a_side_by_side() {
    // The header of the spec's "Webhook headers" example (its keys are not
    // published): both entries are read, neither matches these keys.
    let value = "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4= v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==";
    let v1a = value
        .split(' ')
        .nth(1)
        .unwrap()
        .strip_prefix("v1a,")
        .unwrap();
    assert_eq!(
        BASE64.decode(v1a).unwrap().len(),
        64,
        "an ed25519 signature"
    );
    let hs = headers("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", 1674087231, value);
    let (_, public) = keys();
    let verifier = Verifier::standard_webhooks(WHSEC)
        .unwrap()
        .secret(public)
        .unwrap();
    assert_eq!(
        verifier.verify_at(&hs, b"{}", 1674087231).unwrap_err(),
        VerifyError::Mismatch {
            signatures: 2,
            secrets: 2
        }
    );
    // The spec's v1 example verifies as the spec says, next to a v1a entry.
    let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    let body = br#"{"test": 2432232314}"#;
    let with_v1a = format!(
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= {}",
        value.split(' ').nth(1).unwrap()
    );
    assert!(StandardWebhooks::verify(&secret, id, "1614265330", body, &with_v1a).unwrap());
}

#[tokio::test]
async fn a_webhook_signed_with_whsk_verifies_at_an_ingress_holding_whpk() {
    use hookbus::Bus;
    use hookbus::ingress::Ingress;

    let (signing, public) = keys();
    let bus = Bus::new().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    bus.on("order.*", move |e: &Event| {
        let _ = tx.send(e.clone());
    })
    .unwrap()
    .detach();
    let app = Ingress::new(bus)
        .cloudevents("/events", Verifier::standard_webhooks(public).unwrap())
        .into_router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let emitter = WebhookEmitter::builder(format!("http://{addr}/events"))
        .secret(signing)
        .build_emitter()
        .unwrap();
    let sent = Event::new("order.paid", json!({"order_id": 42})).unwrap();
    let outcome = emitter.emit(sent.clone()).await;
    assert!(outcome.is_delivered(), "{outcome:?}");
    assert_eq!(rx.recv().await.unwrap(), sent);
    // A different key pair's signature is refused with 401.
    let (wrong, _) = StandardWebhooks::keypair_from_seed([5; 32]);
    let impostor = WebhookEmitter::builder(format!("http://{addr}/events"))
        .secret(wrong)
        .max_attempts(1)
        .build_emitter()
        .unwrap();
    let outcome = impostor
        .emit(Event::new("order.paid", json!({})).unwrap())
        .await;
    assert_eq!(outcome.status_code, Some(401), "{outcome:?}");
}
