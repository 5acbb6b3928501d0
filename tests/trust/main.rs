//! Trust between hookbus instances and beyond (issue 25, and issue 27 item
//! 3): defaults that interoperate, Standard Webhooks asymmetric (`v1a`)
//! signatures, replay protection keyed by sender, catalog schemas that
//! match their types. Real HTTP on 127.0.0.1, real buses, the real CLI,
//! and independent implementations (Python's `standardwebhooks` and
//! `cryptography`, installed by `scripts/install-python-test-deps`).

#[cfg(all(feature = "axum", feature = "webhook"))]
mod asymmetric;
#[cfg(feature = "cli")]
mod cli_defaults;
#[cfg(feature = "cli")]
mod cli_keys;
#[cfg(all(feature = "axum", feature = "webhook"))]
mod defaults;
mod one_scheme;
mod python;
mod replay;
#[cfg(feature = "schema")]
mod schema_types;
