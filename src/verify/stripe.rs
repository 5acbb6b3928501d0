//! Stripe-style `t=<ts>,v1=<hex>[,v1=<hex>…]` over `<ts>.<body>`.

use super::{Claim, HeaderSource, VerifyError, check_hex_mac, header, parse_timestamp};
use crate::signature::StripeSignature;

const MAX_SIGNATURES: usize = 16;

/// The timestamp text and the `v1` signatures of a Stripe-style value.
/// Other schemes (`v0=` test signatures and unknown keys) are skipped.
fn parse<'a>(name: &str, value: &'a str) -> Result<(&'a str, Vec<&'a str>), VerifyError> {
    let mut ts = None;
    let mut sigs = Vec::new();
    for item in value.split(',') {
        let Some((k, v)) = item.trim().split_once('=') else {
            return Err(VerifyError::malformed(
                name,
                "each item must be \"key=value\"",
            ));
        };
        match k {
            "t" if ts.is_some() => {
                return Err(VerifyError::malformed(name, "more than one t= timestamp"));
            }
            "t" => ts = Some(v),
            "v1" => {
                if sigs.len() == MAX_SIGNATURES {
                    return Err(VerifyError::malformed(name, "too many signatures"));
                }
                check_hex_mac(name, v)?;
                sigs.push(v);
            }
            _ => {}
        }
    }
    let ts = ts.ok_or_else(|| VerifyError::malformed(name, "no t= timestamp"))?;
    if sigs.is_empty() {
        return Err(VerifyError::malformed(name, "no v1= signature"));
    }
    Ok((ts, sigs))
}

pub(super) fn claim<'a>(
    name: &'a str,
    headers: &'a (impl HeaderSource + ?Sized),
    body: &'a [u8],
) -> Result<Claim<'a>, VerifyError> {
    let value = header(headers, name)?;
    let (ts_text, signatures) = parse(name, value)?;
    Ok(Claim {
        timestamp: Some(parse_timestamp(name, ts_text)?),
        id: None,
        signature: value,
        count: signatures.len(),
        matches: Box::new(move |secret| {
            signatures
                .iter()
                .any(|hex| StripeSignature::verify(secret, ts_text, body, hex))
        }),
    })
}
