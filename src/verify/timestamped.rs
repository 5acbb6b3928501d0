//! `X-<Prefix>-Timestamp` + `X-<Prefix>-Signature: sha256=<hex>` over `<ts>.<body>`.

use super::{Claim, HeaderSource, VerifyError, timestamp_and_signature};
use crate::signature::TimestampedSignature;

pub(super) fn claim<'a>(
    scheme: &'a TimestampedSignature,
    headers: &'a (impl HeaderSource + ?Sized),
    body: &'a [u8],
) -> Result<Claim<'a>, VerifyError> {
    let (timestamp, ts_text, sig) = timestamp_and_signature(
        headers,
        scheme.timestamp_header(),
        scheme.signature_header(),
        TimestampedSignature::VALUE_PREFIX,
    )?;
    Ok(Claim {
        timestamp: Some(timestamp),
        id: None,
        signature: sig,
        count: 1,
        matches: Box::new(move |secret| scheme.verify(secret, ts_text, body, sig)),
    })
}
