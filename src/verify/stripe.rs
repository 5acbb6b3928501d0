//! Stripe-style `t=<ts>,v1=<hex>[,v1=<hex>…]` over `<ts>.<body>`.

use super::{
    Claim, HeaderSource, VerifyError, decode_hex_mac, header, no_asymmetric, parse_timestamp,
};
use crate::signature::{StripeSignature, hmac_sha256};

const MAX_SIGNATURES: usize = 16;

/// The timestamp text, the decoded well-formed `v1` signatures and how many
/// `v1` entries there were. As in Stripe's libraries, other schemes (`v0=`
/// test signatures, unknown keys) are ignored and one valid `v1` is enough:
/// a `v1` entry that is not 64 hex digits simply matches nothing. A value
/// whose `v1` entries are all malformed is malformed.
fn parse<'a>(name: &str, value: &'a str) -> Result<(&'a str, Vec<Vec<u8>>, usize), VerifyError> {
    let mut ts = None;
    let mut sigs = Vec::new();
    let mut count = 0;
    let mut first_error = None;
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
                if count == MAX_SIGNATURES {
                    return Err(VerifyError::malformed(name, "too many signatures"));
                }
                count += 1;
                match decode_hex_mac(name, v) {
                    Ok(mac) => sigs.push(mac),
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            _ => {}
        }
    }
    let ts = ts.ok_or_else(|| VerifyError::malformed(name, "no t= timestamp"))?;
    if count == 0 {
        return Err(VerifyError::malformed(name, "no v1= signature"));
    }
    if sigs.is_empty()
        && let Some(e) = first_error
    {
        return Err(e);
    }
    Ok((ts, sigs, count))
}

pub(super) fn claim<'a>(
    name: &'a str,
    headers: &'a (impl HeaderSource + ?Sized),
    body: &'a [u8],
) -> Result<Claim<'a>, VerifyError> {
    let value = header(headers, name)?;
    let (ts_text, signatures, count) = parse(name, value)?;
    Ok(Claim {
        tag: "stripe",
        timestamp: Some(parse_timestamp(name, ts_text)?),
        id: None,
        signatures,
        count,
        signed_by: no_asymmetric(),
        mac: Box::new(move |secret| {
            Some(hmac_sha256(
                secret.expose(),
                &StripeSignature::signed_content(ts_text, body),
            ))
        }),
    })
}
