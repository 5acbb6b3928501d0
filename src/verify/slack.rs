//! Slack: `X-Slack-Request-Timestamp` + `X-Slack-Signature: v0=<hex>` over `v0:<ts>:<body>`.

use super::{Claim, HeaderSource, VerifyError, check_hex_mac, header, parse_timestamp};
use crate::signature::SlackSignature;

pub(super) fn claim<'a>(
    headers: &'a (impl HeaderSource + ?Sized),
    body: &'a [u8],
) -> Result<Claim<'a>, VerifyError> {
    let ts_name = SlackSignature::HEADER_TIMESTAMP;
    let sig_name = SlackSignature::HEADER_SIGNATURE;
    let ts_text = header(headers, ts_name)?;
    let sig = header(headers, sig_name)?;
    let timestamp = parse_timestamp(ts_name, ts_text)?;
    let hex = sig
        .strip_prefix(SlackSignature::VALUE_PREFIX)
        .ok_or_else(|| VerifyError::malformed(sig_name, "the value does not start with \"v0=\""))?;
    check_hex_mac(sig_name, hex)?;
    Ok(Claim {
        timestamp: Some(timestamp),
        id: None,
        signature: sig,
        count: 1,
        matches: Box::new(move |secret| SlackSignature::verify(secret, ts_text, body, sig)),
    })
}
