//! Standard Webhooks v1: `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`
//! (symmetric, `whsec_` secrets) or `v1a,<base64 ed25519 signature of the
//! same content>` (asymmetric, `whsk_` secret keys sign, `whpk_` public keys
//! verify).

use base64::Engine;
use base64::alphabet;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

use super::{Secret, SignatureError, hmac_sha256, hmac_sha256_verify};

pub(crate) const HEADER_ID: &str = "webhook-id";

/// Standard base64 that, like the official libraries, accepts a secret with
/// or without padding and ignores unused trailing bits.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// How a Standard Webhooks secret was read into its key
/// ([`StandardWebhooks::key_source`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecretSource {
    /// `whsec_` followed by base64: the decoded bytes.
    PrefixedBase64,
    /// No prefix, but base64: the decoded bytes (as the official libraries do).
    Base64,
    /// No prefix and not base64: the secret's own bytes (a hookbus extension;
    /// the official libraries refuse such a secret).
    RawBytes,
    /// `whsk_` followed by base64: an ed25519 secret key, which signs `v1a`
    /// signatures (the sending side only).
    SigningKey,
    /// `whpk_` followed by base64: an ed25519 public key, which verifies
    /// `v1a` signatures (the receiving side).
    PublicKey,
}

impl std::fmt::Display for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SecretSource::PrefixedBase64 => "whsec_ prefix, base64-decoded",
            SecretSource::Base64 => {
                "no whsec_ prefix, base64-decoded (as the Standard Webhooks libraries do)"
            }
            SecretSource::RawBytes => {
                "no whsec_ prefix and not base64: used as raw bytes (the Standard Webhooks libraries would refuse it)"
            }
            SecretSource::SigningKey => {
                "whsk_ ed25519 secret key: signs v1a (asymmetric) signatures"
            }
            SecretSource::PublicKey => {
                "whpk_ ed25519 public key: verifies v1a (asymmetric) signatures"
            }
        })
    }
}
pub(crate) const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub(crate) const HEADER_SIGNATURE: &str = "webhook-signature";

/// The prefix of a symmetric secret.
const SYMMETRIC_PREFIX: &[u8] = b"whsec_";
/// The prefix of an ed25519 secret (signing) key.
const SIGNING_KEY_PREFIX: &[u8] = b"whsk_";
/// The prefix of an ed25519 public (verifying) key.
const PUBLIC_KEY_PREFIX: &[u8] = b"whpk_";

/// A Standard Webhooks secret, read by its prefix.
pub(crate) enum StandardKey {
    /// HMAC-SHA256 key bytes (`whsec_`, or an unprefixed secret): `v1`.
    Symmetric(Vec<u8>),
    /// `whsk_`: signs `v1a`.
    Signing(SigningKey),
    /// `whpk_`: verifies `v1a`.
    Public(VerifyingKey),
}

/// Standard Webhooks v1, symmetric and asymmetric. With several secrets
/// (rotation) the signature header carries one signature per secret,
/// space-separated: `v1,<base64>` for a `whsec_` secret, `v1a,<base64>` for
/// a `whsk_` key, side by side.
///
/// Symmetric secrets are read as the official libraries read them (see
/// [`key`](Self::key)): base64, with or without the `whsec_` prefix, padded
/// or not. Asymmetric keys are ed25519 (RFC 8032), base64 after their
/// prefix: a `whsk_` secret key is the 32-byte seed (the 64-byte
/// seed-and-public-key form is read too, its public half checked), a
/// `whpk_` public key the 32-byte compressed point. The sender signs with
/// `whsk_` and gives receivers the `whpk_` ([`public_key`](Self::public_key)
/// derives it): a receiver then holds nothing that can sign.
///
/// ```
/// use hookbus::signature::{Secret, StandardWebhooks};
///
/// let (signing, public) = StandardWebhooks::keypair_from_seed([7; 32]);
/// assert!(public.starts_with("whpk_"));
/// let sig = StandardWebhooks::sign(&signing, "msg_1", "1700000000", b"{}")?;
/// assert!(sig.starts_with("v1a,"));
/// let public = Secret::new(public);
/// assert!(StandardWebhooks::verify(&public, "msg_1", "1700000000", b"{}", &sig)?);
/// assert!(!StandardWebhooks::verify(&public, "msg_1", "1700000000", b"{ }", &sig)?);
/// // The secret key belongs to the sender alone: a receiver given it is told so.
/// assert!(StandardWebhooks::verify(&signing, "msg_1", "1700000000", b"{}", &sig).is_err());
/// # Ok::<(), hookbus::signature::SignatureError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StandardWebhooks;

impl StandardWebhooks {
    /// The id header.
    pub const HEADER_ID: &'static str = HEADER_ID;
    /// The timestamp header.
    pub const HEADER_TIMESTAMP: &'static str = HEADER_TIMESTAMP;
    /// The signature header.
    pub const HEADER_SIGNATURE: &'static str = HEADER_SIGNATURE;
    /// The version prefix of each symmetric (HMAC-SHA256) signature.
    pub const VERSION_PREFIX: &'static str = "v1,";
    /// The version prefix of each asymmetric (ed25519) signature.
    pub const ASYMMETRIC_VERSION_PREFIX: &'static str = "v1a,";

    /// The HMAC key of a secret: the base64 after `whsec_`, or the whole
    /// secret as base64 when it has no prefix, as the official libraries
    /// decode it; padding is optional (the Python library pads unpadded
    /// secrets) and unused trailing bits are ignored.
    ///
    /// One deliberate difference: a secret **without** the prefix that is not
    /// base64 at all (e.g. `my secret!`) is used as its raw bytes, where the
    /// libraries raise an error; hookbus senders and receivers agree on it,
    /// and [`key_source`](Self::key_source) says which reading applied. A
    /// `whsec_` secret that does not decode is an error.
    ///
    /// A `whsk_` or `whpk_` key has no HMAC key:
    /// [`SignatureError::NotSymmetric`].
    pub fn key(secret: &Secret) -> Result<Vec<u8>, SignatureError> {
        match Self::read(secret)? {
            (StandardKey::Symmetric(key), _) => Ok(key),
            _ => Err(SignatureError::NotSymmetric),
        }
    }

    /// How `secret` is read: which prefix, which encoding, which use.
    pub fn key_source(secret: &Secret) -> Result<SecretSource, SignatureError> {
        Self::read(secret).map(|(_, source)| source)
    }

    /// A fresh `whsec_` secret from `bytes` of randomness (the spec asks
    /// for 24 to 64 bytes; `hookbus keygen` uses 32 from the OS).
    pub fn secret_from_bytes(bytes: &[u8]) -> Result<Secret, SignatureError> {
        if !(24..=64).contains(&bytes.len()) {
            return Err(SignatureError::BadSecretLength(bytes.len()));
        }
        Ok(Secret::new(format!("whsec_{}", BASE64.encode(bytes))))
    }

    /// The `whsk_` secret key and the `whpk_` public key of the ed25519 key
    /// pair made from `seed` (32 bytes of randomness; `hookbus keygen`
    /// draws them from the OS).
    pub fn keypair_from_seed(seed: [u8; 32]) -> (Secret, String) {
        let signing = SigningKey::from_bytes(&seed);
        (
            Secret::new(format!("whsk_{}", BASE64.encode(seed))),
            Self::public_text(&signing.verifying_key()),
        )
    }

    /// The `whpk_` public key of a `whsk_` secret key, to give receivers.
    pub fn public_key(secret: &Secret) -> Result<String, SignatureError> {
        match Self::read(secret)? {
            (StandardKey::Signing(key), _) => Ok(Self::public_text(&key.verifying_key())),
            (StandardKey::Public(key), _) => Ok(Self::public_text(&key)),
            (StandardKey::Symmetric(_), _) => Err(SignatureError::NotAsymmetric),
        }
    }

    fn public_text(key: &VerifyingKey) -> String {
        format!("whpk_{}", BASE64.encode(key.as_bytes()))
    }

    /// Reads a secret by its prefix.
    pub(crate) fn read(secret: &Secret) -> Result<(StandardKey, SecretSource), SignatureError> {
        let bytes = secret.expose();
        if let Some(b64) = bytes.strip_prefix(SIGNING_KEY_PREFIX) {
            let raw = LENIENT
                .decode(b64)
                .map_err(|_| SignatureError::BadSigningKey)?;
            let key = match raw.len() {
                32 => SigningKey::from_bytes(&raw[..].try_into().expect("32 bytes")),
                // libsodium's form: the seed, then the public key it makes.
                64 => SigningKey::from_keypair_bytes(&raw[..].try_into().expect("64 bytes"))
                    .map_err(|_| SignatureError::BadSigningKey)?,
                _ => return Err(SignatureError::BadSigningKey),
            };
            return Ok((StandardKey::Signing(key), SecretSource::SigningKey));
        }
        if let Some(b64) = bytes.strip_prefix(PUBLIC_KEY_PREFIX) {
            let key = LENIENT
                .decode(b64)
                .ok()
                .and_then(|raw| <[u8; 32]>::try_from(raw).ok())
                .and_then(|raw| VerifyingKey::from_bytes(&raw).ok())
                .ok_or(SignatureError::BadPublicKey)?;
            return Ok((StandardKey::Public(key), SecretSource::PublicKey));
        }
        Self::decode_symmetric(secret).map(|(k, s)| (StandardKey::Symmetric(k), s))
    }

    /// Reads a secret a receiver verifies with: a `whsec_` secret or a
    /// `whpk_` public key. A `whsk_` secret key belongs to the sender:
    /// [`SignatureError::SigningKeyToVerify`].
    pub(crate) fn verifying(secret: &Secret) -> Result<StandardKey, SignatureError> {
        match Self::read(secret)? {
            (StandardKey::Signing(_), _) => Err(SignatureError::SigningKeyToVerify),
            (key, _) => Ok(key),
        }
    }

    /// Reads a secret a sender signs with: a `whsec_` secret or a `whsk_`
    /// secret key. A `whpk_` public key cannot sign:
    /// [`SignatureError::PublicKeyToSign`].
    pub(crate) fn signing(secret: &Secret) -> Result<StandardKey, SignatureError> {
        match Self::read(secret)? {
            (StandardKey::Public(_), _) => Err(SignatureError::PublicKeyToSign),
            (key, _) => Ok(key),
        }
    }

    fn decode_symmetric(secret: &Secret) -> Result<(Vec<u8>, SecretSource), SignatureError> {
        match secret.expose().strip_prefix(SYMMETRIC_PREFIX) {
            Some(b64) => LENIENT
                .decode(b64)
                .map(|k| (k, SecretSource::PrefixedBase64))
                .map_err(|_| SignatureError::BadStandardSecret),
            None => match LENIENT.decode(secret.expose()) {
                Ok(k) if !k.is_empty() => Ok((k, SecretSource::Base64)),
                _ => Ok((secret.expose().to_vec(), SecretSource::RawBytes)),
            },
        }
    }
    /// The signed content: `<id>.<timestamp>.<body>`.
    pub fn signed_content<'a>(id: &'a str, timestamp: &'a str, body: &'a [u8]) -> [&'a [u8]; 5] {
        [id.as_bytes(), b".", timestamp.as_bytes(), b".", body]
    }
    /// The signed content as one message, as ed25519 signs it.
    pub(crate) fn message(id: &str, timestamp: &str, body: &[u8]) -> Vec<u8> {
        Self::signed_content(id, timestamp, body).concat()
    }

    /// One signature: `v1,<base64 HMAC>` for a `whsec_` secret,
    /// `v1a,<base64 ed25519 signature>` for a `whsk_` secret key. A `whpk_`
    /// public key cannot sign ([`SignatureError::PublicKeyToSign`]).
    pub fn sign(
        secret: &Secret,
        id: &str,
        timestamp: &str,
        body: &[u8],
    ) -> Result<String, SignatureError> {
        Ok(match Self::signing(secret)? {
            StandardKey::Symmetric(key) => {
                let mac = hmac_sha256(&key, &Self::signed_content(id, timestamp, body));
                format!("{}{}", Self::VERSION_PREFIX, BASE64.encode(mac))
            }
            StandardKey::Signing(key) => {
                let sig = key.sign(&Self::message(id, timestamp, body));
                format!(
                    "{}{}",
                    Self::ASYMMETRIC_VERSION_PREFIX,
                    BASE64.encode(sig.to_bytes())
                )
            }
            StandardKey::Public(_) => unreachable!("`signing` refuses public keys"),
        })
    }

    /// Whether any signature in a received `webhook-signature` value
    /// (space-separated) verifies: the `v1,` ones under a `whsec_` secret
    /// (constant time per signature), the `v1a,` ones under a `whpk_`
    /// public key. A `whsk_` secret key is refused
    /// ([`SignatureError::SigningKeyToVerify`]).
    pub fn verify(
        secret: &Secret,
        id: &str,
        timestamp: &str,
        body: &[u8],
        header_value: &str,
    ) -> Result<bool, SignatureError> {
        let entries = header_value.split(' ');
        Ok(match Self::verifying(secret)? {
            StandardKey::Symmetric(key) => {
                let content = Self::signed_content(id, timestamp, body);
                entries
                    .filter_map(|sig| sig.strip_prefix(Self::VERSION_PREFIX))
                    .filter_map(|b64| BASE64.decode(b64).ok())
                    .fold(false, |hit, mac| {
                        hit | hmac_sha256_verify(&key, &content, &mac)
                    })
            }
            StandardKey::Public(key) => {
                let message = Self::message(id, timestamp, body);
                entries
                    .filter_map(|sig| sig.strip_prefix(Self::ASYMMETRIC_VERSION_PREFIX))
                    .filter_map(|b64| BASE64.decode(b64).ok())
                    .any(|sig| ed25519_verify(&key, &message, &sig))
            }
            StandardKey::Signing(_) => unreachable!("`verifying` refuses secret keys"),
        })
    }
}

/// Whether `signature` (64 bytes) is `key`'s ed25519 signature of
/// `message`, under RFC 8032's strict rules (no small-order keys, canonical
/// encodings), which every honest signer's signatures meet.
pub(crate) fn ed25519_verify(key: &VerifyingKey, message: &[u8], signature: &[u8]) -> bool {
    ed25519_dalek::Signature::from_slice(signature)
        .is_ok_and(|sig| key.verify_strict(message, &sig).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_example() {
        // The example in the Standard Webhooks specification.
        let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let ts = "1614265330";
        let body = br#"{"test": 2432232314}"#;
        let sig = StandardWebhooks::sign(&secret, id, ts, body).unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        // Without the prefix it is the same key.
        let bare = Secret::new("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        assert_eq!(StandardWebhooks::sign(&bare, id, ts, body).unwrap(), sig);
        assert_eq!(
            StandardWebhooks::key_source(&bare).unwrap(),
            SecretSource::Base64
        );
        let rotated = format!("v1,bm9wZQ== {sig}");
        assert!(StandardWebhooks::verify(&secret, id, ts, body, &rotated).unwrap());
        assert!(!StandardWebhooks::verify(&secret, id, "1614265331", body, &sig).unwrap());
    }

    #[test]
    fn unpadded_secrets_decode_like_padded_ones() {
        // The Python library's test_signature_verification_with_unpadded_secret.
        for (unpadded, padded) in [
            (
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",
                "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS=",
            ),
            (
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBr",
                "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBr==",
            ),
        ] {
            assert_eq!(
                StandardWebhooks::key(&Secret::new(unpadded)).unwrap(),
                StandardWebhooks::key(&Secret::new(padded)).unwrap(),
            );
        }
        let raw = Secret::new("my secret!");
        assert_eq!(StandardWebhooks::key(&raw).unwrap(), b"my secret!");
        assert_eq!(
            StandardWebhooks::key_source(&raw).unwrap(),
            SecretSource::RawBytes
        );
        assert!(StandardWebhooks::key(&Secret::new("whsec_my secret!")).is_err());
    }

    /// RFC 8032 section 7.1, TEST 1: the key pair, through the whsk_/whpk_
    /// encodings.
    const RFC8032_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const RFC8032_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    fn rfc8032() -> (Secret, String) {
        let seed: [u8; 32] = hex::decode(RFC8032_SEED).unwrap().try_into().unwrap();
        StandardWebhooks::keypair_from_seed(seed)
    }

    #[test]
    fn keys_encode_the_rfc8032_key_pair() {
        let (signing, public) = rfc8032();
        let public_bytes = hex::decode(RFC8032_PUBLIC).unwrap();
        assert_eq!(public, format!("whpk_{}", BASE64.encode(&public_bytes)));
        assert_eq!(StandardWebhooks::public_key(&signing).unwrap(), public);
        assert_eq!(
            StandardWebhooks::key_source(&signing).unwrap(),
            SecretSource::SigningKey
        );
        // The 64-byte seed-and-public-key form reads as the same key.
        let mut pair = hex::decode(RFC8032_SEED).unwrap();
        pair.extend_from_slice(&public_bytes);
        let long = Secret::new(format!("whsk_{}", BASE64.encode(&pair)));
        assert_eq!(StandardWebhooks::public_key(&long).unwrap(), public);
        // ...and a mismatched public half is refused.
        pair[40] ^= 1;
        let bad = Secret::new(format!("whsk_{}", BASE64.encode(&pair)));
        assert_eq!(
            StandardWebhooks::public_key(&bad),
            Err(SignatureError::BadSigningKey)
        );
    }

    #[test]
    fn v1a_round_trips_and_refuses_what_it_must() {
        let (signing, public) = rfc8032();
        let public = Secret::new(public);
        let (id, ts, body) = ("msg_1", "1700000000", br#"{"a":1}"#.as_slice());
        let sig = StandardWebhooks::sign(&signing, id, ts, body).unwrap();
        let raw = BASE64.decode(sig.strip_prefix("v1a,").unwrap()).unwrap();
        assert_eq!(raw.len(), 64);
        // Deterministic (RFC 8032): the same content signs the same way.
        assert_eq!(StandardWebhooks::sign(&signing, id, ts, body).unwrap(), sig);
        assert!(StandardWebhooks::verify(&public, id, ts, body, &sig).unwrap());
        // Rotation: symmetric and asymmetric side by side.
        let whsec = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let v1 = StandardWebhooks::sign(&whsec, id, ts, body).unwrap();
        let both = format!("{v1} {sig}");
        assert!(StandardWebhooks::verify(&public, id, ts, body, &both).unwrap());
        assert!(StandardWebhooks::verify(&whsec, id, ts, body, &both).unwrap());
        // A v1 signature never passes as v1a, nor the other way round.
        assert!(!StandardWebhooks::verify(&public, id, ts, body, &v1).unwrap());
        assert!(!StandardWebhooks::verify(&whsec, id, ts, body, &sig).unwrap());
        // Tampered content, another key.
        assert!(!StandardWebhooks::verify(&public, id, "1700000001", body, &sig).unwrap());
        assert!(!StandardWebhooks::verify(&public, "msg_2", ts, body, &sig).unwrap());
        let (_, other) = StandardWebhooks::keypair_from_seed([1; 32]);
        assert!(!StandardWebhooks::verify(&Secret::new(other), id, ts, body, &sig).unwrap());
        // Keys in the wrong hands.
        assert_eq!(
            StandardWebhooks::verify(&signing, id, ts, body, &sig),
            Err(SignatureError::SigningKeyToVerify)
        );
        assert_eq!(
            StandardWebhooks::sign(&public, id, ts, body),
            Err(SignatureError::PublicKeyToSign)
        );
        assert_eq!(
            StandardWebhooks::key(&signing),
            Err(SignatureError::NotSymmetric)
        );
        // Keys that do not decode.
        for bad in ["whsk_", "whsk_!!", "whsk_AAAA"] {
            assert_eq!(
                StandardWebhooks::key_source(&Secret::new(bad)),
                Err(SignatureError::BadSigningKey),
                "{bad}"
            );
        }
        for bad in ["whpk_", "whpk_!!", "whpk_AAAA"] {
            assert_eq!(
                StandardWebhooks::key_source(&Secret::new(bad)),
                Err(SignatureError::BadPublicKey),
                "{bad}"
            );
        }
    }

    #[test]
    fn generated_secrets_have_the_spec_length() {
        let s = StandardWebhooks::secret_from_bytes(&[9; 32]).unwrap();
        assert_eq!(StandardWebhooks::key(&s).unwrap(), vec![9; 32]);
        assert_eq!(
            StandardWebhooks::secret_from_bytes(&[9; 16]),
            Err(SignatureError::BadSecretLength(16))
        );
    }
}
