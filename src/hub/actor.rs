//! The bus actor: the design card's "central bus actor", one task per bus.
//!
//! It owns the bus's lifecycle:
//! - the **registry** of subscriber tasks (their join handles): a task that
//!   ends tells the actor, which forgets it;
//! - the **`hookbus.*` announcements** (`dropped`, `handler_failed`,
//!   `delivery_failed`, a condition that panicked, …): whoever has one to
//!   make (a subscriber task, an emit whose condition panicked, a webhook
//!   endpoint) sends it here, and the actor emits it, so no announcement is
//!   ever emitted from inside another emit or from a subscriber's task;
//! - **leaving the routing table** when a subscriber takes nothing new;
//! - **shutdown and its report**: the actor closes the mailboxes and the
//!   taps' broadcast ring, waits for the tasks within the deadline and
//!   builds the report.
//!
//! What it does not own is the data path: emitters route through the table
//! and push into mailboxes themselves (see [`Hub::offer`](super::Hub::offer)),
//! and never wait for the actor. Registration is synchronous too: `on()`
//! puts the route in the table before it returns (so an emit after it
//! reaches the new subscriber) and then hands the task to the actor. Sends
//! to the actor are on an unbounded channel: they never wait, and there are
//! at most a few per subscriber life plus one per announcement.
//!
//! `stats()` is synchronous, so the list of live subscribers it reads is a
//! shared directory beside the actor: written when a subscriber registers,
//! and by the actor when one ends.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{Hub, Route};
use crate::event::Event;
use crate::stats::SubscriberReport;

/// What the actor is told.
pub(crate) enum Msg {
    /// A subscriber's task started (its route is in the table).
    Started(Arc<Route>, JoinHandle<()>),
    /// A subscriber takes nothing new: take it out of the routing table.
    /// (By id: a message waiting in the queue holds no route, so nothing a
    /// route holds, a durable subscriber's store say, outlives its task.)
    Unroute(u64),
    /// A subscriber's task ended on its own.
    Ended(u64),
    /// One of the bus's own `hookbus.*` events to emit.
    Announce(Event),
    /// Shut down by `deadline` and answer with the report.
    Shutdown {
        hub: Arc<Hub>,
        deadline: Instant,
        reply: oneshot::Sender<Vec<SubscriberReport>>,
    },
}

/// A handle on the bus actor: what subscriber tasks (and the hub) hold to
/// report to it. Cheap to clone; sending never waits.
#[derive(Clone)]
pub(crate) struct Lifecycle(mpsc::UnboundedSender<Msg>);

impl std::fmt::Debug for Lifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lifecycle")
            .field("running", &!self.0.is_closed())
            .finish()
    }
}

impl Lifecycle {
    /// Starts the actor of the hub `hub` (not yet built: the actor only
    /// looks at it when told something).
    pub(crate) fn spawn(hub: Weak<Hub>, runtime: &tokio::runtime::Handle) -> Lifecycle {
        let (tx, rx) = mpsc::unbounded_channel();
        runtime.spawn(run(hub, rx));
        Lifecycle(tx)
    }

    pub(crate) fn send(&self, msg: Msg) -> Result<(), Msg> {
        self.0.send(msg).map_err(|e| e.0)
    }

    /// A subscriber takes nothing new.
    pub(crate) fn unroute(&self, route: &Arc<Route>) {
        let _ = self.0.send(Msg::Unroute(route.id));
    }

    /// A subscriber's task ended.
    pub(crate) fn ended(&self, id: u64) {
        let _ = self.0.send(Msg::Ended(id));
    }
}

/// Something that can make the bus's own announcements: the hub (on an
/// emitter's thread) or a handle on the actor (from a subscriber task).
/// Either way the actor emits them.
pub(crate) trait Announce {
    /// Announces `event` (a `hookbus.*` catalog type).
    fn announce<T: crate::TypedEvent>(&self, event: T);
}

impl Announce for Lifecycle {
    fn announce<T: crate::TypedEvent>(&self, event: T) {
        match crate::event::IntoEvent::into_event(event) {
            Ok(event) => {
                let _ = self.0.send(Msg::Announce(event));
            }
            Err(e) => tracing::error!(error = %e, "hookbus: could not build a bus announcement"),
        }
    }
}

impl Announce for Hub {
    fn announce<T: crate::TypedEvent>(&self, event: T) {
        Hub::announce(self, event)
    }
}

/// What a task reported before the actor heard it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Early {
    Unrouted,
    Ended,
}

struct Entry {
    route: Arc<Route>,
    join: JoinHandle<()>,
}

async fn run(hub: Weak<Hub>, mut rx: mpsc::UnboundedReceiver<Msg>) {
    let mut entries: BTreeMap<u64, Entry> = BTreeMap::new();
    // A task can report before the actor hears that it started (it runs as
    // soon as it is spawned, and `Started` is sent after the spawn): what it
    // reported early is applied when `Started` comes.
    let mut early: std::collections::HashMap<u64, Early> = std::collections::HashMap::new();
    let mut shut = false;
    while let Some(msg) = rx.recv().await {
        match msg {
            Msg::Started(route, join) => match early.remove(&route.id) {
                None => {
                    entries.insert(route.id, Entry { route, join });
                }
                Some(early) => {
                    if let Some(hub) = hub.upgrade() {
                        hub.unroute(&route);
                        if early == Early::Ended && !shut {
                            hub.forget(route.id);
                        }
                    }
                    if early == Early::Unrouted {
                        entries.insert(route.id, Entry { route, join });
                    }
                }
            },
            Msg::Unroute(id) => match entries.get(&id) {
                Some(entry) => {
                    if let Some(hub) = hub.upgrade() {
                        hub.unroute(&entry.route);
                    }
                }
                None if !shut => {
                    early.entry(id).or_insert(Early::Unrouted);
                }
                None => {}
            },
            Msg::Ended(id) => {
                if entries.remove(&id).is_none() {
                    if !shut {
                        early.insert(id, Early::Ended);
                    }
                } else if !shut && let Some(hub) = hub.upgrade() {
                    hub.forget(id);
                }
            }
            Msg::Announce(event) => {
                if let Some(hub) = hub.upgrade() {
                    hub.emit_announcement(event);
                }
            }
            Msg::Shutdown {
                hub,
                deadline,
                reply,
            } => {
                shut = true;
                let taken = std::mem::take(&mut entries)
                    .into_values()
                    .map(|e| (e.route, Some(e.join)))
                    .collect();
                let report = hub.shut_down(taken, deadline).await;
                // The `Bus` handles own the hub: once the caller has the
                // report, dropping the last one must drop it (and what its
                // routes hold) at once, not when the actor gets round to it.
                drop(hub);
                let _ = reply.send(report);
            }
        }
    }
}
