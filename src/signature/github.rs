//! GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`, the
//! delivery id in `X-GitHub-Delivery` and the event name in `X-GitHub-Event`.
//!
//! ```
//! use hookbus::signature::{GitHubSignature, Secret};
//!
//! // GitHub's documented example.
//! let secret = Secret::new("It's a Secret to Everybody");
//! let value = GitHubSignature::sign(&secret, b"Hello, World!");
//! assert_eq!(value, "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
//! assert!(GitHubSignature::verify(&secret, b"Hello, World!", &value));
//! ```

use super::{BodySignature, Secret};

/// The GitHub scheme: a body signature under GitHub's header names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GitHubSignature;

impl GitHubSignature {
    /// The signature header.
    pub const HEADER: &'static str = "X-Hub-Signature-256";
    /// The delivery id header.
    pub const HEADER_DELIVERY: &'static str = "X-GitHub-Delivery";
    /// The event name header (e.g. `pull_request`).
    pub const HEADER_EVENT: &'static str = "X-GitHub-Event";
    /// The value prefix.
    pub const PREFIX: &'static str = "sha256=";

    /// The scheme as a [`BodySignature`] (what a webhook sender signs with).
    pub fn body_signature() -> BodySignature {
        BodySignature::known(Self::HEADER, Self::PREFIX)
    }
    /// The `X-Hub-Signature-256` value for `body`.
    pub fn sign(secret: &Secret, body: &[u8]) -> String {
        Self::body_signature().sign(secret, body)
    }
    /// Checks a received `X-Hub-Signature-256` value against the raw body, in
    /// constant time.
    pub fn verify(secret: &Secret, body: &[u8], header_value: &str) -> bool {
        Self::body_signature().verify(secret, body, header_value)
    }
}
