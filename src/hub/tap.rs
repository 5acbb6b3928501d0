//! Taps: observers that read the bus's broadcast ring and tolerate lag.
//!
//! A subscriber has a mailbox of its own, so every subscriber costs each
//! emit one push. An observer (a dashboard page, `hookbus listen`, a test
//! probe) does not need that: it must never slow the bus and may miss
//! events when it falls behind, as long as it knows how many. Taps share
//! one ring (`async-broadcast`, in overflow mode): an emit writes the event
//! once, whatever the number of taps, and each tap reads through its own
//! cursor. A tap that falls a whole ring behind skips to the oldest event
//! still there and counts what it skipped ([`Tap::lagged`]); nothing waits
//! for it.
//!
//! While no tap is open the ring costs an emit nothing (one relaxed load
//! on the path that already found a subscriber; an event nobody subscribed
//! to is not even built). While one is open, every emit is built and
//! written to the ring: taps see the events subscribers are offered,
//! including those no subscriber matched, but never one the bus refused
//! (`EmitError::Full`, a store behind), which nobody got.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use futures_util::Stream;

use super::Hub;
use crate::event::Event;
use crate::pattern::Pattern;

/// The tap ring's default capacity in events; see
/// [`BusBuilder::tap_capacity`](crate::BusBuilder::tap_capacity).
pub const DEFAULT_TAP_CAPACITY: usize = 1024;

/// The bus's broadcast ring and the count of open taps.
#[derive(Debug)]
pub(crate) struct Ring {
    sender: async_broadcast::Sender<Arc<Event>>,
    /// Kept so the ring stays open with no tap; new taps are made from it.
    inactive: async_broadcast::InactiveReceiver<Arc<Event>>,
    open: AtomicUsize,
}

impl Ring {
    pub(crate) fn new(capacity: usize) -> Ring {
        let (mut sender, receiver) = async_broadcast::broadcast(capacity.max(1));
        // A full ring overwrites its oldest event: a tap never holds the
        // emitter back.
        sender.set_overflow(true);
        Ring {
            sender,
            inactive: receiver.deactivate(),
            open: AtomicUsize::new(0),
        }
    }

    /// Whether a tap is open.
    #[inline]
    pub(crate) fn is_tapped(&self) -> bool {
        self.open.load(Ordering::Relaxed) > 0
    }

    /// Writes `event` once for every open tap. Never waits: a full ring
    /// overwrites its oldest event (dropped here, after the write).
    pub(crate) fn send(&self, event: &Arc<Event>) {
        if self.is_tapped() {
            let _overwritten = self.sender.try_broadcast(Arc::clone(event));
        }
    }

    /// Ends every tap once it has read what the ring holds.
    pub(crate) fn close(&self) {
        self.sender.close();
    }

    fn receiver(&self) -> async_broadcast::Receiver<Arc<Event>> {
        self.inactive.activate_cloned()
    }
}

/// An observer of the bus's events: a [`Stream`] of the events whose type
/// matches its patterns, read from the bus's broadcast ring. Made by
/// [`Bus::tap`](crate::Bus::tap).
///
/// A tap never slows an emit and never refuses one: when it falls a whole
/// ring behind, the events it missed are skipped and counted in
/// [`lagged`](Self::lagged). For every event, lossless and with its own
/// mailbox and overflow policy, use a subscriber
/// ([`Bus::stream`](crate::Bus::stream)).
///
/// The stream ends when the bus shuts down (after the events the ring still
/// holds). Dropping the tap closes it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use hookbus::{Bus, Event};
/// use serde_json::json;
/// use tokio_stream::StreamExt;
///
/// let bus = Bus::new()?;
/// let mut tap = bus.tap("order.*")?;
/// bus.emit(Event::new("order.placed", json!({"id": 1}))?)?; // no subscriber: the tap still sees it
/// bus.emit(Event::new("user.created", json!({"id": 2}))?)?; // not its pattern
/// let seen = tap.next().await.unwrap();
/// assert_eq!(seen.event_type(), "order.placed");
/// assert_eq!(tap.lagged(), 0);
/// # Ok(()) }
/// ```
pub struct Tap {
    receiver: async_broadcast::Receiver<Arc<Event>>,
    patterns: Box<[Pattern]>,
    lagged: u64,
    hub: Weak<Hub>,
}

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tap")
            .field("patterns", &self.patterns)
            .field("lagged", &self.lagged)
            .finish_non_exhaustive()
    }
}

impl Tap {
    pub(crate) fn open(hub: &Arc<Hub>, patterns: Vec<Pattern>) -> Tap {
        // Counted before the receiver exists: an emit that sees the count
        // writes to the ring, and the receiver reads from its creation on.
        hub.ring.open.fetch_add(1, Ordering::SeqCst);
        hub.tapped(true);
        Tap {
            receiver: hub.ring.receiver(),
            patterns: patterns.into_boxed_slice(),
            lagged: 0,
            hub: Arc::downgrade(hub),
        }
    }

    /// Events this tap skipped because it fell a whole ring behind.
    pub fn lagged(&self) -> u64 {
        self.lagged
    }

    /// The next matching event, or `None` once the bus has shut down.
    pub async fn recv(&mut self) -> Option<Arc<Event>> {
        futures_util::StreamExt::next(self).await
    }

    fn wants(&self, event: &Event) -> bool {
        self.patterns.iter().any(|p| p.matches(event.event_type()))
    }
}

impl Stream for Tap {
    type Item = Arc<Event>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Arc<Event>>> {
        let this = self.get_mut();
        loop {
            match Pin::new(&mut this.receiver).poll_recv(cx) {
                Poll::Ready(Some(Ok(event))) => {
                    if this.wants(&event) {
                        return Poll::Ready(Some(event));
                    }
                }
                Poll::Ready(Some(Err(async_broadcast::RecvError::Overflowed(n)))) => {
                    this.lagged = this.lagged.saturating_add(n);
                }
                Poll::Ready(Some(Err(async_broadcast::RecvError::Closed)) | None) => {
                    return Poll::Ready(None);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            hub.ring.open.fetch_sub(1, Ordering::SeqCst);
            hub.tapped(false);
        }
    }
}
