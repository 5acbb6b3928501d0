//! `hookbus serve`: webhooks as a service in one process: the management
//! API (`hookbus::manage`), the ingress (signed CloudEvents, GitHub and
//! Slack in, each route for one tenant), the bus, durable, signed webhook
//! delivery, optionally Kafka out, the dashboard and `/metrics`, on one
//! store file; from flags and an optional JSON config file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hookbus::Bus;
use hookbus::ingress::Ingress;
use hookbus::manage::{Manage, TENANT_ATTRIBUTE};
use hookbus::signature::Secret;
use hookbus::store::Store;
use hookbus::verify::Verifier;
use serde::Deserialize;

use crate::{EXIT_INPUT, EXIT_IO, Failure};

/// The help's last part: where settings come from, the routes, exit codes.
pub(crate) const AFTER_HELP: &str = "\
Settings come from --config FILE (JSON, unknown keys refused), then from the
environment (HOOKBUS_TOKENS, HOOKBUS_INGRESS, HOOKBUS_DASHBOARD_TOKEN), then
from flags: a flag overrides the file. Tokens and secrets are never printed.

Routes:
  /v1/...               the management API (Authorization: Bearer TOKEN)
  /ingress/TENANT/KIND  signed events in for TENANT (KIND: cloudevents, github,
                        slack), with --ingress; each event gets tenant=TENANT
  /dashboard/           the delivery dashboard, with --dashboard-token
                        (open /dashboard/#token=TOKEN)
  /metrics              Prometheus text, with --metrics

Exit codes:
  0  stopped by SIGTERM or Ctrl-C
  2  bad usage or settings (unknown option or config key, a bad token or secret)
  3  the store or the address cannot be opened, or another I/O failure";

/// Run webhooks as a service: the management API over HTTP (tenants
/// register endpoints, post events, read their deliveries), signed events
/// in through the ingress, durable delivery; every endpoint and pending
/// delivery is kept in DIR and survives a restart.
///
/// Each API request names its tenant with `Authorization: Bearer TOKEN`; a
/// request without a known token gets 401. Tokens come from --token
/// (repeatable), from HOOKBUS_TOKENS (`t1=tok1,t2=tok2`) and from the
/// config file's "tokens"; they are never printed.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A JSON file of settings (the same names as the flags, with `_` for
    /// `-`; see the README). Flags override it; unknown keys are refused.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The address to listen on (port 0: any free port; the address is
    /// printed). Default 127.0.0.1:8080.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// The directory of the store (`hookbus.redb`) and the secrets file
    /// (`secrets.json`, mode 0600); created if missing. Required (here or
    /// in the config file).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// A tenant and its bearer token, `TENANT=TOKEN` (repeatable; overrides
    /// the same tenant's token from the file or HOOKBUS_TOKENS).
    #[arg(long = "token", value_name = "TENANT=TOKEN")]
    tokens: Vec<String>,
    /// Let endpoints target plain http on 127.0.0.1 / localhost (local
    /// testing). Off by default: https only, internal addresses refused.
    #[arg(long)]
    allow_loopback: bool,
    /// The most endpoints one tenant may have (default 100).
    #[arg(long, value_name = "N")]
    max_endpoints: Option<usize>,
    /// Keep delivered events this many hours (at most a million), so
    /// `POST /v1/webhooks/{id}/replay` can send them again; 0: keep none.
    /// Default 24.
    #[arg(long, value_name = "HOURS")]
    keep_delivered_hours: Option<u64>,
    /// On SIGTERM or Ctrl-C, how long requests and deliveries under way may
    /// take to finish, together (what is left stays pending in the store
    /// for the next start). Default 10.
    #[arg(long, value_name = "SECONDS")]
    drain_timeout: Option<u64>,
    /// At most this many API requests per --rate-period from each tenant
    /// (`/v1/events` included); past it: 429 with Retry-After. Off by
    /// default.
    #[arg(long, value_name = "REQUESTS")]
    rate_limit: Option<u32>,
    /// The period of --rate-limit, in seconds (default 1).
    #[arg(long, value_name = "SECONDS")]
    rate_period: Option<u64>,
    /// The most requests a tenant may make at once above the steady rate
    /// (default: --rate-limit).
    #[arg(long, value_name = "REQUESTS")]
    rate_burst: Option<u32>,
    /// An ingress route, `TENANT:KIND=SECRET` (repeatable; also
    /// HOOKBUS_INGRESS, comma-separated): POST /ingress/TENANT/KIND takes
    /// events signed with SECRET and emits them for TENANT. KIND is
    /// `cloudevents` (Standard Webhooks, a whsec_ secret: what hookbus
    /// webhooks send), `github` (X-Hub-Signature-256) or `slack` (slash
    /// commands, the signing secret).
    #[arg(long = "ingress", value_name = "TENANT:KIND=SECRET")]
    ingress: Vec<String>,
    /// Serve the dashboard at /dashboard/ behind this token (at least 16
    /// characters; also HOOKBUS_DASHBOARD_TOKEN). It shows every tenant's
    /// endpoints: give it to operators only.
    #[arg(long, value_name = "TOKEN")]
    dashboard_token: Option<String>,
    /// Serve Prometheus metrics at /metrics (no token: bind to an address
    /// only your scraper reaches, or leave it off).
    #[arg(long)]
    metrics: bool,
    /// Publish events to Kafka too: the brokers (`host:port,...`); needs
    /// --kafka-topic. Only in a hookbus built with the `kafka` feature.
    #[arg(long, value_name = "BROKERS")]
    kafka_brokers: Option<String>,
    /// The Kafka topic events are published to.
    #[arg(long, value_name = "TOPIC")]
    kafka_topic: Option<String>,
}

/// The config file: the flags' settings, by the same names. No `Debug`:
/// it holds tokens.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data: Option<PathBuf>,
    /// Tenant to token.
    #[serde(default)]
    tokens: BTreeMap<String, String>,
    allow_loopback: Option<bool>,
    max_endpoints: Option<usize>,
    keep_delivered_hours: Option<u64>,
    drain_timeout: Option<u64>,
    rate_limit: Option<RateLimit>,
    #[serde(default)]
    ingress: Vec<IngressRoute>,
    dashboard_token: Option<String>,
    metrics: Option<bool>,
    kafka: Option<KafkaOut>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimit {
    requests: u32,
    #[serde(default = "one")]
    period: u64,
    burst: Option<u32>,
}

fn one() -> u64 {
    1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Cloudevents,
    Github,
    Slack,
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        match s {
            "cloudevents" => Some(Kind::Cloudevents),
            "github" => Some(Kind::Github),
            "slack" => Some(Kind::Slack),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Cloudevents => "cloudevents",
            Kind::Github => "github",
            Kind::Slack => "slack",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IngressRoute {
    tenant: String,
    kind: Kind,
    /// The secret itself, or
    secret: Option<String>,
    /// a file holding it (trailing whitespace ignored).
    secret_file: Option<PathBuf>,
    /// Default `/ingress/TENANT/KIND`.
    path: Option<String>,
}

impl std::fmt::Debug for IngressRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngressRoute")
            .field("tenant", &self.tenant)
            .field("kind", &self.kind)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(not(feature = "kafka"), allow(dead_code))]
struct KafkaOut {
    brokers: String,
    topic: String,
    /// Which event types go out (default every one).
    #[serde(default)]
    events: Vec<String>,
}

/// Everything, flags over file over defaults.
struct Settings {
    listen: SocketAddr,
    data: PathBuf,
    tokens: Tokens,
    allow_loopback: bool,
    max_endpoints: usize,
    keep_delivered_hours: u64,
    drain_timeout: Duration,
    rate: Option<(u32, Duration, Option<u32>)>,
    ingress: Vec<(String, Kind, String, Secret)>,
    dashboard_token: Option<String>,
    metrics: bool,
    kafka: Option<KafkaOut>,
}

fn read_config(path: &Path) -> Result<FileConfig, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::input(format!(
            "error: cannot read the config file {}: {e}",
            path.display()
        ))
    })?;
    // serde's message names the unknown key (or the type expected) and the
    // line and column.
    serde_json::from_str(&text)
        .map_err(|e| Failure::input(format!("error: the config file {}: {e}", path.display())))
}

fn valid_tenant(tenant: &str) -> Result<(), Failure> {
    if tenant.is_empty()
        || tenant.len() > 128
        || !tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(Failure::input(format!(
            "error: tenant {tenant:?} must be 1 to 128 letters, digits, '.', '_' or '-'"
        )));
    }
    Ok(())
}

impl Settings {
    fn resolve(args: Args) -> Result<Settings, Failure> {
        let file = match &args.config {
            Some(p) => read_config(p)?,
            None => FileConfig::default(),
        };
        // Tokens: the file, then HOOKBUS_TOKENS, then flags; a tenant given
        // twice keeps the last.
        let mut tokens: BTreeMap<String, String> = file.tokens;
        let env = std::env::var("HOOKBUS_TOKENS").unwrap_or_default();
        for spec in env.split(',').chain(args.tokens.iter().map(String::as_str)) {
            let spec = spec.trim();
            if spec.is_empty() {
                continue;
            }
            let Some((tenant, token)) = spec.split_once('=') else {
                return Err(Failure::input(
                    "error: a token is TENANT=TOKEN (the value is not shown)",
                ));
            };
            tokens.insert(tenant.trim().to_owned(), token.to_owned());
        }
        let tokens = Tokens::new(tokens)?;
        if tokens.is_empty() {
            return Err(Failure::input(
                "error: no tenant can call: give --token TENANT=TOKEN, HOOKBUS_TOKENS=t1=tok1,t2=tok2 or \"tokens\" in the config file",
            ));
        }

        // Ingress routes: the file's, then HOOKBUS_INGRESS and flags; one
        // path given twice keeps the last.
        let mut ingress: Vec<(String, Kind, String, Secret)> = Vec::new();
        let mut add = |path: String, kind: Kind, tenant: String, secret: Secret| {
            ingress.retain(|(p, ..)| *p != path);
            ingress.push((path, kind, tenant, secret));
        };
        for r in file.ingress {
            valid_tenant(&r.tenant)?;
            let secret = match (r.secret, &r.secret_file) {
                (Some(s), None) => s,
                (None, Some(f)) => std::fs::read_to_string(f)
                    .map_err(|e| {
                        Failure::input(format!(
                            "error: cannot read the ingress secret file {}: {e}",
                            f.display()
                        ))
                    })?
                    .trim_end()
                    .to_owned(),
                _ => {
                    return Err(Failure::input(format!(
                        "error: the ingress route of tenant {:?} ({}) needs one of \"secret\" or \"secret_file\"",
                        r.tenant,
                        r.kind.name()
                    )));
                }
            };
            let path = r
                .path
                .unwrap_or_else(|| format!("/ingress/{}/{}", r.tenant, r.kind.name()));
            if !path.starts_with('/') || path.starts_with("/v1/") || path.contains(['{', '}', '*'])
            {
                return Err(Failure::input(format!(
                    "error: ingress path {path:?} must start with '/', not be under /v1/, and hold no '{{', '}}' or '*'"
                )));
            }
            add(path, r.kind, r.tenant, Secret::from(secret));
        }
        let env = std::env::var("HOOKBUS_INGRESS").unwrap_or_default();
        for spec in env
            .split(',')
            .chain(args.ingress.iter().map(String::as_str))
        {
            let spec = spec.trim();
            if spec.is_empty() {
                continue;
            }
            let parsed = spec.split_once('=').and_then(|(route, secret)| {
                let (tenant, kind) = route.split_once(':')?;
                Some((tenant.trim(), Kind::parse(kind.trim())?, secret))
            });
            let Some((tenant, kind, secret)) = parsed else {
                return Err(Failure::input(
                    "error: an ingress route is TENANT:KIND=SECRET, KIND one of cloudevents, github, slack (the secret is not shown)",
                ));
            };
            valid_tenant(tenant)?;
            add(
                format!("/ingress/{tenant}/{}", kind.name()),
                kind,
                tenant.to_owned(),
                Secret::from(secret),
            );
        }

        let rate = match (args.rate_limit, file.rate_limit) {
            (Some(n), file) => Some((
                n,
                Duration::from_secs(
                    args.rate_period
                        .or(file.as_ref().map(|f| f.period))
                        .unwrap_or(1),
                ),
                args.rate_burst.or(file.and_then(|f| f.burst)),
            )),
            (None, Some(f)) => Some((
                f.requests,
                Duration::from_secs(args.rate_period.unwrap_or(f.period)),
                args.rate_burst.or(f.burst),
            )),
            (None, None) => {
                if args.rate_period.is_some() || args.rate_burst.is_some() {
                    return Err(Failure::input(
                        "error: --rate-period and --rate-burst need --rate-limit",
                    ));
                }
                None
            }
        };

        #[cfg_attr(not(feature = "kafka"), allow(unused_mut))]
        let mut kafka = file.kafka;
        match (args.kafka_brokers, args.kafka_topic) {
            (Some(brokers), Some(topic)) => {
                kafka = Some(KafkaOut {
                    brokers,
                    topic,
                    events: kafka.map(|k| k.events).unwrap_or_default(),
                });
            }
            (None, None) => {}
            _ => {
                return Err(Failure::input(
                    "error: --kafka-brokers and --kafka-topic go together",
                ));
            }
        }
        #[cfg(not(feature = "kafka"))]
        if kafka.is_some() {
            return Err(Failure::input(
                "error: Kafka out needs a hookbus built with the `kafka` feature (cargo install hookbus --features kafka)",
            ));
        }

        let dashboard_token = args
            .dashboard_token
            .or_else(|| std::env::var("HOOKBUS_DASHBOARD_TOKEN").ok())
            .or(file.dashboard_token)
            .filter(|t| !t.is_empty());

        Ok(Settings {
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            data: args.data.or(file.data).ok_or_else(|| {
                Failure::input(
                    "error: give the data directory: --data DIR or \"data\" in the config file",
                )
            })?,
            tokens,
            allow_loopback: args.allow_loopback || file.allow_loopback.unwrap_or(false),
            max_endpoints: args
                .max_endpoints
                .or(file.max_endpoints)
                .unwrap_or(hookbus::manage::DEFAULT_MAX_ENDPOINTS),
            keep_delivered_hours: args
                .keep_delivered_hours
                .or(file.keep_delivered_hours)
                .unwrap_or(24),
            drain_timeout: Duration::from_secs(
                args.drain_timeout.or(file.drain_timeout).unwrap_or(10),
            ),
            rate,
            ingress,
            dashboard_token,
            metrics: args.metrics || file.metrics.unwrap_or(false),
            kafka,
        })
    }
}

/// Tenants by the SHA-256 of their token. A request's lookup costs one
/// hash and one map probe however many tenants there are (comparing the
/// token with each tenant's in turn grew with every tenant), and its time
/// depends on the digest alone, which tells a guesser nothing about how
/// close a guess was.
struct Tokens(std::collections::HashMap<[u8; 32], String>);

fn digest(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}

impl Tokens {
    fn new(by_tenant: BTreeMap<String, String>) -> Result<Tokens, Failure> {
        let mut out = std::collections::HashMap::with_capacity(by_tenant.len());
        for (tenant, token) in by_tenant {
            valid_tenant(&tenant)?;
            if token.len() < 8 {
                return Err(Failure::input(format!(
                    "error: the token of tenant {tenant:?} is shorter than 8 characters"
                )));
            }
            if out.insert(digest(&token), tenant.clone()).is_some() {
                return Err(Failure::input(format!(
                    "error: the token of tenant {tenant:?} is another tenant's too"
                )));
            }
        }
        Ok(Tokens(out))
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn tenant(&self, token: &str) -> Option<String> {
        self.0.get(&digest(token)).cloned()
    }
}

fn io_error(e: impl std::fmt::Display) -> Failure {
    Failure {
        code: EXIT_IO,
        message: format!("error: {e}"),
    }
}

fn input_error(e: impl std::fmt::Display) -> Failure {
    Failure {
        code: EXIT_INPUT,
        message: format!("error: {e}"),
    }
}

/// The ingress: one router per tenant, whose events all carry the tenant.
fn ingress_router(
    bus: &Bus,
    routes: Vec<(String, Kind, String, Secret)>,
) -> Result<axum::Router, Failure> {
    let mut by_tenant: BTreeMap<String, Vec<(String, Kind, Secret)>> = BTreeMap::new();
    for (path, kind, tenant, secret) in routes {
        by_tenant
            .entry(tenant)
            .or_default()
            .push((path, kind, secret));
    }
    let mut router = axum::Router::new();
    for (tenant, routes) in by_tenant {
        let mut ingress = Ingress::new(bus.clone())
            .extension(TENANT_ATTRIBUTE, tenant.clone())
            .map_err(input_error)?;
        for (path, kind, secret) in routes {
            ingress = match kind {
                Kind::Cloudevents => {
                    let verifier = Verifier::standard_webhooks(secret).map_err(|e| {
                        input_error(format!(
                            "the cloudevents ingress secret of tenant {tenant:?} is not a Standard Webhooks secret (whsec_...): {e}"
                        ))
                    })?;
                    ingress.cloudevents(&path, verifier)
                }
                Kind::Github => ingress.github(&path, Verifier::github(secret)),
                Kind::Slack => ingress.slack_commands(&path, Verifier::slack(secret)),
            };
        }
        router = router.merge(ingress.into_router());
    }
    Ok(router)
}

/// `/metrics`: the bus, the webhooks and the store, sampled at each scrape
/// into a Prometheus recorder of this process.
fn metrics_router(bus: &Bus, manage: &Manage, store: &Store) -> Result<axum::Router, Failure> {
    use axum::http::header;
    use axum::response::IntoResponse;
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| io_error(format!("cannot start the metrics recorder: {e}")))?;
    let collector = Arc::new(
        hookbus::metrics::Collector::new(bus)
            .webhooks(manage.webhooks())
            .store(store),
    );
    let route = axum::routing::get(move || {
        let (collector, handle) = (collector.clone(), handle.clone());
        async move {
            collector.record().await;
            handle.run_upkeep();
            (
                [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                handle.render(),
            )
                .into_response()
        }
    });
    Ok(axum::Router::new().route("/metrics", route))
}

#[cfg(feature = "kafka")]
fn kafka_out(bus: &Bus, k: &KafkaOut) -> Result<hookbus::Subscription, Failure> {
    use hookbus::kafka::{KafkaPublisher, KeyStrategy, Mode};
    // The whole CloudEvent as the value (its `tenant` with it), keyed by
    // the tenant: one tenant's events stay in order on one partition.
    let publisher = KafkaPublisher::builder(k.brokers.as_str(), k.topic.clone())
        .mode(Mode::Structured)
        .key(KeyStrategy::custom(|e| {
            e.extension(TENANT_ATTRIBUTE).map(|t| t.to_string())
        }))
        .build()
        .map_err(input_error)?;
    let events: Vec<String> = if k.events.is_empty() {
        vec!["*".to_owned()]
    } else {
        k.events.clone()
    };
    bus.subscriber(events)
        .name("kafka-out")
        .options(KafkaPublisher::recommended_options())
        .sink(publisher)
        .map_err(input_error)
}

pub(crate) async fn run(args: Args) -> Result<(), Failure> {
    let s = Settings::resolve(args)?;
    let tokens = Arc::new(s.tokens);
    create_private_dir(&s.data).map_err(|e| Failure {
        code: EXIT_IO,
        message: format!("error: cannot create {}: {e}", s.data.display()),
    })?;
    let mut store = Store::builder(s.data.join("hookbus.redb"));
    if s.keep_delivered_hours > 0 {
        store = store.keep_delivered(
            Duration::from_secs(s.keep_delivered_hours.saturating_mul(3600)),
            1_000_000,
        );
    }
    let store = store.open().map_err(io_error)?;
    let bus = Bus::new().map_err(io_error)?;
    let mut manage = Manage::builder(&bus)
        .identify(move |req| {
            let auth = req.headers.get("authorization")?.to_str().ok()?;
            let (scheme, token) = auth.split_once(' ')?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return None;
            }
            tokens.tenant(token.trim())
        })
        .allow_loopback(s.allow_loopback)
        .max_endpoints(s.max_endpoints)
        .durable(&store, s.data.join("secrets.json"));
    if let Some((n, per, burst)) = s.rate {
        manage = manage.rate_limit(n, per);
        if let Some(b) = burst {
            manage = manage.rate_burst(b);
        }
    }
    let manage = manage.build().map_err(input_error)?;

    let mut app = manage.router();
    let routes = s.ingress.len();
    if routes > 0 {
        app = app.merge(ingress_router(&bus, s.ingress)?);
    }
    if let Some(token) = &s.dashboard_token {
        let config = hookbus::dashboard::DashboardConfig::new(token.clone());
        let dashboard =
            hookbus::dashboard::router(&bus, manage.webhooks(), config).map_err(input_error)?;
        // As a service: it answers /dashboard/ (its page, which loads
        // api/.. relative to itself) as well as /dashboard/api/...
        app = app.nest_service("/dashboard", dashboard);
    }
    if s.metrics {
        app = app.merge(metrics_router(&bus, &manage, &store)?);
    }
    #[cfg(feature = "kafka")]
    let _kafka = match &s.kafka {
        Some(k) => Some(kafka_out(&bus, k)?),
        None => None,
    };
    #[cfg(not(feature = "kafka"))]
    let _ = &s.kafka;

    // Before the address is printed: whoever reads it may signal at once.
    let stop = stop_signal();
    let listener = tokio::net::TcpListener::bind(s.listen)
        .await
        .map_err(|e| Failure {
            code: EXIT_IO,
            message: format!("error: cannot listen on {}: {e}", s.listen),
        })?;
    let addr = listener.local_addr().map_err(io_error)?;
    println!(
        "hookbus serve: listening on http://{addr} ({} webhooks kept in {}; {routes} ingress routes{}{})",
        manage.len(),
        s.data.display(),
        if s.dashboard_token.is_some() {
            "; dashboard at /dashboard/"
        } else {
            ""
        },
        if s.metrics { "; /metrics" } else { "" },
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();

    // On SIGTERM: stop taking requests, let those under way finish, then
    // drain the bus, all within the deadline. An open dashboard stream
    // would hold the server's graceful stop: past the deadline it is
    // dropped.
    let (stopped_tx, stopped) = tokio::sync::watch::channel(None::<tokio::time::Instant>);
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        stop.await;
        let _ = stopped_tx.send(Some(tokio::time::Instant::now()));
    });
    let drain = s.drain_timeout;
    let deadline = async {
        let mut stopped = stopped.clone();
        let at = match stopped.wait_for(Option::is_some).await {
            Ok(at) => at.unwrap_or_else(tokio::time::Instant::now),
            Err(_) => std::future::pending().await,
        };
        tokio::time::sleep_until(at + drain).await;
    };
    let served = tokio::select! {
        r = server.into_future() => r,
        () = deadline => Ok(()),
    };
    let left = match *stopped.borrow() {
        Some(at) => drain.saturating_sub(at.elapsed()),
        None => drain,
    };
    if let Err(e) = served {
        eprintln!("error: the server stopped: {e}");
    }
    let report = bus.shutdown(left).await;
    drop(manage);
    let _ = store.sync().await;
    println!("hookbus serve: stopped; {report}");
    Ok(())
}

/// Creates the data directory, readable by the process user only.
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// SIGTERM or Ctrl-C. The handlers are installed when this is called, not
/// when the future is first polled: a signal sent as soon as the address
/// is printed is not lost (nor does it kill the process undrained).
fn stop_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            let recv = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = recv(term) => {}
                () = recv(int) => {}
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
