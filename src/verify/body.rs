//! One header with the HMAC of the body: Briefcase, Empathy, GitHub.

use super::{Claim, HeaderSource, VerifyError, check_hex_mac, header};
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
    check_hex_mac(name, hex)?;
    Ok(Claim {
        timestamp: None,
        id: None,
        signature: value,
        count: 1,
        matches: Box::new(move |secret| scheme.verify(secret, body, value)),
    })
}
