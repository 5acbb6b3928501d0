//! The process-wide default bus: [`setup`] once at startup, [`emit`] from
//! anywhere, [`shutdown`] before exit.
//!
//! The default bus has the same emit verbs as a [`Bus`]:
//!
//! | what you emit | on a [`Bus`] | on the default bus |
//! |---|---|---|
//! | an [`Event`] or a [`TypedEvent`] value | [`bus.emit(e)`](Bus::emit) | [`emit_event(e)`](emit_event) |
//! | a run-time type and a serializable value, no JSON tree | [`bus.emit_payload(ty, v)`](Bus::emit_payload) | [`emit_payload(ty, v)`](emit_payload) |
//! | a type and a JSON value | [`bus.emit_json(ty, json)`](Bus::emit_json) | [`emit_json(ty, json)`](emit_json) |
//! | waiting for room and for the disk | [`bus.publish(e).await`](Bus::publish) | [`publish(e).await`](publish) |
//!
//! [`emit(ty, payload)`](emit) is the Briefcase guide's spelling: any
//! `Serialize` (borrowed too), made into JSON at once. The one name that
//! differs, `emit_event`, differs because `emit` is taken by that spelling.
//!
//! This is the Briefcase style of `setup(webhook_url=.., webhook_secret=..,
//! events=[..])` followed by `emit(..)`, `emit_low_confidence(..)` and
//! `emit_drift_detected(..)` wherever a decision is made, without passing a
//! [`Bus`] around.
//!
//! ```no_run
//! # #[cfg(not(feature = "webhook"))] fn main() {} // Setup::webhook needs feature `webhook`
//! # #[cfg(feature = "webhook")]
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use hookbus::Setup;
//! use serde_json::json;
//! use std::time::Duration;
//!
//! // Once, at startup, inside the Tokio runtime: a signed webhook for two event types.
//! hookbus::setup(Setup::webhook(
//!     "https://hooks.example.com/decisions",
//!     "my-secret",
//!     ["decision.low_confidence", "decision.drift_detected"],
//! ))?;
//!
//! // Anywhere, from any thread: never blocks.
//! hookbus::emit("decision.captured", json!({"decision_id": "abc123"}))?; // nobody subscribed: counted only
//! hookbus::global::emit_low_confidence(json!({"decision_id": "abc123", "confidence": 0.72}))?;
//! hookbus::global::emit_drift_detected(json!({"window": "1h", "drift_score": 0.18}))?;
//!
//! // Before exit: deliver what is pending (retries included) within the deadline.
//! let report = hookbus::shutdown(Duration::from_secs(10)).await?;
//! print!("{report}");
//! # Ok(()) }
//! ```
//!
//! Or hand over a bus of your own, with closure subscribers, webhooks, Kafka:
//!
//! ```standalone_crate
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use hookbus::{Bus, Setup};
//! use serde_json::json;
//!
//! let bus = Bus::new()?;
//! bus.on("decision.*", |e| println!("{} {}", e.event_type(), e.data()))?.detach();
//! hookbus::setup(Setup::event_bus(bus.clone()))?;
//! hookbus::global::emit_low_confidence(json!({"decision_id": "abc123", "confidence": 0.72}))?;
//! # hookbus::shutdown(std::time::Duration::from_secs(1)).await?;
//! # Ok(()) }
//! ```
//!
//! # Semantics
//!
//! - **Before `setup`** every emit helper returns
//!   [`DefaultEmitError::NotSetUp`] with the event, never panics; after
//!   [`shutdown`] they return [`DefaultEmitError::ShutDown`].
//! - **A runtime is needed** when `setup` has to create the bus (webhook
//!   configurations): call it inside a Tokio runtime, or get
//!   [`SetupError::NoRuntime`]. [`Setup::event_bus`] needs none (the bus
//!   already has its runtime). The emit helpers work from any thread.
//! - **Calling `setup` again replaces the configuration** at once: later
//!   emits go to the new bus. A bus that `setup` created itself (from a
//!   webhook URL, builder or emitter) is then **shut down in the background**
//!   with a grace of [`REPLACED_GRACE`]: what was emitted to it before the
//!   replacement is still delivered (retries included) until that deadline;
//!   [`shutdown`] also waits for it. A bus you passed with
//!   [`Setup::event_bus`] is only **detached**, never shut down by a
//!   replacement: it stays yours. An emit racing with a replacement lands on
//!   either bus; on the old one it is delivered by its drain, or refused
//!   with [`EmitError::Closed`] (event given back) once the drain has begun.
//! - [`shutdown`] shuts down the current default bus (also one passed with
//!   [`Setup::event_bus`]: it is the bus the program emits to) and waits for
//!   replaced buses still draining, all within one deadline.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use serde::Serialize;

use crate::TypedEvent;
use crate::bus::{BuildError, Bus, EmitError};
use crate::catalog::decision::{DriftDetected, LowConfidence};
use crate::event::{Event, EventError, IntoEvent};
use crate::stats::ShutdownReport;
#[cfg(feature = "webhook")]
use crate::{
    signature::Secret,
    webhook::{WebhookBuilder, WebhookEmitter, WebhookError, WebhookSink},
};

/// The event type [`emit_low_confidence`] emits (that of
/// [`catalog::decision::LowConfidence`](crate::catalog::decision::LowConfidence)).
pub const LOW_CONFIDENCE: &str = <LowConfidence as TypedEvent>::TYPE;
/// The event type [`emit_drift_detected`] emits (that of
/// [`catalog::decision::DriftDetected`](crate::catalog::decision::DriftDetected)).
pub const DRIFT_DETECTED: &str = <DriftDetected as TypedEvent>::TYPE;
/// How long a bus created by [`setup`] keeps delivering after a later
/// `setup` replaced it.
pub const REPLACED_GRACE: Duration = Duration::from_secs(30);
/// The subscriber name of the webhook [`setup`] registers, unless the
/// builder names it.
pub const SETUP_WEBHOOK_NAME: &str = "setup-webhook";

/// The default bus now: `bus` is `None` after [`shutdown`].
struct Current {
    bus: Option<Bus>,
    /// Created by `setup` (shut down when replaced) or given by the user.
    owned: bool,
}

static CURRENT: ArcSwapOption<Current> = ArcSwapOption::const_empty();
/// Serialises `setup` and `shutdown`, and holds the shutdowns of replaced
/// buses still draining.
static RETIRING: Mutex<Vec<tokio::task::JoinHandle<ShutdownReport>>> = Mutex::new(Vec::new());

/// What [`setup`] installs as the default bus. Build it with one of the
/// constructors, or pass a [`Bus`], a [`WebhookEmitter`] or a
/// [`WebhookBuilder`] directly (they convert).
#[must_use]
pub struct Setup {
    target: Target,
}

enum Target {
    Bus(Bus),
    #[cfg(feature = "webhook")]
    Webhook(Box<WebhookBuilder>),
    #[cfg(feature = "webhook")]
    Emitter(WebhookEmitter),
}

impl fmt::Debug for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            Target::Bus(b) => f.debug_tuple("Setup::event_bus").field(b).finish(),
            #[cfg(feature = "webhook")]
            Target::Webhook(b) => f.debug_tuple("Setup::webhook").field(b).finish(),
            #[cfg(feature = "webhook")]
            Target::Emitter(e) => f.debug_tuple("Setup::emitter").field(e).finish(),
        }
    }
}

impl Setup {
    /// Events go to this bus, with whatever subscribers it has (the
    /// Briefcase `setup(event_bus=..)`). A later `setup` detaches it without
    /// shutting it down.
    pub fn event_bus(bus: Bus) -> Setup {
        Setup {
            target: Target::Bus(bus),
        }
    }

    /// A new bus with one signed webhook subscriber (the Briefcase
    /// `setup(webhook_url=.., webhook_secret=.., events=[..])`): events of the
    /// listed types (or patterns such as `decision.*`; none listed means every
    /// event) are POSTed to `url` as CloudEvents, signed
    /// `X-Briefcase-Signature: sha256=<hex>` with `secret` (an empty secret
    /// sends them unsigned), in CloudEvents binary mode as the Briefcase
    /// guide's emitter sends them (unlike [`WebhookBuilder`]'s defaults,
    /// Standard Webhooks and structured mode), retried as its defaults say.
    #[cfg(feature = "webhook")]
    #[cfg_attr(docsrs, doc(cfg(feature = "webhook")))]
    pub fn webhook<S: Into<String>>(
        url: impl Into<String>,
        secret: impl Into<Secret>,
        events: impl IntoIterator<Item = S>,
    ) -> Setup {
        Setup::webhook_builder(
            WebhookSink::builder(url)
                .secret(secret)
                .events(events)
                .signature(crate::signature::SignatureScheme::briefcase())
                .format(crate::webhook::WireFormat::Binary),
        )
    }

    /// A new bus with the webhook this builder describes (any scheme,
    /// template, retry policy…) as its subscriber.
    #[cfg(feature = "webhook")]
    #[cfg_attr(docsrs, doc(cfg(feature = "webhook")))]
    pub fn webhook_builder(builder: WebhookBuilder) -> Setup {
        Setup {
            target: Target::Webhook(Box::new(builder)),
        }
    }

    /// A new bus with this emitter's endpoint as its subscriber (the Briefcase
    /// `setup(event_bus=WebhookEmitter(..))`). The emitter's log and stats
    /// are shared with the subscriber.
    #[cfg(feature = "webhook")]
    #[cfg_attr(docsrs, doc(cfg(feature = "webhook")))]
    pub fn emitter(emitter: WebhookEmitter) -> Setup {
        Setup {
            target: Target::Emitter(emitter),
        }
    }
}

impl From<Bus> for Setup {
    fn from(bus: Bus) -> Setup {
        Setup::event_bus(bus)
    }
}

#[cfg(feature = "webhook")]
#[cfg_attr(docsrs, doc(cfg(feature = "webhook")))]
impl From<WebhookBuilder> for Setup {
    fn from(builder: WebhookBuilder) -> Setup {
        Setup::webhook_builder(builder)
    }
}

#[cfg(feature = "webhook")]
#[cfg_attr(docsrs, doc(cfg(feature = "webhook")))]
impl From<WebhookEmitter> for Setup {
    fn from(emitter: WebhookEmitter) -> Setup {
        Setup::emitter(emitter)
    }
}

/// Why [`setup`] refused a configuration. The previous configuration, if
/// any, stays in place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The bus had to be created and there is no Tokio runtime here.
    #[error(
        "hookbus::setup needs a Tokio runtime to run the bus on: call it inside the runtime (e.g. in #[tokio::main]), or build a Bus with BusBuilder::runtime and pass it with Setup::event_bus"
    )]
    NoRuntime,
    /// The bus could not be built.
    #[error("could not build the default bus: {0}")]
    Bus(BuildError),
    /// The webhook's settings are wrong (the message never contains the
    /// secret or the URL's path).
    #[cfg(feature = "webhook")]
    #[cfg_attr(docsrs, doc(cfg(feature = "webhook")))]
    #[error("invalid webhook for hookbus::setup: {0}")]
    Webhook(#[from] WebhookError),
    /// The bus given to [`Setup::event_bus`] is already shut down.
    #[error("the bus given to hookbus::setup is already shut down; pass a live bus")]
    BusClosed,
}

impl From<BuildError> for SetupError {
    fn from(e: BuildError) -> SetupError {
        match e {
            BuildError::NoRuntime => SetupError::NoRuntime,
            other => SetupError::Bus(other),
        }
    }
}

/// Why an emit helper did not put the event on the default bus. Every
/// variant that can carry the event gives it back.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum DefaultEmitError {
    /// [`setup`] has not been called.
    #[error(
        "no default bus: call hookbus::setup(..) once at startup before emitting; the event was not emitted"
    )]
    NotSetUp(Event),
    /// [`shutdown`] was called and no `setup` came after it.
    #[error(
        "the default bus was shut down by hookbus::shutdown; call hookbus::setup(..) again to emit; the event was not emitted"
    )]
    ShutDown(Event),
    /// The default bus refused the event (full, closed, or the event is invalid).
    #[error(transparent)]
    Bus(#[from] EmitError),
}

impl DefaultEmitError {
    /// The event, if the error carries it.
    pub fn into_event(self) -> Option<Event> {
        match self {
            DefaultEmitError::NotSetUp(e) | DefaultEmitError::ShutDown(e) => Some(e),
            DefaultEmitError::Bus(e) => e.into_event(),
        }
    }
}

impl From<EventError> for DefaultEmitError {
    fn from(e: EventError) -> DefaultEmitError {
        DefaultEmitError::Bus(EmitError::Invalid(e))
    }
}

impl fmt::Debug for DefaultEmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DefaultEmitError::NotSetUp(e) => f.debug_tuple("NotSetUp").field(&e.id()).finish(),
            DefaultEmitError::ShutDown(e) => f.debug_tuple("ShutDown").field(&e.id()).finish(),
            DefaultEmitError::Bus(e) => f.debug_tuple("Bus").field(e).finish(),
        }
    }
}

/// Why [`shutdown`] had nothing to shut down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoDefaultBus {
    /// [`setup`] has not been called.
    #[error("no default bus to shut down: hookbus::setup(..) was never called")]
    NotSetUp,
    /// The default bus was already shut down.
    #[error("the default bus is already shut down")]
    ShutDown,
}

fn lock_retiring() -> std::sync::MutexGuard<'static, Vec<tokio::task::JoinHandle<ShutdownReport>>> {
    RETIRING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Installs the default bus that [`emit`] and the other helpers publish to.
///
/// See the [module docs](self) for what happens to a previous configuration
/// and when a Tokio runtime is needed. On error nothing changes.
pub fn setup(config: impl Into<Setup>) -> Result<(), SetupError> {
    let mut retiring = lock_retiring();
    let (bus, owned) = match config.into().target {
        Target::Bus(bus) => {
            if bus.is_closed() {
                return Err(SetupError::BusClosed);
            }
            (bus, false)
        }
        #[cfg(feature = "webhook")]
        Target::Webhook(builder) => {
            let mut builder = *builder;
            if builder.name.is_none() {
                builder = builder.name(SETUP_WEBHOOK_NAME);
            }
            // Check the webhook before creating a bus for it.
            let sink = builder.build()?;
            let bus = Bus::new()?;
            sink.subscribe(&bus)?.detach();
            (bus, true)
        }
        #[cfg(feature = "webhook")]
        Target::Emitter(emitter) => {
            let bus = Bus::new()?;
            emitter.sink().subscribe(&bus)?.detach();
            (bus, true)
        }
    };
    let previous = CURRENT.swap(Some(Arc::new(Current {
        bus: Some(bus),
        owned,
    })));
    if let Some(prev) = previous
        && prev.owned
        && let Some(old) = &prev.bus
    {
        let runtime = old.runtime().clone();
        let old = old.clone();
        retiring.retain(|h| !h.is_finished());
        retiring.push(runtime.spawn(async move { old.shutdown(REPLACED_GRACE).await }));
    }
    Ok(())
}

/// The default bus, if [`setup`] installed one (and [`shutdown`] has not
/// run): to subscribe closures to it, read its stats, or emit with
/// [`Bus::publish`].
pub fn default_bus() -> Option<Bus> {
    CURRENT.load().as_ref().and_then(|c| c.bus.clone())
}

/// Emits an event to the default bus without blocking; see the [module
/// docs](self).
#[inline]
pub fn emit_event<E: IntoEvent>(event: E) -> Result<(), DefaultEmitError> {
    let current = CURRENT.load();
    match current.as_ref() {
        Some(c) => match &c.bus {
            Some(bus) => Ok(bus.emit(event)?),
            None => Err(DefaultEmitError::ShutDown(event.into_event()?)),
        },
        None => Err(DefaultEmitError::NotSetUp(event.into_event()?)),
    }
}

/// Emits an event of type `event_type` with `payload` (anything that
/// serializes to JSON, e.g. `json!({..})`) to the default bus, without
/// blocking. The type is validated.
///
/// ```standalone_crate
/// use serde_json::json;
///
/// // Before setup: a clear error that gives the event back, not a panic.
/// let err = hookbus::emit("decision.captured", json!({"decision_id": "abc123"})).unwrap_err();
/// assert!(err.to_string().contains("hookbus::setup"));
/// let event = err.into_event().unwrap();
/// assert_eq!(event.data()["decision_id"], "abc123");
/// ```
pub fn emit(event_type: &str, payload: impl Serialize) -> Result<(), DefaultEmitError> {
    let data = serde_json::to_value(payload).map_err(|e| EventError::Data(e.to_string()))?;
    emit_event(Event::new(event_type.to_owned(), data)?)
}

/// Emits an event built from a type and a JSON payload to the default bus,
/// without blocking: [`Bus::emit_json`] on the default bus.
pub fn emit_json(event_type: &str, data: serde_json::Value) -> Result<(), DefaultEmitError> {
    emit_event(Event::new(event_type.to_owned(), data)?)
}

/// Emits an event of a type chosen at run time carrying a serializable value
/// to the default bus, without blocking and without building a JSON tree
/// unless a subscriber asks for JSON: [`Bus::emit_payload`] on the default
/// bus. ([`emit`] takes any `Serialize`, borrowed values included, and makes
/// the JSON at once.)
pub fn emit_payload<T: Serialize + Send + Sync + 'static>(
    event_type: impl Into<std::borrow::Cow<'static, str>>,
    payload: T,
) -> Result<(), DefaultEmitError> {
    emit_event(Event::with_payload(event_type, payload)?)
}

/// Emits an event to the default bus, waiting for room in full `Block`
/// mailboxes and for durable subscribers' stores: [`Bus::publish`] on the
/// default bus.
pub async fn publish<E: IntoEvent>(event: E) -> Result<(), DefaultEmitError> {
    // The turn `Bus::publish` takes, taken before the lookup: a `setup`
    // while this task waited for its turn would have closed the bus it
    // looked up.
    crate::hub::take_turn().await;
    let bus = {
        let current = CURRENT.load();
        match current.as_ref() {
            Some(c) => c.bus.clone(),
            None => return Err(DefaultEmitError::NotSetUp(event.into_event()?)),
        }
    };
    match bus {
        Some(bus) => Ok(bus.publish_now(event).await?),
        None => Err(DefaultEmitError::ShutDown(event.into_event()?)),
    }
}

/// Emits `decision.low_confidence` with `payload` (e.g. `decision_id`,
/// `confidence`) to the default bus.
pub fn emit_low_confidence(payload: impl Serialize) -> Result<(), DefaultEmitError> {
    emit(LOW_CONFIDENCE, payload)
}

/// Emits `decision.drift_detected` with `payload` (e.g. `window`,
/// `drift_score`) to the default bus.
pub fn emit_drift_detected(payload: impl Serialize) -> Result<(), DefaultEmitError> {
    emit(DRIFT_DETECTED, payload)
}

/// Shuts the default bus down, delivering what is pending within `timeout`
/// (see [`Bus::shutdown`]), and waits for buses replaced by a later
/// [`setup`] that are still draining, within the same deadline. Afterwards
/// the emit helpers return [`DefaultEmitError::ShutDown`] until `setup` is
/// called again.
///
/// The report is the current bus's; replaced buses' outcomes are logged
/// (`tracing`) when they are not clean.
pub async fn shutdown(timeout: Duration) -> Result<ShutdownReport, NoDefaultBus> {
    let deadline = tokio::time::Instant::now() + timeout;
    let (bus, retiring) = {
        let mut retiring = lock_retiring();
        let current = CURRENT.load_full();
        let bus = match current.as_ref() {
            None => return Err(NoDefaultBus::NotSetUp),
            Some(c) => match &c.bus {
                None => return Err(NoDefaultBus::ShutDown),
                Some(b) => b.clone(),
            },
        };
        CURRENT.store(Some(Arc::new(Current {
            bus: None,
            owned: false,
        })));
        (bus, std::mem::take(&mut *retiring))
    };
    let report = bus.shutdown(timeout).await;
    for handle in retiring {
        match tokio::time::timeout_at(deadline, handle).await {
            Ok(Ok(old)) if !old.is_clean() => {
                tracing::warn!(report = %old, "hookbus: a replaced default bus did not finish cleanly")
            }
            Ok(_) => {}
            Err(_) => {
                tracing::warn!("hookbus: a replaced default bus was still draining at the deadline")
            }
        }
    }
    Ok(report)
}
