//! One header with the HMAC of the body: Briefcase, Empathy, GitHub.

use super::{Claim, HeaderSource, VerifyError, header, parse_hex_mac};
use crate::signature::BodySignature;

pub(super) fn claim<'a>(
    scheme: &'a BodySignature,
    headers: &'a (impl HeaderSource + ?Sized),
    body: &'a [u8],
) -> Result<Claim<'a>, VerifyError> {
    let name = scheme.header();
    let value = header(headers, name)?;
    let hex = value.strip_prefix(scheme.prefix()).ok_or_else(|| {
        VerifyError::malformed(name, "the value does not start with the expected prefix")
    })?;
    Ok(Claim {
        timestamp: None,
        id: None,
        content: BodySignature::signed_content(body).to_vec(),
        signatures: vec![parse_hex_mac(name, hex)?],
    })
}
