//! Standard Webhooks v1: `webhook-id`, `webhook-timestamp`,
//! `webhook-signature: v1,<base64>[ v1a,<base64>…]` over `<id>.<ts>.<body>`:
//! `v1` HMAC-SHA256 under `whsec_` secrets, `v1a` ed25519 under `whpk_`
//! public keys.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::{Claim, HeaderSource, VerifyError, header, parse_timestamp};
use crate::signature::{StandardKey, StandardWebhooks, ed25519_verify, hmac_sha256};

/// More signatures than any rotation needs; past this the header is refused
/// rather than making each request cost unbounded work.
const MAX_SIGNATURES: usize = 16;

/// The decoded signatures of a `webhook-signature` value.
#[derive(Default)]
struct Signatures {
    /// `v1`: HMAC-SHA256 values.
    symmetric: Vec<Vec<u8>>,
    /// `v1a`: ed25519 signatures (64 bytes each).
    asymmetric: Vec<Vec<u8>>,
}

/// Checks the shape of a `webhook-signature` value and decodes its `v1` and
/// `v1a` signatures. Entries of other versions are skipped, as the spec
/// asks; a value with neither, or a `v1` entry that is not base64, is
/// malformed. A `v1a` entry that is not an ed25519 signature (64 bytes of
/// base64) verifies under no key.
fn decode_signatures(name: &str, value: &str) -> Result<Signatures, VerifyError> {
    let mut found = Signatures::default();
    for entry in value.split(' ').filter(|e| !e.is_empty()) {
        let Some((version, b64)) = entry.split_once(',') else {
            return Err(VerifyError::malformed(
                name,
                "each signature must be \"<version>,<base64>\"",
            ));
        };
        let list = match version {
            "v1" => &mut found.symmetric,
            "v1a" => &mut found.asymmetric,
            _ => continue,
        };
        if list.len() == MAX_SIGNATURES {
            return Err(VerifyError::malformed(name, "too many signatures"));
        }
        match BASE64.decode(b64) {
            Ok(raw) => list.push(raw),
            Err(_) if version == "v1" => {
                return Err(VerifyError::malformed(name, "a v1 signature is not base64"));
            }
            // A v1a entry that is not base64 matches no key; it is counted
            // (a verifier holding only whsec_ secrets never reads v1a).
            Err(_) => list.push(Vec::new()),
        }
    }
    if found.symmetric.is_empty() && found.asymmetric.is_empty() {
        return Err(VerifyError::malformed(name, "no v1 or v1a signature"));
    }
    Ok(found)
}

pub(super) fn claim<'a>(
    headers: &'a (impl HeaderSource + ?Sized),
    body: &'a [u8],
) -> Result<Claim<'a>, VerifyError> {
    let id = header(headers, StandardWebhooks::HEADER_ID)?;
    let ts_text = header(headers, StandardWebhooks::HEADER_TIMESTAMP)?;
    let sig = header(headers, StandardWebhooks::HEADER_SIGNATURE)?;
    let timestamp = parse_timestamp(StandardWebhooks::HEADER_TIMESTAMP, ts_text)?;
    let Signatures {
        symmetric,
        asymmetric,
    } = decode_signatures(StandardWebhooks::HEADER_SIGNATURE, sig)?;
    Ok(Claim {
        tag: "standard",
        timestamp: Some(timestamp),
        id: Some(id),
        count: symmetric.len() + asymmetric.len(),
        signatures: symmetric,
        // Secrets are checked when added, so reading one fails only for a
        // secret that never was: it then matches nothing.
        mac: Box::new(
            move |secret| match StandardWebhooks::verifying(secret).ok()? {
                StandardKey::Symmetric(key) => Some(hmac_sha256(
                    &key,
                    &StandardWebhooks::signed_content(id, ts_text, body),
                )),
                _ => None,
            },
        ),
        signed_by: Box::new(move |secret| {
            let StandardKey::Public(key) = StandardWebhooks::verifying(secret).ok()? else {
                return None;
            };
            if asymmetric.is_empty() {
                return Some(false);
            }
            let message = StandardWebhooks::message(id, ts_text, body);
            Some(
                asymmetric
                    .iter()
                    .any(|sig| ed25519_verify(&key, &message, sig)),
            )
        }),
    })
}
