//! A live delivery dashboard (feature `dashboard`): one page, a JSON API and
//! a Server-Sent Events stream, as an axum [`Router`].
//!
//! [`router`] serves, for one bus and its [`WebhookManager`]:
//!
//! - `GET /`: the page (HTML, JS and CSS embedded in the binary; no build
//!   step, no CDN, no external script). It shows the subscribers and
//!   webhook endpoints with their state (enabled, failing, disabled),
//!   deliveries and failures over the last minute and hour (numbers, and
//!   inline-SVG sparklines of the totals), latency p50/p99, the recent
//!   attempts with status code and response excerpt, the dead letters, and
//!   a live stream of the bus's events filtered by a pattern. It acts:
//!   retry failed, disable/enable an endpoint, test an endpoint, emit a
//!   test event. Lists are paged, so a bus with 1,000 endpoints stays
//!   usable.
//! - `/api/...`: the same as JSON (see below).
//! - `GET /api/stream?pattern=P`: Server-Sent Events: `tick` (the overview,
//!   once per sample) and `event` (each bus event matching `P`).
//!
//! # Access
//!
//! Every `/api` route needs the token: `Authorization: Bearer <token>`
//! (compared in constant time); the stream also takes `?token=` because
//! browsers' `EventSource` cannot set headers. Without it: `401`. The page
//! and its script and style hold no data and are served without it; the
//! page reads the token from the URL fragment (`/#token=...`, which
//! browsers never send to a server or in a `Referer`) and sends it as the
//! header. Actions are `POST`s that need the header, so a cross-site form
//! cannot trigger them. [`serve`] binds `127.0.0.1` by default.
//!
//! # Bounded
//!
//! A sampler task (one per router, on the bus's runtime) reads the stats
//! every [`DashboardConfig::sample_every`] and keeps two small rings: the
//! last minute at that interval and the last hour by the minute. Nothing on
//! the emit or delivery path changes. The sampler also computes the
//! overview once per sample, for every open stream.
//!
//! The stream never buffers without bound: `tick`s come from a watch
//! channel (a slow browser gets the newest overview, the ones it missed are
//! coalesced away), and the live events come from a [`Tap`](crate::Tap) on
//! the bus's broadcast ring: all open pages together cost an emit one write,
//! however many there are, and a page that falls a ring behind
//! ([`BusBuilder::tap_capacity`](crate::BusBuilder::tap_capacity)) skips
//! the oldest events; its `tick` says how many. At most
//! [`DashboardConfig::max_streams`] streams are open at once (`429` beyond
//! that), and [`serve`] closes a connection whose browser has not taken
//! what was written within [`DashboardConfig::write_timeout`] (a mounted
//! [`router`] leaves that to the application's own server).
//!
//! # API
//!
//! | route | what |
//! |---|---|
//! | `GET /api/overview` | bus counters, totals, the minute and hour series |
//! | `GET /api/subscribers?page=&per_page=` | subscribers with their counters |
//! | `GET /api/webhooks?page=&per_page=&q=` | endpoints with state, counters, minute/hour rates, dead letters |
//! | `GET /api/webhooks/{id}/attempts?limit=` | an endpoint's newest attempts |
//! | `GET /api/webhooks/{id}/dead-letters?limit=` | an endpoint's dead letters, newest first |
//! | `GET /api/attempts?limit=` | the newest attempts of all endpoints |
//! | `POST /api/webhooks/{id}/retry` | [`WebhookManager::retry_failed`] (all kept letters) |
//! | `POST /api/webhooks/{id}/enable`, `.../disable` | [`WebhookManager::enable`], [`disable`](WebhookManager::disable) |
//! | `POST /api/webhooks/{id}/test` | [`WebhookManager::test`] with `{"type", "data"}` (both optional) |
//! | `POST /api/events` | emits `{"type", "data"}` on the bus (`hookbus.*` types are the bus's own announcements: only `hookbus.test` is allowed) |
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use hookbus::Bus;
//! use hookbus::dashboard::{self, DashboardConfig};
//! use hookbus::webhook::{WebhookManager, WebhookSink};
//!
//! let bus = Bus::new()?;
//! let webhooks = Arc::new(WebhookManager::new(&bus));
//! webhooks.register(WebhookSink::builder("https://hooks.example.com/in").name("crm"))?;
//!
//! // A router to nest in your own app...
//! let config = DashboardConfig::with_random_token();
//! let app = axum::Router::new().nest("/ops", dashboard::router(&bus, webhooks.clone(), config)?);
//! # drop(app);
//!
//! // ...or served on its own, on 127.0.0.1 and a free port.
//! let server = dashboard::serve(&bus, webhooks, DashboardConfig::with_random_token()).await?;
//! println!("dashboard: {}", server.url());
//! server.shutdown().await;
//! # Ok(()) }
//! ```

mod api;
mod auth;
mod history;
mod stream;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;

use crate::bus::Bus;
use crate::webhook::WebhookManager;

use auth::Token;
use history::History;

/// The shortest token [`router`] accepts.
pub const MIN_TOKEN_LEN: usize = 16;

/// Settings of a dashboard: the token, sampling and paging.
#[derive(Clone)]
pub struct DashboardConfig {
    token: String,
    bind: SocketAddr,
    sample_every: Duration,
    page_size: usize,
    max_streams: usize,
    write_timeout: Duration,
}

impl fmt::Debug for DashboardConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DashboardConfig")
            .field("token", &"[redacted]")
            .field("bind", &self.bind)
            .field("sample_every", &self.sample_every)
            .field("page_size", &self.page_size)
            .field("max_streams", &self.max_streams)
            .field("write_timeout", &self.write_timeout)
            .finish()
    }
}

impl DashboardConfig {
    /// Settings with this access token (at least [`MIN_TOKEN_LEN`]
    /// characters, checked by [`router`]).
    pub fn new(token: impl Into<String>) -> DashboardConfig {
        DashboardConfig {
            token: token.into(),
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            sample_every: Duration::from_secs(1),
            page_size: 50,
            max_streams: 64,
            write_timeout: Duration::from_secs(30),
        }
    }

    /// Settings with a random 32-hex-digit token (read it back with
    /// [`token`](Self::token) or [`DashboardServer::url`]).
    pub fn with_random_token() -> DashboardConfig {
        let a = uuid::Uuid::new_v4().simple().to_string();
        let b = uuid::Uuid::new_v4().simple().to_string();
        // A v4 UUID has 122 random bits; the version and variant digits are
        // skipped, so each half is 30 random hex digits.
        let token: String = a
            .chars()
            .enumerate()
            .chain(b.chars().enumerate())
            .filter(|(i, _)| *i != 12 && *i != 16)
            .map(|(_, c)| c)
            .take(48)
            .collect();
        DashboardConfig::new(token)
    }

    /// The access token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The address [`serve`] binds (default `127.0.0.1:0`: loopback, a
    /// free port). Binding a public address exposes the dashboard to
    /// anyone who can reach it and has the token; put TLS in front.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// How often the stats are sampled for the rates, the charts and the
    /// stream's `tick` (default 1 second; at least 10 ms).
    pub fn sample_every(mut self, every: Duration) -> Self {
        self.sample_every = every;
        self
    }

    /// Rows per page of the lists, and the most a request may ask for
    /// (default 50; 1 to 1,000).
    pub fn page_size(mut self, n: usize) -> Self {
        self.page_size = n;
        self
    }

    /// Event streams (`/api/stream`) open at once (default 64; 1 to
    /// 65,536): one more is answered `429 Too Many Requests`.
    pub fn max_streams(mut self, n: usize) -> Self {
        self.max_streams = n;
        self
    }

    /// How long [`serve`] waits for a client to take what it was sent
    /// before it closes the connection (default 30 s; at least 10 ms): a
    /// browser tab that stopped reading does not hold a stream for ever.
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    fn validate(&self) -> Result<(), DashboardError> {
        if self.token.chars().count() < MIN_TOKEN_LEN {
            return Err(DashboardError::TokenTooShort);
        }
        if self.token.chars().any(|c| !c.is_ascii_graphic()) {
            return Err(DashboardError::TokenNotPrintable);
        }
        if self.sample_every < Duration::from_millis(10) {
            return Err(DashboardError::SampleInterval(self.sample_every));
        }
        if !(1..=1000).contains(&self.page_size) {
            return Err(DashboardError::PageSize(self.page_size));
        }
        if !(1..=65_536).contains(&self.max_streams) {
            return Err(DashboardError::MaxStreams(self.max_streams));
        }
        if self.write_timeout < Duration::from_millis(10) {
            return Err(DashboardError::WriteTimeout(self.write_timeout));
        }
        Ok(())
    }
}

/// What [`router`] and [`serve`] refuse.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DashboardError {
    /// The token is shorter than [`MIN_TOKEN_LEN`].
    #[error("the dashboard token must have at least {MIN_TOKEN_LEN} characters")]
    TokenTooShort,
    /// The token has a space or a character outside visible ASCII (it
    /// travels in a header and a URL).
    #[error("the dashboard token must be visible ASCII (no spaces)")]
    TokenNotPrintable,
    /// The sampling interval is under 10 ms.
    #[error("the dashboard sampling interval {0:?} is under 10 ms")]
    SampleInterval(Duration),
    /// The page size is outside 1..=1000.
    #[error("the dashboard page size {0} is outside 1..=1000")]
    PageSize(usize),
    /// The limit on open streams is outside 1..=65536.
    #[error("the dashboard's limit on open streams {0} is outside 1..=65536")]
    MaxStreams(usize),
    /// The write timeout is under 10 ms.
    #[error("the dashboard write timeout {0:?} is under 10 ms")]
    WriteTimeout(Duration),
    /// The bus is shut down.
    #[error("the bus is shut down")]
    BusClosed,
    /// The address could not be bound.
    #[error("cannot bind the dashboard to {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// What the handlers share.
struct Shared {
    bus: Bus,
    manager: Arc<WebhookManager>,
    token: Token,
    page_size: usize,
    max_streams: usize,
    /// Streams open now.
    streams: std::sync::atomic::AtomicUsize,
    history: Mutex<History>,
    /// The overview after each sample (JSON text of an object), computed
    /// once for every open stream; `None` before the first sample.
    ticks: tokio::sync::watch::Sender<Option<Arc<str>>>,
    /// Set when [`DashboardServer::shutdown`] is called: open streams end
    /// (they would otherwise hold a graceful shutdown open for ever).
    closing: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    fn history(&self) -> std::sync::MutexGuard<'_, History> {
        self.history.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The dashboard for `bus` and the webhooks of `manager`, as a router to
/// serve or nest (link to it with a trailing slash, e.g. `/ops/`: the page
/// loads `app.js` and `api/..` relative to itself). Starts its sampler on
/// the bus's runtime; the sampler ends when the router (every clone) is
/// dropped or the bus shuts down.
///
/// An open event stream ends when its browser goes away or the bus shuts
/// down; an application that shuts its server down gracefully should shut
/// the bus down first, or the open streams keep the server waiting.
/// ([`serve`] ends them itself.)
pub fn router(
    bus: &Bus,
    manager: Arc<WebhookManager>,
    config: DashboardConfig,
) -> Result<Router, DashboardError> {
    build(bus, manager, config).map(|(router, _)| router)
}

fn build(
    bus: &Bus,
    manager: Arc<WebhookManager>,
    config: DashboardConfig,
) -> Result<(Router, Arc<Shared>), DashboardError> {
    config.validate()?;
    if bus.is_closed() {
        return Err(DashboardError::BusClosed);
    }
    let shared = Arc::new(Shared {
        bus: bus.clone(),
        manager,
        token: Token::new(&config.token),
        page_size: config.page_size,
        max_streams: config.max_streams,
        streams: std::sync::atomic::AtomicUsize::new(0),
        history: Mutex::new(History::new(config.sample_every)),
        ticks: tokio::sync::watch::Sender::new(None),
        closing: tokio::sync::watch::Sender::new(false),
    });
    history::spawn_sampler(&shared, config.sample_every);
    Ok((api::routes(shared.clone()), shared))
}

/// A dashboard served on its own address; see [`serve`].
pub struct DashboardServer {
    addr: SocketAddr,
    token: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for DashboardServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DashboardServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl DashboardServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The page's URL with the token in its fragment
    /// (`http://127.0.0.1:PORT/#token=...`): what to open in a browser. It
    /// contains the token: print it only where the token may be seen.
    pub fn url(&self) -> String {
        format!("http://{}/#token={}", self.addr, self.token)
    }

    /// Stops serving (open streams end) and waits for the server to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for DashboardServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves [`router`] on [`DashboardConfig::bind`] (default `127.0.0.1`, a
/// free port) until the returned server is shut down or dropped.
pub async fn serve(
    bus: &Bus,
    manager: Arc<WebhookManager>,
    config: DashboardConfig,
) -> Result<DashboardServer, DashboardError> {
    let (bind, token, write_timeout) = (config.bind, config.token.clone(), config.write_timeout);
    let (app, shared) = build(bus, manager, config)?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|source| DashboardError::Bind { addr: bind, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| DashboardError::Bind { addr: bind, source })?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let listener = WriteTimeout {
        inner: listener,
        timeout: write_timeout,
    };
    let task = bus.runtime().spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
                shared.closing.send_replace(true);
            })
            .await;
    });
    Ok(DashboardServer {
        addr,
        token,
        stop: Some(stop),
        task,
    })
}

/// A listener whose connections fail a write that has waited longer than
/// `timeout` for the client to read (then the server closes them).
struct WriteTimeout {
    inner: tokio::net::TcpListener,
    timeout: Duration,
}

impl axum::serve::Listener for WriteTimeout {
    type Io = std::pin::Pin<Box<tokio_io_timeout::TimeoutStream<tokio::net::TcpStream>>>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        let (io, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        let mut io = tokio_io_timeout::TimeoutStream::new(io);
        io.set_write_timeout(Some(self.timeout));
        (Box::pin(io), addr)
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}
