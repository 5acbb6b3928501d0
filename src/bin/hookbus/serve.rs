//! `hookbus serve`: webhooks as a service in one process: the management
//! API (`hookbus::manage`), the bus, and durable, signed webhook delivery,
//! on one store file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hookbus::Bus;
use hookbus::manage::Manage;
use hookbus::signature::Secret;
use hookbus::store::Store;

use crate::{EXIT_INPUT, EXIT_IO, Failure};

/// Run the webhook management API over HTTP: tenants register endpoints,
/// post events, and read their deliveries; every endpoint and pending
/// delivery is kept in DIR and survives a restart.
///
/// Each request names its tenant with `Authorization: Bearer TOKEN`; a
/// request without a known token gets 401. Tokens come from --token
/// (repeatable) and from HOOKBUS_TOKENS (`t1=tok1,t2=tok2`); they are never
/// printed.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The address to listen on (port 0: any free port; the address is
    /// printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The directory of the store (`hookbus.redb`) and the secrets file
    /// (`secrets.json`, mode 0600); created if missing.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// A tenant and its bearer token, `TENANT=TOKEN` (repeatable).
    #[arg(long = "token", value_name = "TENANT=TOKEN")]
    tokens: Vec<String>,
    /// Let endpoints target plain http on 127.0.0.1 / localhost (local
    /// testing). Off by default: https only, internal addresses refused.
    #[arg(long)]
    allow_loopback: bool,
    /// The most endpoints one tenant may have.
    #[arg(long, default_value_t = hookbus::manage::DEFAULT_MAX_ENDPOINTS)]
    max_endpoints: usize,
    /// Keep delivered events this many hours (at most a million), so
    /// `POST /v1/webhooks/{id}/replay` can send them again; 0: keep none.
    #[arg(long, value_name = "HOURS", default_value_t = 24)]
    keep_delivered_hours: u64,
    /// On SIGTERM or Ctrl-C, how long deliveries under way may take to
    /// finish (what is left stays pending in the store for the next start).
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    drain_timeout: u64,
}

/// Tokens and their tenants; a token is compared in constant time.
struct Tokens(Vec<(Secret, String)>);

impl Tokens {
    fn parse<'a>(specs: impl IntoIterator<Item = &'a str>) -> Result<Tokens, Failure> {
        let mut out: Vec<(Secret, String)> = Vec::new();
        for spec in specs {
            let spec = spec.trim();
            if spec.is_empty() {
                continue;
            }
            let Some((tenant, token)) = spec.split_once('=') else {
                return Err(Failure::input(
                    "error: a token is TENANT=TOKEN (the value is not shown)",
                ));
            };
            let tenant = tenant.trim();
            if tenant.is_empty()
                || !tenant
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            {
                return Err(Failure::input(format!(
                    "error: tenant {tenant:?} must be letters, digits, '.', '_' or '-'"
                )));
            }
            if token.len() < 8 {
                return Err(Failure::input(format!(
                    "error: the token of tenant {tenant:?} is shorter than 8 characters"
                )));
            }
            let token = Secret::from(token);
            if out.iter().any(|(t, _)| *t == token) {
                return Err(Failure::input(format!(
                    "error: the token of tenant {tenant:?} is given twice"
                )));
            }
            out.push((token, tenant.to_owned()));
        }
        Ok(Tokens(out))
    }

    fn tenant(&self, token: &str) -> Option<String> {
        let token = Secret::from(token);
        // Every token is compared, so the time does not say which matched.
        let mut found = None;
        for (t, tenant) in &self.0 {
            if *t == token {
                found = Some(tenant.clone());
            }
        }
        found
    }
}

pub(crate) async fn run(args: Args) -> Result<(), Failure> {
    let env = std::env::var("HOOKBUS_TOKENS").unwrap_or_default();
    let tokens = Tokens::parse(args.tokens.iter().map(String::as_str).chain(env.split(',')))?;
    if tokens.0.is_empty() {
        return Err(Failure::input(
            "error: no tenant can call: give --token TENANT=TOKEN or HOOKBUS_TOKENS=t1=tok1,t2=tok2",
        ));
    }
    let tokens = Arc::new(tokens);
    create_private_dir(&args.data).map_err(|e| Failure {
        code: EXIT_IO,
        message: format!("error: cannot create {}: {e}", args.data.display()),
    })?;
    let mut store = Store::builder(args.data.join("hookbus.redb"));
    if args.keep_delivered_hours > 0 {
        store = store.keep_delivered(
            Duration::from_secs(args.keep_delivered_hours.saturating_mul(3600)),
            1_000_000,
        );
    }
    let store = store.open().map_err(|e| Failure {
        code: EXIT_IO,
        message: format!("error: {e}"),
    })?;
    let bus = Bus::new().map_err(|e| Failure {
        code: EXIT_IO,
        message: format!("error: {e}"),
    })?;
    let manage = Manage::builder(&bus)
        .identify(move |req| {
            let auth = req.headers.get("authorization")?.to_str().ok()?;
            let (scheme, token) = auth.split_once(' ')?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return None;
            }
            tokens.tenant(token.trim())
        })
        .allow_loopback(args.allow_loopback)
        .max_endpoints(args.max_endpoints)
        .durable(&store, args.data.join("secrets.json"))
        .build()
        .map_err(|e| Failure {
            code: EXIT_INPUT,
            message: format!("error: {e}"),
        })?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| Failure {
            code: EXIT_IO,
            message: format!("error: cannot listen on {}: {e}", args.listen),
        })?;
    let addr = listener.local_addr().map_err(|e| Failure {
        code: EXIT_IO,
        message: format!("error: {e}"),
    })?;
    println!(
        "hookbus serve: listening on http://{addr} ({} webhooks kept in {})",
        manage.len(),
        args.data.display()
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let app = manage.router();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(stop_signal())
        .await;
    if let Err(e) = served {
        eprintln!("error: the server stopped: {e}");
    }
    let report = bus.shutdown(Duration::from_secs(args.drain_timeout)).await;
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
