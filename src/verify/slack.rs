//! Slack: `X-Slack-Request-Timestamp` + `X-Slack-Signature: v0=<hex>` over `v0:<ts>:<body>`.

use super::{Claim, HeaderSource, VerifyError, timestamp_and_signature};
use crate::signature::SlackSignature;

pub(super) fn claim<'a>(
    headers: &'a (impl HeaderSource + ?Sized),
    body: &'a [u8],
) -> Result<Claim<'a>, VerifyError> {
    let (timestamp, ts_text, sig) = timestamp_and_signature(
        headers,
        SlackSignature::HEADER_TIMESTAMP,
        SlackSignature::HEADER_SIGNATURE,
        SlackSignature::VALUE_PREFIX,
    )?;
    Ok(Claim {
        timestamp: Some(timestamp),
        id: None,
        signature: sig,
        count: 1,
        matches: Box::new(move |secret| SlackSignature::verify(secret, ts_text, body, sig)),
    })
}
