// The README is the crate's front page. Its Rust blocks are complete
// programs run as doctests; the recipes use webhooks, the receiving
// extractors and the store, so it is included when those are built (as on
// docs.rs, and in `cargo test --all-features`).
#![cfg_attr(
    all(feature = "webhook", feature = "axum", feature = "durable"),
    doc = include_str!("../README.md")
)]
#![cfg_attr(
    not(all(feature = "webhook", feature = "axum", feature = "durable")),
    doc = "An in-process event bus: typed events emitted without blocking, closures, signed \
           webhooks and Kafka as subscribers. The full front page (README.md) is built with \
           the features `webhook`, `axum` and `durable`, as on docs.rs."
)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![deny(unsafe_code)]
// EmitError hands the event back (nothing is lost), which makes it large by design.
#![allow(clippy::result_large_err)]
// docs.rs (nightly, `--cfg docsrs`) marks every feature-gated item with the
// feature that enables it.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod binding;
pub mod bus;
pub mod catalog;
#[cfg(feature = "dashboard")]
#[cfg_attr(docsrs, doc(cfg(feature = "dashboard")))]
pub mod dashboard;
pub mod event;
pub mod expr;
pub mod global;
mod hub;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod ingress;
#[cfg(feature = "integrations")]
#[cfg_attr(docsrs, doc(cfg(feature = "integrations")))]
pub mod integrations;
#[cfg(feature = "kafka")]
#[cfg_attr(docsrs, doc(cfg(feature = "kafka")))]
pub mod kafka;
#[cfg(feature = "manage")]
#[cfg_attr(docsrs, doc(cfg(feature = "manage")))]
pub mod manage;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
pub mod pattern;
pub mod signature;
pub mod sink;
pub mod stats;
#[cfg(feature = "durable")]
#[cfg_attr(docsrs, doc(cfg(feature = "durable")))]
pub mod store;
pub mod subscriber;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
pub mod trace;
pub mod verify;
#[cfg(feature = "webhook")]
#[cfg_attr(docsrs, doc(cfg(feature = "webhook")))]
pub mod webhook;

// The root holds the types used daily; the plumbing stays under its module
// (`bus::IntoPatterns`, `bus::DEFAULT_MAILBOX_CAPACITY`, `sink::SinkFuture`,
// `sink::BoxFuture`, `sink::HandlerResult`, `sink::Accepts`).
pub use bus::{BuildError, Bus, BusBuilder, EmitError, SubscribeError, Tap};
pub use event::{Event, EventBuilder, EventError, ExtensionValue, IntoEvent, TypedEvent};
// The default bus's general front door. The product-specific helpers
// (`emit_low_confidence`, `emit_drift_detected`) and the event catalogs stay
// under their modules: `hookbus::global::..`, `hookbus::catalog::..`.
pub use global::{
    DefaultEmitError, NoDefaultBus, Setup, SetupError, default_bus, emit, emit_event, emit_json,
    emit_payload, publish, setup, shutdown,
};
pub use pattern::{Pattern, PatternError};
pub use sink::{Batch, DeliveryError, FailureKind, Sink};
pub use stats::{BusStats, ShutdownReport, SubscriberReport, SubscriberStats};
pub use subscriber::{
    BatchConfig, EventStream, OverflowPolicy, SubscriberBuilder, SubscriberOptions, Subscription,
    Typed,
};
#[cfg(feature = "webhook")]
#[cfg_attr(docsrs, doc(cfg(feature = "webhook")))]
pub use webhook::{WebhookEmitter, WebhookManager, WebhookSink};
