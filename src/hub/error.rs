//! The errors of emitting, subscribing and building a bus.

use std::fmt;

use crate::event::{Event, EventError};
use crate::pattern::PatternError;

/// Why an emit did not put the event on the bus. `Full` and `Closed` give the
/// event back, so nothing is lost.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum EmitError {
    /// A subscriber with [`OverflowPolicy::Block`](crate::OverflowPolicy::Block)
    /// that this event matches (and whose condition accepts it) has a full
    /// mailbox. This is the **only** case of `Full`: lossy subscribers
    /// (`DropOldest`, `DropNewest`) drop at their own mailbox instead and
    /// never refuse an emit. No subscriber received the event (emits are
    /// all-or-nothing). Retry, or use [`Bus::publish`](crate::Bus::publish)
    /// to wait for room.
    #[error(
        "a subscriber with OverflowPolicy::Block has a full mailbox; the event was not emitted to any subscriber"
    )]
    Full(Event),
    /// The bus has shut down.
    #[error("the bus is shut down; the event was not emitted")]
    Closed(Event),
    /// A durable subscriber that this event matches cannot record it now:
    /// its store failed (disk full, permission denied, I/O error), or its
    /// write buffer is full because the disk is behind (then
    /// [`Bus::publish`](crate::Bus::publish) waits for room instead); the
    /// error says which (`StoreError::Failed`, `StoreError::Behind`; from
    /// `publish`, the error of the commit that did not put the event on
    /// disk: the event was taken in memory, and is delivered from there
    /// while the process lives). No subscriber received the event. Events
    /// that match only subscribers in memory are not affected.
    #[error("a durable subscriber's store cannot take events ({1}); the event was not emitted")]
    Store(Event, #[source] crate::hub::journal::StoreFailure),
    /// The event could not be built (e.g. a typed event's data did not serialize).
    #[error("invalid event: {0}")]
    Invalid(#[from] EventError),
}

impl EmitError {
    /// The event, if the error carries it.
    pub fn into_event(self) -> Option<Event> {
        match self {
            EmitError::Full(e) | EmitError::Closed(e) | EmitError::Store(e, _) => Some(e),
            EmitError::Invalid(_) => None,
        }
    }
}

impl fmt::Debug for EmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmitError::Full(e) => f.debug_tuple("Full").field(&e.id()).finish(),
            EmitError::Closed(e) => f.debug_tuple("Closed").field(&e.id()).finish(),
            EmitError::Store(e, reason) => {
                f.debug_tuple("Store").field(&e.id()).field(reason).finish()
            }
            EmitError::Invalid(e) => f.debug_tuple("Invalid").field(e).finish(),
        }
    }
}

/// Why a subscriber could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscribeError {
    /// The pattern is invalid.
    #[error("invalid pattern: {0}")]
    Pattern(#[from] PatternError),
    /// An option is out of range.
    #[error("invalid subscriber option: {0}")]
    InvalidOption(String),
    /// The bus has shut down.
    #[error("the bus is shut down")]
    Closed,
    /// A durable subscriber could not be attached to its store: its name
    /// is attached already ([`StoreError::NameInUse`](crate::store::StoreError::NameInUse)),
    /// or its pending events could not be read.
    #[cfg(feature = "durable")]
    #[error("cannot attach the durable subscriber to its store: {0}")]
    Store(#[source] crate::store::StoreError),
}

/// Why a bus could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No Tokio runtime to run the bus on.
    #[error(
        "no Tokio runtime: build the bus inside a runtime (e.g. in #[tokio::main]) or pass one with BusBuilder::runtime"
    )]
    NoRuntime,
    /// A setting is out of range.
    #[error("invalid bus setting: {0}")]
    Invalid(String),
}
