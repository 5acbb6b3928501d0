//! `X-<Prefix>-Timestamp` + `X-<Prefix>-Signature: sha256=<hex>` over `<ts>.<body>`.

use super::{Claim, HeaderSource, VerifyError, no_asymmetric, timestamp_and_signature};
use crate::signature::{TimestampedSignature, hmac_sha256};

pub(super) fn claim<'a>(
    scheme: &'a TimestampedSignature,
    headers: &'a (impl HeaderSource + ?Sized),
    body: &'a [u8],
) -> Result<Claim<'a>, VerifyError> {
    let (timestamp, ts_text, mac) = timestamp_and_signature(
        headers,
        scheme.timestamp_header(),
        scheme.signature_header(),
        TimestampedSignature::VALUE_PREFIX,
    )?;
    Ok(Claim {
        tag: "timestamped",
        timestamp: Some(timestamp),
        id: None,
        signatures: vec![mac],
        count: 1,
        signed_by: no_asymmetric(),
        mac: Box::new(move |secret| {
            Some(hmac_sha256(
                secret.expose(),
                &TimestampedSignature::signed_content(ts_text, body),
            ))
        }),
    })
}
