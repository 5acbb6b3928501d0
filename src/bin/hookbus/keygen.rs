//! `hookbus keygen`: fresh Standard Webhooks keys.

use hookbus::signature::{SignatureError, StandardWebhooks};
use rand::RngCore;
use rand::rngs::OsRng;

use crate::Failure;

/// Print fresh Standard Webhooks keys, one per line on stdout (what each
/// is for goes to stderr, so the output can be read by a script):
///
///   whsec_...  a symmetric secret (v1 HMAC): the sender and every receiver hold it
///   whsk_...   an ed25519 secret key (v1a): only the sender holds it (send --secret)
///   whpk_...   its public key: receivers verify with it (listen/verify --secret)
///
/// The randomness comes from the operating system.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Which keys to print.
    #[arg(long, value_enum, default_value_t = Kind::All)]
    kind: Kind,
}

/// The kinds of keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Kind {
    /// The whsec_ secret, then the whsk_ / whpk_ pair.
    All,
    /// The whsec_ secret alone (32 random bytes).
    Symmetric,
    /// The whsk_ secret key, then its whpk_ public key.
    Asymmetric,
}

pub(crate) fn run(args: Args) -> Result<(), Failure> {
    let failed = |e: SignatureError| Failure::input(format!("error: {e}"));
    if args.kind != Kind::Asymmetric {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        let secret = StandardWebhooks::secret_from_bytes(&bytes).map_err(failed)?;
        println!("{}", String::from_utf8_lossy(secret.expose()));
        eprintln!("whsec_: the symmetric secret (v1): give it to the sender and to every receiver");
    }
    if args.kind != Kind::Symmetric {
        let mut seed = [0u8; 32];
        OsRng.fill_bytes(&mut seed);
        let (signing, public) = StandardWebhooks::keypair_from_seed(seed);
        println!("{}", String::from_utf8_lossy(signing.expose()));
        println!("{public}");
        eprintln!(
            "whsk_: the secret key (v1a): the sender alone signs with it (hookbus send --secret)"
        );
        eprintln!(
            "whpk_: its public key: receivers verify with it (hookbus listen/verify --secret)"
        );
    }
    Ok(())
}
