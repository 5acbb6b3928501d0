//! Standard Webhooks v1: `webhook-id`, `webhook-timestamp`,
//! `webhook-signature: v1,<base64>[ v1,<base64>…]` over `<id>.<ts>.<body>`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::{Claim, HeaderSource, VerifyError, header, parse_timestamp};
use crate::signature::{StandardWebhooks, hmac_sha256};

/// More signatures than any rotation needs; past this the header is refused
/// rather than making each request cost unbounded work.
const MAX_SIGNATURES: usize = 16;

/// Checks the shape of a `webhook-signature` value and decodes its `v1`
/// signatures. Entries of other versions are skipped, as the spec asks; a
/// value with no `v1` entry, or a `v1` entry that is not base64, is malformed.
fn decode_signatures(name: &str, value: &str) -> Result<Vec<Vec<u8>>, VerifyError> {
    let mut macs = Vec::new();
    for entry in value.split(' ').filter(|e| !e.is_empty()) {
        let Some((version, b64)) = entry.split_once(',') else {
            return Err(VerifyError::malformed(
                name,
                "each signature must be \"<version>,<base64>\"",
            ));
        };
        if version != "v1" {
            continue;
        }
        if macs.len() == MAX_SIGNATURES {
            return Err(VerifyError::malformed(name, "too many signatures"));
        }
        macs.push(
            BASE64
                .decode(b64)
                .map_err(|_| VerifyError::malformed(name, "a v1 signature is not base64"))?,
        );
    }
    if macs.is_empty() {
        return Err(VerifyError::malformed(name, "no v1 signature"));
    }
    Ok(macs)
}

pub(super) fn claim<'a>(
    headers: &'a (impl HeaderSource + ?Sized),
    body: &'a [u8],
) -> Result<Claim<'a>, VerifyError> {
    let id = header(headers, StandardWebhooks::HEADER_ID)?;
    let ts_text = header(headers, StandardWebhooks::HEADER_TIMESTAMP)?;
    let sig = header(headers, StandardWebhooks::HEADER_SIGNATURE)?;
    let timestamp = parse_timestamp(StandardWebhooks::HEADER_TIMESTAMP, ts_text)?;
    let signatures = decode_signatures(StandardWebhooks::HEADER_SIGNATURE, sig)?;
    Ok(Claim {
        tag: "standard",
        timestamp: Some(timestamp),
        id: Some(id),
        count: signatures.len(),
        signatures,
        // Secrets are checked when added, so `key` fails only for a secret
        // that never was: it then matches nothing.
        mac: Box::new(move |secret| {
            let key = StandardWebhooks::key(secret).ok()?;
            Some(hmac_sha256(
                &key,
                &StandardWebhooks::signed_content(id, ts_text, body),
            ))
        }),
    })
}
