//! `hookbus send`: sign and send events, with retries, and report how it went.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hookbus::Event;
use hookbus::webhook::{
    DeliveryOutcome, OAuth2, RetryPolicy, WebhookBuilder, WebhookEmitter, WebhookError, WireFormat,
};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::scheme::{SigningArgs, text_or_file};
use crate::{EXIT_FAILED, Failure};

/// Sign and send events (the guides' "test a webhook").
///
/// Each event is one CloudEvents POST in --mode: structured (the default:
/// the whole event as application/cloudevents+json, all of it signed),
/// binary (the body is --data, unsigned ce-* headers carry the type and a
/// fresh id) or batched (a batch of one event,
/// application/cloudevents-batch+json). The signature headers follow
/// --scheme (default standard: Standard Webhooks, with a whsec_ secret for
/// v1 or a whsk_ key for v1a; `hookbus keygen` makes both). Retryable answers (connection errors, timeouts, 408, 429, 5xx)
/// are retried up to --attempts.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The endpoint URL (https, or http to a loopback host unless --allow-http).
    #[arg(long)]
    url: String,
    #[command(flatten)]
    signing: SigningArgs,
    /// The CloudEvents HTTP mode.
    #[arg(long, value_enum, default_value_t = Mode::Structured)]
    mode: Mode,
    /// The event type, e.g. decision.captured.
    #[arg(long = "type", value_name = "TYPE")]
    event_type: String,
    /// The event data: JSON text, or @file holding JSON (sent as compact JSON).
    #[arg(long, default_value = "{}", value_name = "JSON | @FILE")]
    data: String,
    /// How many events to send.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    count: u64,
    /// At most this many events per second (default: as fast as --concurrency allows).
    #[arg(long)]
    rate: Option<f64>,
    /// Events in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1024))]
    concurrency: u64,
    /// Attempts per event, the first included.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    attempts: u32,
    /// Delay before the first retry, in milliseconds (doubling after each).
    #[arg(long, default_value_t = 200)]
    retry_delay_ms: u64,
    /// Request timeout in seconds.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
    /// The ce-source of the events.
    #[arg(long, default_value = "hookbus-cli")]
    source: String,
    /// Allow plain http to hosts that are not loopback.
    #[arg(long)]
    allow_http: bool,
    /// Send through this HTTP(S) proxy (wins over --proxy-from-env).
    #[arg(long, value_name = "URL")]
    proxy: Option<String>,
    /// Use the proxy HTTPS_PROXY / HTTP_PROXY name (NO_PROXY respected);
    /// without it the environment's proxy settings are ignored.
    #[arg(long)]
    proxy_from_env: bool,
    /// A client certificate chain (PEM) for receivers that require mutual
    /// TLS; needs --client-key.
    #[arg(long, value_name = "FILE", requires = "client_key")]
    client_cert: Option<std::path::PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    client_key: Option<std::path::PathBuf>,
    /// Extra trusted root certificates (PEM), e.g. a private CA.
    #[arg(long, value_name = "FILE")]
    ca_cert: Option<std::path::PathBuf>,
    /// OAuth2 client credentials: the token URL (needs --oauth2-client-id
    /// and HOOKBUS_OAUTH2_CLIENT_SECRET or --oauth2-client-secret).
    #[arg(long, value_name = "URL", requires = "oauth2_client_id")]
    oauth2_token_url: Option<String>,
    /// OAuth2 client id.
    #[arg(long, value_name = "ID", requires = "oauth2_token_url")]
    oauth2_client_id: Option<String>,
    /// OAuth2 client secret (better from the environment, out of the
    /// process list).
    #[arg(
        long,
        env = "HOOKBUS_OAUTH2_CLIENT_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    oauth2_client_secret: Option<String>,
    /// An OAuth2 scope (repeat for several).
    #[arg(long, value_name = "SCOPE")]
    oauth2_scope: Vec<String>,
    /// Print a line for every event (by default only for a single event, and
    /// for events that needed retries or failed).
    #[arg(short, long)]
    verbose: bool,
}

/// The CloudEvents HTTP content modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    /// Attributes in ce-* headers, the data as the body.
    Binary,
    /// The whole event as application/cloudevents+json.
    Structured,
    /// A JSON array of events, application/cloudevents-batch+json.
    Batched,
}

impl Mode {
    fn wire_format(self) -> WireFormat {
        match self {
            Mode::Binary => WireFormat::Binary,
            Mode::Structured => WireFormat::Structured,
            Mode::Batched => WireFormat::Batched,
        }
    }
}

/// One finished event.
struct Sent {
    n: u64,
    id: String,
    outcome: DeliveryOutcome,
}

fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn excerpt(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(120) {
        Some((at, _)) => format!("{}…", &one_line[..at]),
        None => one_line,
    }
}

fn describe(s: &Sent) -> String {
    let o = &s.outcome;
    let status = match o.status_code {
        Some(code) => code.to_string(),
        None => "no response".to_owned(),
    };
    let verdict = if o.is_delivered() {
        "delivered".to_owned()
    } else {
        format!("FAILED: {}", o.error.as_deref().unwrap_or("not delivered"))
    };
    let mut line = format!(
        "#{} {}  {status}  {}  attempts {}  {verdict}",
        s.n,
        s.id,
        millis(o.latency),
        o.attempts
    );
    if let Some(text) = &o.response_excerpt {
        line.push_str("  response: ");
        line.push_str(&excerpt(text));
    }
    line
}

/// The `q` quantile of sorted latencies, or `-` when no response came.
fn percentile(sorted: &[Duration], q: f64) -> String {
    if sorted.is_empty() {
        return "-".to_owned();
    }
    let at = ((sorted.len() - 1) as f64 * q).round() as usize;
    millis(sorted[at.min(sorted.len() - 1)])
}

/// The proxy, TLS and OAuth2 flags.
fn transport(mut builder: WebhookBuilder, args: &Args) -> Result<WebhookBuilder, Failure> {
    let read = |flag: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| {
            Failure::input(format!(
                "error: {flag} {}: cannot read the file: {e}",
                path.display()
            ))
        })
    };
    if let Some(p) = &args.proxy {
        builder = builder.proxy(p.clone());
    }
    builder = builder.proxy_from_env(args.proxy_from_env);
    if let (Some(cert), Some(key)) = (&args.client_cert, &args.client_key) {
        builder =
            builder.client_identity_pem(read("--client-cert", cert)?, read("--client-key", key)?);
    }
    if let Some(ca) = &args.ca_cert {
        builder = builder.root_certificates_pem(read("--ca-cert", ca)?);
    }
    if let (Some(url), Some(id)) = (&args.oauth2_token_url, &args.oauth2_client_id) {
        let Some(secret) = &args.oauth2_client_secret else {
            return Err(Failure::input(
                "error: --oauth2-token-url needs a client secret: set HOOKBUS_OAUTH2_CLIENT_SECRET or pass --oauth2-client-secret",
            ));
        };
        let mut oauth = OAuth2::client_credentials(url.clone(), id.clone(), secret.clone());
        for scope in &args.oauth2_scope {
            oauth = oauth.scope(scope.clone());
        }
        builder = builder.oauth2(oauth);
    }
    Ok(builder)
}

pub(crate) async fn run(args: Args) -> Result<(), Failure> {
    hookbus::event::validate_type(&args.event_type)
        .map_err(|e| Failure::input(format!("error: --type: {e}")))?;
    let data = text_or_file("--data", &args.data)?;
    let data: Value = serde_json::from_slice(&data).map_err(|e| {
        Failure::input(format!(
            "error: --data is not valid JSON ({e}); pass JSON text such as '{{\"decision_id\":\"abc123\"}}', or @path to a file holding it"
        ))
    })?;
    if let Some(rate) = args.rate
        && !(rate.is_finite() && rate > 0.0)
    {
        return Err(Failure::input(
            "error: --rate must be a positive number of events per second",
        ));
    }
    let initial = Duration::from_millis(args.retry_delay_ms.max(1));
    let mut builder = WebhookEmitter::builder(&args.url)
        .signature(args.signing.signature_scheme()?)
        .format(args.mode.wire_format())
        .retry(RetryPolicy::exponential(
            args.attempts,
            initial,
            initial * 16,
        ))
        .timeout(Duration::from_secs(args.timeout.max(1)))
        .allow_http(args.allow_http)
        .disable_after(None);
    if let Some(secret) = args.signing.secret() {
        builder = builder.secret(secret);
    }
    builder = transport(builder, &args)?;
    let emitter = builder.build_emitter().map_err(|e| match e {
        WebhookError::InsecureUrl(host) => Failure::input(format!(
            "error: refusing plain http to {host}, which is not loopback: use https, or pass --allow-http to accept an unencrypted connection"
        )),
        other => Failure::input(format!("error: {other}")),
    })?;

    let started = Instant::now();
    let permits = Arc::new(Semaphore::new(args.concurrency as usize));
    let mut pacing = args.rate.map(|r| {
        let mut iv = tokio::time::interval(Duration::from_secs_f64(1.0 / r));
        iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        iv
    });
    let mut tasks = JoinSet::new();
    let mut report = Report::new(args.count, args.verbose);
    for n in 1..=args.count {
        if let Some(iv) = &mut pacing {
            iv.tick().await;
        }
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let event = Event::builder(args.event_type.clone())
            .source(args.source.clone())
            .data(data.clone())
            .build()
            .map_err(|e| Failure::input(format!("error: {e}")))?;
        let emitter = emitter.clone();
        tasks.spawn(async move {
            let id = event.id().to_owned();
            let outcome = emitter.emit(event).await;
            drop(permit);
            Sent { n, id, outcome }
        });
        while let Some(done) = tasks.try_join_next() {
            report.add(done);
        }
    }
    while let Some(done) = tasks.join_next().await {
        report.add(done);
    }
    report.finish(started.elapsed())
}

/// Tallies, progress lines and the final line.
struct Report {
    total: u64,
    verbose: bool,
    done: u64,
    delivered: u64,
    retried: u64,
    latencies: Vec<Duration>,
    next_progress: u64,
    /// Whether stderr is a terminal (draw a bar in place).
    tty: bool,
}

impl Report {
    fn new(total: u64, verbose: bool) -> Report {
        let tty = std::io::stderr().is_terminal();
        Report {
            total,
            verbose,
            done: 0,
            delivered: 0,
            retried: 0,
            latencies: Vec::with_capacity(total.min(1 << 20) as usize),
            next_progress: (total / if tty { 100 } else { 10 }).max(1),
            tty,
        }
    }

    fn add(&mut self, joined: Result<Sent, tokio::task::JoinError>) {
        self.done += 1;
        let Ok(s) = joined else {
            println!("an event's task failed; counted as not delivered");
            return;
        };
        let o = &s.outcome;
        if o.is_delivered() {
            self.delivered += 1;
        }
        self.retried += u64::from(o.attempts.saturating_sub(1));
        if o.status_code.is_some() {
            self.latencies.push(o.latency);
        }
        if self.total == 1 || self.verbose || o.attempts > 1 || !o.is_delivered() {
            if self.tty && self.total > 1 {
                // Clear the progress bar's line before writing over it.
                eprint!("\r\x1b[K");
            }
            println!("{}", describe(&s));
        }
        if self.total > 1 && self.done >= self.next_progress {
            self.progress();
        }
    }

    /// A bar redrawn in place on a terminal (every 1 %), a plain line
    /// otherwise (every 10 %).
    fn progress(&mut self) {
        let failed = self.done - self.delivered;
        if self.tty {
            const WIDTH: u64 = 30;
            let filled = (self.done * WIDTH / self.total) as usize;
            eprint!(
                "\r[{}{}] {}/{} events ({} delivered, {failed} failed)",
                "#".repeat(filled),
                ".".repeat(WIDTH as usize - filled),
                self.done,
                self.total,
                self.delivered,
            );
            if self.done == self.total {
                eprintln!();
            }
            self.next_progress += (self.total / 100).max(1);
        } else {
            eprintln!(
                "progress: {}/{} events ({} delivered, {failed} failed)",
                self.done, self.total, self.delivered,
            );
            self.next_progress += (self.total / 10).max(1);
        }
        self.next_progress = self.next_progress.min(self.total);
    }

    fn finish(mut self, elapsed: Duration) -> Result<(), Failure> {
        self.latencies.sort();
        let failed = self.done - self.delivered;
        let secs = elapsed.as_secs_f64().max(1e-9);
        println!(
            "sent {} events in {:.2} s: {} delivered, {} failed, {} retries; {:.1} events/s; latency p50 {}, p99 {}",
            self.done,
            elapsed.as_secs_f64(),
            self.delivered,
            failed,
            self.retried,
            self.done as f64 / secs,
            percentile(&self.latencies, 0.5),
            percentile(&self.latencies, 0.99),
        );
        if failed == 0 {
            Ok(())
        } else {
            Err(Failure {
                code: EXIT_FAILED,
                message: format!("{failed} of {} events were not delivered", self.done),
            })
        }
    }
}
