//! Slack: `X-Slack-Request-Timestamp` + `X-Slack-Signature: v0=<hex>` over `v0:<ts>:<body>`.

use super::{Claim, HeaderSource, VerifyError, no_asymmetric, timestamp_and_signature};
use crate::signature::{SlackSignature, hmac_sha256};

pub(super) fn claim<'a>(
    headers: &'a (impl HeaderSource + ?Sized),
    body: &'a [u8],
) -> Result<Claim<'a>, VerifyError> {
    let (timestamp, ts_text, mac) = timestamp_and_signature(
        headers,
        SlackSignature::HEADER_TIMESTAMP,
        SlackSignature::HEADER_SIGNATURE,
        SlackSignature::VALUE_PREFIX,
    )?;
    Ok(Claim {
        tag: "slack",
        timestamp: Some(timestamp),
        id: None,
        signatures: vec![mac],
        count: 1,
        signed_by: no_asymmetric(),
        mac: Box::new(move |secret| {
            Some(hmac_sha256(
                secret.expose(),
                &SlackSignature::signed_content(ts_text, body),
            ))
        }),
    })
}
