//! `hookbus keygen` and the CLI with asymmetric keys: what keygen prints
//! is a valid key pair (checked by Python's `cryptography`), `send` signs
//! with the `whsk_` key, `listen` verifies with the `whpk_` key, and a key
//! in the wrong place is refused with a clear message.

use std::process::Output;

use crate::cli_defaults::{hookbus, listen};
use crate::python;

fn keygen(args: &[&str]) -> Vec<String> {
    let out = hookbus().arg("keygen").args(args).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).lines().map(str::to_owned).collect()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn send(url: &str, secret: &str) -> Output {
    hookbus()
        .args(["send", "--url", url, "--secret", secret])
        .args(["--type", "order.paid", "--data", r#"{"order_id":42}"#])
        .args(["--attempts", "1"])
        .output()
        .unwrap()
}

#[test]
fn keygen_prints_fresh_keys_of_each_kind() {
    let all = keygen(&[]);
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(all[0].starts_with("whsec_"), "{all:?}");
    assert!(all[1].starts_with("whsk_"), "{all:?}");
    assert!(all[2].starts_with("whpk_"), "{all:?}");
    let again = keygen(&[]);
    assert_ne!(all, again, "fresh keys every time");
    let symmetric = keygen(&["--kind", "symmetric"]);
    assert_eq!(symmetric.len(), 1);
    assert!(symmetric[0].starts_with("whsec_"));
    // 32 random bytes, base64.
    assert_eq!(symmetric[0].len(), "whsec_".len() + 44);
    let pair = keygen(&["--kind", "asymmetric"]);
    assert_eq!(pair.len(), 2);
    assert!(pair[0].starts_with("whsk_") && pair[1].starts_with("whpk_"));
}

#[test]
fn keygen_pairs_are_ed25519_key_pairs_for_an_independent_implementation() {
    if !python::require(
        "keygen_pairs_are_ed25519_key_pairs_for_an_independent_implementation",
        &["cryptography"],
    ) {
        return;
    }
    let pair = keygen(&["--kind", "asymmetric"]);
    let script = r#"
import base64, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization
sk, pk = sys.stdin.read().split()
private = Ed25519PrivateKey.from_private_bytes(base64.b64decode(sk[len("whsk_"):]))
raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
print("match" if "whpk_" + base64.b64encode(raw).decode() == pk else "MISMATCH")
"#;
    let out = python::run_ok(script, pair.join("\n").as_bytes());
    assert_eq!(out.trim(), "match");
}

#[test]
fn send_signs_with_whsk_and_listen_verifies_with_whpk() {
    let pair = keygen(&["--kind", "asymmetric"]);
    let (listener, url) = listen(&["--secret", &pair[1]]);
    let out = send(&url, &pair[0]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("whsk_ ed25519 secret key"),
        "send says how it read the key: {}",
        text(&out.stderr)
    );
    let line = listener.next();
    assert!(
        line.contains("sig ok") && line.contains("order.paid"),
        "{line}"
    );
    // Another pair's signature is refused, with the reason.
    let other = keygen(&["--kind", "asymmetric"]);
    let out = send(&url, &other[0]);
    assert_eq!(out.status.code(), Some(1));
    let line = listener.next();
    assert!(line.contains("sig BAD (signature mismatch"), "{line}");
}

#[test]
fn a_key_in_the_wrong_place_is_refused_with_a_clear_message() {
    let pair = keygen(&["--kind", "asymmetric"]);
    // A receiver given the secret key.
    let out = hookbus()
        .args(["listen", "--port", "0", "--secret", &pair[0]])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("whsk_ secret key was given to verify") && stderr.contains("whpk_"),
        "{stderr}"
    );
    assert!(!stderr.contains(&pair[0]), "the key is never printed");
    // A sender given the public key.
    let out = send("http://127.0.0.1:9/hook", &pair[1]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("whpk_ public key cannot sign"),
        "{}",
        text(&out.stderr)
    );
    // verify with the secret key.
    let out = hookbus()
        .args([
            "verify",
            "--secret",
            &pair[0],
            "-H",
            "webhook-id: m",
            "--body",
            "{}",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("whsk_ secret key was given to verify"));
}
