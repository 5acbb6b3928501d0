//! One header with the HMAC of the body: Briefcase, Empathy, GitHub.

use super::{Claim, HeaderSource, VerifyError, check_prefixed_hex, header};
use crate::signature::BodySignature;

pub(super) fn claim<'a>(
    scheme: &'a BodySignature,
    headers: &'a (impl HeaderSource + ?Sized),
    body: &'a [u8],
) -> Result<Claim<'a>, VerifyError> {
    let value = header(headers, scheme.header())?;
    check_prefixed_hex(scheme.header(), value, scheme.prefix())?;
    Ok(Claim {
        timestamp: None,
        id: None,
        signature: value,
        count: 1,
        matches: Box::new(move |secret| scheme.verify(secret, body, value)),
    })
}
