//! `hookbus`: watch webhooks work from a terminal. `listen` runs a local
//! receiver that verifies and prints each delivery, `send` signs and sends
//! events, `verify` checks a captured request, `catalog` prints the standard
//! event catalogs and their JSON Schemas, `keygen` prints fresh Standard
//! Webhooks keys.

mod catalog;
mod keygen;
mod listen;
mod scheme;
mod send;
#[cfg(all(feature = "manage", feature = "durable"))]
mod serve;
#[cfg(feature = "durable")]
mod store;
mod verify;

use std::fmt;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

const EXIT_CODES: &str = "\
Exit codes:
  0  success (listen: stopped with Ctrl-C; send: every event delivered; verify: the signature verifies)
  1  send: some events were not delivered; verify: the signature does not verify
  2  bad usage or input (unknown option, invalid JSON, unreadable file, invalid URL or secret)
  3  listen: the address cannot be bound, or another I/O failure

Secrets can be given with HOOKBUS_SECRET instead of --secret; they are never printed.";

/// Sign, send, receive and verify webhooks.
#[derive(Debug, Parser)]
#[command(name = "hookbus", version, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a local receiver: verify each request's signature, print one line
    /// per delivery, inject failures on request, print a summary on Ctrl-C.
    #[command(after_help = EXIT_CODES)]
    Listen(listen::Args),
    /// Sign and send events to a URL (with retries); print status, latency and
    /// a response excerpt, and with --count, progress and a throughput line.
    #[command(after_help = EXIT_CODES)]
    // Boxed: its many flags make it the largest variant by far.
    Send(Box<send::Args>),
    /// Say whether a captured request's signature verifies, and if not, why.
    #[command(after_help = EXIT_CODES)]
    Verify(verify::Args),
    /// List the standard event catalogs' types, show one with example data,
    /// or print their JSON Schemas (--json-schema).
    #[command(after_help = EXIT_CODES)]
    Catalog(catalog::Args),
    /// Print fresh Standard Webhooks keys: a whsec_ secret and a whsk_ /
    /// whpk_ key pair.
    #[command(after_help = EXIT_CODES)]
    Keygen(keygen::Args),
    /// Inspect, check, redrive, compact or back up a durable store file.
    #[cfg(feature = "durable")]
    #[command(after_help = EXIT_CODES)]
    Store(store::Args),
    /// Run webhooks as a service: the management API (tenants register
    /// endpoints and post events over HTTP), signed events in, durable
    /// delivery, the dashboard and /metrics; from flags or a config file.
    #[cfg(all(feature = "manage", feature = "durable"))]
    #[command(after_help = serve::AFTER_HELP)]
    Serve(serve::Args),
}

/// The outcome of a command that did not succeed: what to print and the
/// exit code.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: u8,
    pub(crate) message: String,
}

/// Exit code: the work was done and its answer is "no".
pub(crate) const EXIT_FAILED: u8 = 1;
/// Exit code: bad usage or input.
pub(crate) const EXIT_INPUT: u8 = 2;
/// Exit code: I/O failure (e.g. the port cannot be bound).
pub(crate) const EXIT_IO: u8 = 3;

impl Failure {
    pub(crate) fn input(message: impl fmt::Display) -> Failure {
        Failure {
            code: EXIT_INPUT,
            message: message.to_string(),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the Tokio runtime: {e}");
            return ExitCode::from(EXIT_IO);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Listen(args) => listen::run(args).await,
            Command::Send(args) => send::run(*args).await,
            Command::Verify(args) => verify::run(args),
            Command::Catalog(args) => catalog::run(args),
            Command::Keygen(args) => keygen::run(args),
            #[cfg(feature = "durable")]
            Command::Store(args) => store::run(args),
            #[cfg(all(feature = "manage", feature = "durable"))]
            Command::Serve(args) => serve::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("{}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}
