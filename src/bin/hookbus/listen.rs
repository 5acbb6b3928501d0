//! `hookbus listen`: a local receiver that verifies, prints, saves and
//! (on request) fails each delivery. The receiving is
//! [`hookbus::testing::TestReceiver`]'s; this file prints and saves.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use hookbus::Bus;
use hookbus::dashboard::{self, DashboardConfig};
use hookbus::testing::{ReceivedRequest, ReceiverError, SignatureCheck, TestReceiver};
use hookbus::webhook::WebhookManager;
use time::OffsetDateTime;
use time::macros::format_description;

use crate::scheme::{Checker, Headers, SigningArgs};
use crate::{EXIT_IO, Failure};

/// Run a local webhook receiver.
///
/// Prints "listening on ADDR", then one line per request: time, method and
/// path, event type, id, signature (ok, BAD with the reason, or - when no
/// secret is set), body size and the answer. A bad signature is answered 401.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The port (0 picks a free one; the first line printed says which).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// The address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    #[command(flatten)]
    signing: SigningArgs,
    /// Answer this fraction of requests (0 to 1) with 503, so senders retry.
    #[arg(long, default_value_t = 0.0, value_parser = parse_fraction)]
    fail_rate: f64,
    /// Seed the --fail-rate draws, for reproducible faults.
    #[arg(long)]
    seed: Option<u64>,
    /// Wait this many milliseconds before answering each request.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Largest accepted timestamp age in seconds (0 skips the check).
    #[arg(long, default_value_t = 300)]
    max_age: u64,
    /// Save each request as DIR/NNNN.headers and DIR/NNNN.body (for `hookbus verify`).
    #[arg(long, value_name = "DIR")]
    save: Option<PathBuf>,
    /// Print each request's body too.
    #[arg(short, long)]
    verbose: bool,
    /// Also serve the live dashboard on 127.0.0.1 (a free port, a fresh
    /// token): the received events stream into it. Prints its URL (with the
    /// token) on the second line.
    #[arg(long)]
    dashboard: bool,
}

fn parse_fraction(text: &str) -> Result<f64, String> {
    let v: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is outside 0..=1 (0.3 fails 30% of requests)"))
    }
}

pub(crate) async fn run(args: Args) -> Result<(), Failure> {
    let max_age = (args.max_age > 0).then_some(args.max_age);
    let checker = args
        .signing
        .secret()
        .map(|secret| Checker::new(&args.signing, secret, max_age))
        .transpose()?;
    if let Some(dir) = &args.save {
        std::fs::create_dir_all(dir).map_err(|e| Failure {
            code: EXIT_IO,
            message: format!(
                "error: --save {}: cannot create the directory: {e}",
                dir.display()
            ),
        })?;
    }
    let addr = SocketAddr::new(args.host, args.port);
    // The library's test receiver does the work (verify, inject faults,
    // count); the tool prints and saves each request as it is answered.
    let mut receiver = TestReceiver::builder()
        .bind(addr)
        .fail_rate(args.fail_rate)
        .delay(Duration::from_millis(args.delay_ms))
        .history(0);
    if let Some(seed) = args.seed {
        receiver = receiver.seed(seed);
    }
    if let Some(checker) = &checker {
        receiver = receiver.verifier(checker.verifier().clone());
    }
    let printer = Printer {
        checker: checker.clone(),
        save: args.save.clone(),
        verbose: args.verbose,
    };
    // With --dashboard, every verified (or unchecked) event received is
    // emitted on a local bus, which the dashboard shows live.
    let bus = if args.dashboard {
        Some(Bus::new().map_err(|e| Failure {
            code: EXIT_IO,
            message: format!("error: cannot start the dashboard's bus: {e}"),
        })?)
    } else {
        None
    };
    let feed = bus.clone();
    let mut receiver = receiver
        .on_request(move |request| {
            printer.print(request);
            if let Some(bus) = &feed
                && request.rejection().is_none()
            {
                for event in &request.events {
                    // A full or closed bus only costs the dashboard a line.
                    let _ = bus.emit(event.clone());
                }
            }
        })
        .start()
        .await
        .map_err(|e| Failure {
            code: EXIT_IO,
            message: match e {
                ReceiverError::Bind { addr, source } => format!(
                    "error: cannot listen on {addr}: {source}; pick another --port (0 picks a free one)"
                ),
                other => format!("error: {other}"),
            },
        })?;
    let signing = match &checker {
        Some(_) => format!("verifying {} signatures", args.signing.scheme),
        None => "no secret: signatures not checked".to_owned(),
    };
    println!(
        "listening on {} ({signing}; fail-rate {}, delay {} ms)",
        receiver.addr(),
        args.fail_rate,
        args.delay_ms
    );
    let dashboard = match &bus {
        Some(bus) => {
            let manager = Arc::new(WebhookManager::new(bus));
            let server = dashboard::serve(bus, manager, DashboardConfig::with_random_token())
                .await
                .map_err(|e| Failure {
                    code: EXIT_IO,
                    message: format!("error: cannot serve the dashboard: {e}"),
                })?;
            println!("dashboard: {}", server.url());
            Some(server)
        }
        None => None,
    };
    stop_signal().await;
    if let Some(server) = dashboard {
        server.shutdown().await;
    }
    receiver.shutdown().await.map_err(|e| Failure {
        code: EXIT_IO,
        message: format!("error: the receiver stopped: {e}"),
    })?;
    let c = receiver.stats();
    println!(
        "summary: {} requests: {} verified, {} bad signature, {} unsigned; {} failures injected",
        c.requests, c.verified, c.rejected, c.unchecked, c.injected
    );
    Ok(())
}

async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Prints (and saves) each request as the receiver answers it.
struct Printer {
    checker: Option<Checker>,
    save: Option<PathBuf>,
    verbose: bool,
}

impl Printer {
    fn print(&self, request: &ReceivedRequest) {
        let headers = Headers(
            request
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
        );
        let signature = match (&request.signature, &self.checker) {
            (SignatureCheck::Verified(_), _) => "sig ok".to_owned(),
            (SignatureCheck::Rejected(why), Some(checker)) => {
                format!("sig BAD ({})", checker.explain(why))
            }
            (SignatureCheck::Rejected(why), None) => format!("sig BAD ({why})"),
            _ => "sig -".to_owned(),
        };
        if let Some(dir) = &self.save {
            save(dir, request.seq, &headers, &request.body);
        }
        let clock = OffsetDateTime::now_utc()
            .format(format_description!(
                "[hour]:[minute]:[second].[subsecond digits:3]"
            ))
            .unwrap_or_default();
        let label = headers.label(&request.body);
        println!(
            "{clock}  #{} {} {}  {}  {}  {signature}  {} B  -> {}{}",
            request.seq,
            request.method,
            request.path,
            label.event_type_or_dash(),
            label.id_or_dash(),
            request.body.len(),
            request.status.as_u16(),
            if request.is_injected() {
                " (injected)"
            } else {
                ""
            }
        );
        if self.verbose {
            println!("{}", String::from_utf8_lossy(&request.body));
        }
    }
}

fn save(dir: &std::path::Path, n: u64, headers: &Headers, body: &[u8]) {
    let stem = dir.join(format!("{n:04}"));
    let text: String = headers
        .0
        .iter()
        .map(|(k, v)| format!("{k}: {v}\n"))
        .collect();
    let written = std::fs::write(stem.with_extension("headers"), text)
        .and_then(|()| std::fs::write(stem.with_extension("body"), body));
    if let Err(e) = written {
        eprintln!("warning: --save: cannot write {}: {e}", stem.display());
    }
}
