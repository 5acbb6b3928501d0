//! `hookbus listen`: a local receiver that verifies, prints, saves and
//! (on request) fails each delivery.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
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

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    verified: AtomicU64,
    bad: AtomicU64,
    unsigned: AtomicU64,
    injected: AtomicU64,
}

#[derive(Debug)]
struct Listener {
    checker: Option<Checker>,
    fail_rate: f64,
    rng: Mutex<StdRng>,
    delay: Duration,
    save: Option<PathBuf>,
    verbose: bool,
    counters: Counters,
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
    let rng = match args.seed {
        Some(seed) => StdRng::seed_from_u64(seed),
        None => StdRng::from_entropy(),
    };
    let addr = SocketAddr::new(args.host, args.port);
    let tcp = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Failure {
            code: EXIT_IO,
            message: format!(
                "error: cannot listen on {addr}: {e}; pick another --port (0 picks a free one)"
            ),
        })?;
    let bound = tcp.local_addr().map_err(|e| Failure {
        code: EXIT_IO,
        message: format!("error: {e}"),
    })?;
    let listener = Arc::new(Listener {
        checker,
        fail_rate: args.fail_rate,
        rng: Mutex::new(rng),
        delay: Duration::from_millis(args.delay_ms),
        save: args.save.clone(),
        verbose: args.verbose,
        counters: Counters::default(),
    });
    let signing = match &listener.checker {
        Some(_) => format!("verifying {} signatures", args.signing.scheme),
        None => "no secret: signatures not checked".to_owned(),
    };
    println!(
        "listening on {bound} ({signing}; fail-rate {}, delay {} ms)",
        args.fail_rate, args.delay_ms
    );
    let app = Router::new().fallback(handle).with_state(listener.clone());
    axum::serve(tcp, app)
        .with_graceful_shutdown(stop_signal())
        .await
        .map_err(|e| Failure {
            code: EXIT_IO,
            message: format!("error: the receiver stopped: {e}"),
        })?;
    let c = &listener.counters;
    println!(
        "summary: {} requests: {} verified, {} bad signature, {} unsigned; {} failures injected",
        c.requests.load(Relaxed),
        c.verified.load(Relaxed),
        c.bad.load(Relaxed),
        c.unsigned.load(Relaxed),
        c.injected.load(Relaxed)
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

async fn handle(
    State(l): State<Arc<Listener>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let n = l.counters.requests.fetch_add(1, Relaxed) + 1;
    let headers = Headers(
        headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
    );
    let now = OffsetDateTime::now_utc();
    let verdict = l
        .checker
        .as_ref()
        .map(|c| c.check(&headers, &body, now.unix_timestamp()));
    let signature = match &verdict {
        None => {
            l.counters.unsigned.fetch_add(1, Relaxed);
            "sig -".to_owned()
        }
        Some(Ok(())) => {
            l.counters.verified.fetch_add(1, Relaxed);
            "sig ok".to_owned()
        }
        Some(Err(why)) => {
            l.counters.bad.fetch_add(1, Relaxed);
            format!("sig BAD ({why})")
        }
    };
    if let Some(dir) = &l.save {
        save(dir, n, &headers, &body);
    }
    if !l.delay.is_zero() {
        tokio::time::sleep(l.delay).await;
    }
    let (status, answer) = match &verdict {
        Some(Err(why)) => (
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"error": format!("signature: {why}")}).to_string(),
        ),
        _ if l.fail_rate > 0.0 && draw(&l.rng) < l.fail_rate => {
            l.counters.injected.fetch_add(1, Relaxed);
            (
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"error":"injected failure (--fail-rate)"}"#.to_owned(),
            )
        }
        _ => (StatusCode::OK, r#"{"status":"received"}"#.to_owned()),
    };
    let clock = now
        .format(format_description!(
            "[hour]:[minute]:[second].[subsecond digits:3]"
        ))
        .unwrap_or_default();
    println!(
        "{clock}  #{n} {method} {}  {}  {}  {signature}  {} B  -> {}{}",
        uri.path(),
        headers.event_type(),
        headers.id(),
        body.len(),
        status.as_u16(),
        if status == StatusCode::SERVICE_UNAVAILABLE {
            " (injected)"
        } else {
            ""
        }
    );
    if l.verbose {
        println!("{}", String::from_utf8_lossy(&body));
    }
    (status, answer)
}

fn draw(rng: &Mutex<StdRng>) -> f64 {
    rng.lock().map(|mut r| r.r#gen::<f64>()).unwrap_or(1.0)
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
