//! One header with the HMAC of the body: Briefcase, Empathy, GitHub.

use super::{Claim, HeaderSource, VerifyError, header, no_asymmetric, prefixed_hex};
use crate::signature::{BodySignature, hmac_sha256};

pub(super) fn claim<'a>(
    scheme: &'a BodySignature,
    headers: &'a (impl HeaderSource + ?Sized),
    body: &'a [u8],
) -> Result<Claim<'a>, VerifyError> {
    let value = header(headers, scheme.header())?;
    let mac = prefixed_hex(scheme.header(), value, scheme.prefix())?;
    Ok(Claim {
        tag: "body",
        timestamp: None,
        id: None,
        signatures: vec![mac],
        count: 1,
        signed_by: no_asymmetric(),
        mac: Box::new(move |secret| {
            Some(hmac_sha256(
                secret.expose(),
                &BodySignature::signed_content(body),
            ))
        }),
    })
}
