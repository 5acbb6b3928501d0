//! [`TestReceiver`]: a verifying webhook receiver on a local port, with
//! fault injection and a record of what it received.

use std::collections::VecDeque;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, Method, StatusCode, Uri};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::reply::{Prepared, Reply};
use super::{ReceiverError, WaitError, wait_on};
use crate::event::Event;
use crate::verify::{Verified, Verifier, VerifyError};

/// How long a wait lasts by default before it returns
/// [`WaitError::TimedOut`]: 10 s (virtual under a paused clock).
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the signature check said about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureCheck {
    /// The receiver has no verifier: nothing was checked.
    Unchecked,
    /// The signature verified.
    Verified(Verified),
    /// The request was refused, and why: answered 401 (a replay of an
    /// accepted request: 200 `{"status":"duplicate"}`; a copy of one being
    /// answered right now: 503).
    Rejected(VerifyError),
}

/// What decided a request's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AnsweredBy {
    /// The default reply ([`TestReceiverBuilder::default_reply`]).
    Default,
    /// The next reply of the script ([`TestReceiverBuilder::script`],
    /// [`TestReceiver::enqueue`]).
    Script,
    /// [`fail_next`](TestReceiver::fail_next): 503.
    FailNext,
    /// The [fail rate](TestReceiverBuilder::fail_rate)'s draw: 503.
    FailRate,
    /// The signature check refused it (see [`SignatureCheck::Rejected`]).
    Signature,
}

/// One request as the receiver saw and answered it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReceivedRequest {
    /// Its number, from 1, in order of arrival.
    pub seq: u64,
    /// The method.
    pub method: Method,
    /// The path (without the query).
    pub path: String,
    /// The headers as received.
    pub headers: HeaderMap,
    /// The raw body, exactly as received.
    pub body: Bytes,
    /// When it arrived (virtual time under a paused clock, so retry
    /// schedules can be read off it).
    pub received_at: Instant,
    /// The signature check.
    pub signature: SignatureCheck,
    /// The CloudEvents it carries (binary, structured or batched mode);
    /// empty for other bodies (templates, raw payloads) and for requests
    /// whose signature was rejected.
    pub events: Vec<Event>,
    /// The status it was answered with.
    pub status: StatusCode,
    /// What decided the answer.
    pub answered_by: AnsweredBy,
}

impl ReceivedRequest {
    /// A header's value as text (any case; `None` if absent or not text).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// Whether the request was accepted: its signature verified (or was not
    /// checked) and it was answered 2xx.
    pub fn is_accepted(&self) -> bool {
        !matches!(self.signature, SignatureCheck::Rejected(_)) && self.status.is_success()
    }

    /// Whether a fault was injected into its answer (the script,
    /// `fail_next` or the fail rate answered it).
    pub fn is_injected(&self) -> bool {
        matches!(
            self.answered_by,
            AnsweredBy::Script | AnsweredBy::FailNext | AnsweredBy::FailRate
        )
    }

    /// Why its signature was rejected, if it was.
    pub fn rejection(&self) -> Option<&VerifyError> {
        match &self.signature {
            SignatureCheck::Rejected(e) => Some(e),
            _ => None,
        }
    }
}

/// Counters of a [`TestReceiver`], over every request (also those no
/// longer kept under a [`history`](TestReceiverBuilder::history) limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReceiverStats {
    /// Requests received.
    pub requests: u64,
    /// Requests whose signature verified.
    pub verified: u64,
    /// Requests whose signature was rejected.
    pub rejected: u64,
    /// Requests not checked (no verifier).
    pub unchecked: u64,
    /// Requests answered with an injected fault (script, `fail_next`, fail
    /// rate).
    pub injected: u64,
    /// Requests accepted ([`ReceivedRequest::is_accepted`]).
    pub accepted: u64,
    /// CloudEvents in accepted requests.
    pub accepted_events: u64,
}

type Observer = Arc<dyn Fn(&ReceivedRequest) + Send + Sync>;

/// Builds a [`TestReceiver`]; see [`TestReceiver::builder`].
#[must_use]
pub struct TestReceiverBuilder {
    addr: SocketAddr,
    verifier: Option<Verifier>,
    default_reply: Reply,
    script: Vec<Reply>,
    fail_next: u64,
    fail_rate: f64,
    seed: Option<u64>,
    delay: Duration,
    history: Option<usize>,
    wait_timeout: Duration,
    observer: Option<Observer>,
}

impl fmt::Debug for TestReceiverBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestReceiverBuilder")
            .field("addr", &self.addr)
            .field("verifier", &self.verifier)
            .field("default_reply", &self.default_reply)
            .field("script", &self.script.len())
            .field("fail_next", &self.fail_next)
            .field("fail_rate", &self.fail_rate)
            .field("delay", &self.delay)
            .finish_non_exhaustive()
    }
}

impl TestReceiverBuilder {
    /// The address to listen on (default `127.0.0.1:0`, a free port).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Verify each request's signature with `verifier` (any scheme
    /// [`crate::verify`] supports; e.g. [`Verifier::for_scheme`] with a
    /// subscriber's scheme and secrets). A request that does not verify is
    /// answered 401 and recorded with the reason. If the verifier has a
    /// [`ReplayGuard`](crate::verify::ReplayGuard), a request is remembered
    /// only once answered 2xx, as a real receiver should: a retry after an
    /// injected 503 is not a replay. Without a verifier nothing is checked.
    pub fn verifier(mut self, verifier: Verifier) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// The answer when no fault applies (default [`Reply::ok`]).
    pub fn default_reply(mut self, reply: Reply) -> Self {
        self.default_reply = reply;
        self
    }

    /// Answers for the next requests, in order (one each), before any other
    /// fault: e.g. `[Reply::too_many_requests(30 s), Reply::server_error()]`
    /// then the default. Requests whose signature is rejected do not use
    /// one.
    pub fn script(mut self, replies: impl IntoIterator<Item = Reply>) -> Self {
        self.script.extend(replies);
        self
    }

    /// Answers the next `n` requests (after the script) with 503.
    pub fn fail_next(mut self, n: u64) -> Self {
        self.fail_next = n;
        self
    }

    /// Answers this fraction of requests (0 to 1; after the script and
    /// `fail_next`) with 503. [`seed`](Self::seed) makes the draws
    /// reproducible.
    pub fn fail_rate(mut self, fraction: f64) -> Self {
        self.fail_rate = fraction;
        self
    }

    /// Seeds the fail-rate draws.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Waits this long before every answer (virtual time under a paused
    /// clock).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Keeps only the last `n` requests (default: all). The
    /// [stats](TestReceiver::stats) count every request whatever this is; a
    /// long-running receiver (the CLI's `listen`) keeps none.
    pub fn history(mut self, n: usize) -> Self {
        self.history = Some(n);
        self
    }

    /// How long the receiver's waits last before they return
    /// [`WaitError::TimedOut`] (default [`DEFAULT_WAIT_TIMEOUT`]). Under a
    /// paused clock this is virtual time: a wait across a retry schedule of
    /// hours needs a limit of hours.
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = timeout;
        self
    }

    /// Calls `observer` with each request once its answer is decided, just
    /// before the answer is sent (after any delay). For printing or saving
    /// requests as they come; it runs on the receiver's task, so keep it
    /// short.
    pub fn on_request(
        mut self,
        observer: impl Fn(&ReceivedRequest) + Send + Sync + 'static,
    ) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// Binds the address and starts serving on the current Tokio runtime.
    pub async fn start(self) -> Result<TestReceiver, ReceiverError> {
        if !(0.0..=1.0).contains(&self.fail_rate) {
            return Err(ReceiverError::FailRate(self.fail_rate));
        }
        let default = self.default_reply.prepare()?;
        let script = self
            .script
            .iter()
            .map(Reply::prepare)
            .collect::<Result<VecDeque<_>, _>>()?;
        let rng = match self.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_entropy(),
        };
        let tcp = tokio::net::TcpListener::bind(self.addr)
            .await
            .map_err(|source| ReceiverError::Bind {
                addr: self.addr,
                source,
            })?;
        let addr = tcp.local_addr().map_err(|source| ReceiverError::Bind {
            addr: self.addr,
            source,
        })?;
        let (changed, _) = watch::channel(());
        let shared = Arc::new(Shared {
            verifier: self.verifier,
            plan: Mutex::new(Plan {
                script,
                fail_next: self.fail_next,
                fail_rate: self.fail_rate,
                rng,
                default,
            }),
            log: Mutex::new(Log {
                kept: VecDeque::new(),
                limit: self.history.unwrap_or(usize::MAX),
                stats: ReceiverStats::default(),
            }),
            changed,
            seq: AtomicU64::new(0),
            delay: self.delay,
            observer: self.observer,
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            axum::serve(tcp, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(TestReceiver {
            addr,
            shared,
            stop: Some(stop),
            server: Some(server),
            wait_timeout: self.wait_timeout,
        })
    }
}

/// A webhook receiver on a local port for tests: it verifies each
/// request's signature, answers as scripted (faults, delays, slow bodies),
/// records what it received and lets a test wait for it.
///
/// Start one with [`TestReceiver::start`] (accepts everything unchecked) or
/// [`TestReceiver::builder`]; point a webhook subscriber at
/// [`url`](Self::url). Faults apply in this order: the
/// [script](TestReceiverBuilder::script) (and [`enqueue`](Self::enqueue)d
/// replies), then [`fail_next`](Self::fail_next), then the
/// [fail rate](TestReceiverBuilder::fail_rate), else the default reply. A
/// request whose signature does not verify gets 401 and uses none of them.
///
/// Waits ([`wait_for`](Self::wait_for), [`wait_for_events`](Self::wait_for_events),
/// [`wait_until`](Self::wait_until)) wake on each recorded request, never
/// poll, and return [`WaitError::TimedOut`] after the
/// [wait timeout](TestReceiverBuilder::wait_timeout) instead of hanging.
/// A request is recorded once its answer is decided and any delay has
/// passed, just before the answer goes out.
///
/// Dropping the receiver stops it at once; [`shutdown`](Self::shutdown)
/// stops it gracefully.
///
/// ```
/// # #[cfg(feature = "webhook")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use hookbus::Event;
/// use hookbus::signature::SignatureScheme;
/// use hookbus::testing::{Reply, TestReceiver};
/// use hookbus::verify::Verifier;
/// use hookbus::webhook::{DeliveryStatus, RetryPolicy, WebhookEmitter};
/// use serde_json::json;
/// use std::time::Duration;
///
/// let receiver = TestReceiver::builder()
///     .verifier(Verifier::timestamped("Rubric", "s3cret")?)
///     .script([Reply::unavailable(), Reply::too_many_requests(Duration::from_secs(1))])
///     .start()
///     .await?;
/// let webhook = WebhookEmitter::builder(receiver.url())
///     .signature(SignatureScheme::timestamped("Rubric")?)
///     .secret("s3cret")
///     .retry(RetryPolicy::exponential(3, Duration::from_millis(10), Duration::from_millis(10)))
///     .build_emitter()?;
///
/// let out = webhook.emit(Event::new("decision.captured", json!({"decision_id": "d-1"}))?).await;
/// assert_eq!(out.status, DeliveryStatus::Delivered);
/// assert_eq!(out.attempts, 3);
///
/// let requests = receiver.wait_for(3).await?;
/// assert!(requests.iter().all(|r| r.rejection().is_none()));
/// assert_eq!(requests.iter().map(|r| r.status.as_u16()).collect::<Vec<_>>(), [503, 429, 200]);
/// let events = receiver.events();
/// assert_eq!(events.len(), 1);
/// assert_eq!(events[0].data()["decision_id"], "d-1");
/// # Ok(()) }
/// # #[cfg(not(feature = "webhook"))]
/// # fn main() {}
/// ```
pub struct TestReceiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
    wait_timeout: Duration,
}

impl fmt::Debug for TestReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestReceiver")
            .field("addr", &self.addr)
            .field("verifier", &self.shared.verifier)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl TestReceiver {
    /// A receiver on `127.0.0.1` (a free port) that checks no signature and
    /// answers 200 to everything.
    pub async fn start() -> Result<TestReceiver, ReceiverError> {
        TestReceiver::builder().start().await
    }

    /// A builder: address, verifier, faults, history, wait timeout.
    pub fn builder() -> TestReceiverBuilder {
        TestReceiverBuilder {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            verifier: None,
            default_reply: Reply::ok(),
            script: Vec::new(),
            fail_next: 0,
            fail_rate: 0.0,
            seed: None,
            delay: Duration::ZERO,
            history: None,
            wait_timeout: DEFAULT_WAIT_TIMEOUT,
            observer: None,
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL to give a webhook subscriber: `http://<addr>/hook`. The
    /// receiver answers on every path; see [`url_for`](Self::url_for).
    pub fn url(&self) -> String {
        self.url_for("/hook")
    }

    /// The URL of `path` on the receiver (`path` starts with `/`).
    pub fn url_for(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers the next `n` requests with 503 (after any scripted replies
    /// still queued), adding to any still pending.
    pub fn fail_next(&self, n: u64) {
        self.shared.plan().fail_next += n;
    }

    /// Queues replies behind the script: the next requests get them, in
    /// order.
    pub fn enqueue(&self, replies: impl IntoIterator<Item = Reply>) -> Result<(), ReceiverError> {
        let prepared = replies
            .into_iter()
            .map(|r| r.prepare())
            .collect::<Result<Vec<_>, _>>()?;
        self.shared.plan().script.extend(prepared);
        Ok(())
    }

    /// Changes the answer when no fault applies.
    pub fn set_default_reply(&self, reply: Reply) -> Result<(), ReceiverError> {
        let prepared = reply.prepare()?;
        self.shared.plan().default = prepared;
        Ok(())
    }

    /// Every request kept so far, in order of arrival.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.shared.log().kept.iter().cloned().collect()
    }

    /// The requests whose signature was rejected, each with its
    /// [reason](ReceivedRequest::rejection).
    pub fn rejected(&self) -> Vec<ReceivedRequest> {
        self.shared
            .log()
            .kept
            .iter()
            .filter(|r| r.rejection().is_some())
            .cloned()
            .collect()
    }

    /// The CloudEvents of the accepted requests (verified or unchecked,
    /// answered 2xx), in order. A sender's retry after an injected failure
    /// appears once: only the accepted copy counts.
    pub fn events(&self) -> Vec<Event> {
        accepted_events(&self.shared.log())
    }

    /// The counters.
    pub fn stats(&self) -> ReceiverStats {
        self.shared.log().stats
    }

    /// Waits until at least `n` requests have been received (whatever their
    /// answer), then returns the requests kept.
    pub async fn wait_for(&self, n: usize) -> Result<Vec<ReceivedRequest>, WaitError> {
        self.wait(&format!("{n} requests"), |log| {
            let seen = log.stats.requests as usize;
            (seen >= n, seen)
        })
        .await?;
        Ok(self.requests())
    }

    /// Waits until at least `n` CloudEvents were accepted, then returns
    /// them ([`events`](Self::events)).
    pub async fn wait_for_events(&self, n: usize) -> Result<Vec<Event>, WaitError> {
        self.wait(&format!("{n} accepted events"), |log| {
            let seen = log.stats.accepted_events as usize;
            (seen >= n, seen)
        })
        .await?;
        Ok(self.events())
    }

    /// Waits until `condition` holds for the requests kept (checked now and
    /// after each new request).
    pub async fn wait_until(
        &self,
        what: &str,
        mut condition: impl FnMut(&[ReceivedRequest]) -> bool,
    ) -> Result<(), WaitError> {
        self.wait(what, |log| {
            let kept = log.kept.make_contiguous();
            (condition(kept), kept.len())
        })
        .await
    }

    async fn wait(
        &self,
        what: &str,
        mut done: impl FnMut(&mut Log) -> (bool, usize),
    ) -> Result<(), WaitError> {
        let changed = self.shared.changed.subscribe();
        wait_on(changed, self.wait_timeout, what, || {
            done(&mut self.shared.log())
        })
        .await
    }

    /// Stops accepting connections, lets requests in progress finish, and
    /// returns once the server has stopped. The record and the stats stay
    /// readable; calling it again does nothing.
    pub async fn shutdown(&mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.server.take() {
            Some(server) => server.await.unwrap_or(Ok(())),
            None => Ok(()),
        }
    }
}

impl Drop for TestReceiver {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            server.abort();
        }
    }
}

fn accepted_events(log: &Log) -> Vec<Event> {
    log.kept
        .iter()
        .filter(|r| r.is_accepted())
        .flat_map(|r| r.events.iter().cloned())
        .collect()
}

struct Shared {
    verifier: Option<Verifier>,
    plan: Mutex<Plan>,
    log: Mutex<Log>,
    /// Bumped after each recorded request: what waits wake on.
    changed: watch::Sender<()>,
    seq: AtomicU64,
    delay: Duration,
    observer: Option<Observer>,
}

impl Shared {
    // A panicking observer cannot leave these half-updated (no lock is held
    // while it runs), so a poisoned lock's data is still good.
    fn plan(&self) -> MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The faults still to inject, in the order they apply.
struct Plan {
    script: VecDeque<Prepared>,
    fail_next: u64,
    fail_rate: f64,
    rng: StdRng,
    default: Prepared,
}

impl Plan {
    fn next(&mut self) -> (AnsweredBy, Prepared) {
        if let Some(reply) = self.script.pop_front() {
            return (AnsweredBy::Script, reply);
        }
        if self.fail_next > 0 {
            self.fail_next -= 1;
            return (AnsweredBy::FailNext, injected("fail_next"));
        }
        if self.fail_rate > 0.0 && self.rng.r#gen::<f64>() < self.fail_rate {
            return (AnsweredBy::FailRate, injected("fail rate"));
        }
        (AnsweredBy::Default, self.default.clone())
    }
}

fn injected(why: &str) -> Prepared {
    Prepared::json(
        StatusCode::SERVICE_UNAVAILABLE,
        serde_json::json!({ "error": format!("injected failure ({why})") }),
    )
}

struct Log {
    kept: VecDeque<ReceivedRequest>,
    limit: usize,
    stats: ReceiverStats,
}

impl Log {
    fn record(&mut self, request: ReceivedRequest) {
        let s = &mut self.stats;
        s.requests += 1;
        match request.signature {
            SignatureCheck::Unchecked => s.unchecked += 1,
            SignatureCheck::Verified(_) => s.verified += 1,
            SignatureCheck::Rejected(_) => s.rejected += 1,
        }
        s.injected += u64::from(request.is_injected());
        if request.is_accepted() {
            s.accepted += 1;
            s.accepted_events += request.events.len() as u64;
        }
        if self.limit == 0 {
            return;
        }
        if self.kept.len() == self.limit {
            self.kept.pop_front();
        }
        self.kept.push_back(request);
    }
}

/// The receiver's one handler: verify, decide the answer, wait, record,
/// answer.
async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received_at = Instant::now();
    let seq = shared.seq.fetch_add(1, Relaxed) + 1;
    let (signature, pending) = match &shared.verifier {
        None => (SignatureCheck::Unchecked, None),
        Some(v) => match v.verify_pending(&headers, &body) {
            Ok(p) => (SignatureCheck::Verified(p.verified().clone()), Some(p)),
            Err(e) => (SignatureCheck::Rejected(e), None),
        },
    };
    let (answered_by, reply) = match &signature {
        SignatureCheck::Rejected(VerifyError::Replay) => (
            AnsweredBy::Signature,
            Prepared::json(StatusCode::OK, serde_json::json!({"status": "duplicate"})),
        ),
        SignatureCheck::Rejected(VerifyError::InFlight) => (
            AnsweredBy::Signature,
            Prepared::json(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"error": VerifyError::InFlight.to_string()}),
            )
            .with_retry_after(1),
        ),
        SignatureCheck::Rejected(e) => (
            AnsweredBy::Signature,
            Prepared::json(
                StatusCode::UNAUTHORIZED,
                serde_json::json!({"error": format!("signature: {e}")}),
            ),
        ),
        _ => shared.plan().next(),
    };
    if reply.status.is_success()
        && let Some(pending) = pending
    {
        pending.accept();
    }
    let events = match signature {
        SignatureCheck::Rejected(_) => Vec::new(),
        _ => crate::ingress::convert::cloudevents_only(&headers, &body).unwrap_or_default(),
    };
    let delay = shared.delay + reply.delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let request = ReceivedRequest {
        seq,
        method,
        path: uri.path().to_owned(),
        headers,
        body,
        received_at,
        signature,
        events,
        status: reply.status,
        answered_by,
    };
    if let Some(observer) = &shared.observer {
        observer(&request);
    }
    shared.log().record(request);
    shared.changed.send_replace(());
    reply.into_response()
}
