//! `X-<Prefix>-Timestamp` + `X-<Prefix>-Signature: sha256=<hex>` over `<ts>.<body>`.

use super::{Claim, HeaderSource, VerifyError, check_hex_mac, header, parse_timestamp};
use crate::signature::TimestampedSignature;

pub(super) fn claim<'a>(
    scheme: &'a TimestampedSignature,
    headers: &'a (impl HeaderSource + ?Sized),
    body: &'a [u8],
) -> Result<Claim<'a>, VerifyError> {
    let ts_name = scheme.timestamp_header();
    let sig_name = scheme.signature_header();
    let ts_text = header(headers, ts_name)?;
    let sig = header(headers, sig_name)?;
    let timestamp = parse_timestamp(ts_name, ts_text)?;
    let hex = sig
        .strip_prefix(TimestampedSignature::VALUE_PREFIX)
        .ok_or_else(|| {
            VerifyError::malformed(sig_name, "the value does not start with \"sha256=\"")
        })?;
    check_hex_mac(sig_name, hex)?;
    Ok(Claim {
        timestamp: Some(timestamp),
        id: None,
        signature: sig,
        count: 1,
        matches: Box::new(move |secret| scheme.verify(secret, ts_text, body, sig)),
    })
}
