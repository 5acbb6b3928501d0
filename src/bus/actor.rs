//! The bus actor: owns the registry of subscribers and the channel's keep-alive
//! receiver, and answers stats and shutdown requests.
//!
//! Its command channel is unbounded on purpose: commands are rare (one per
//! subscribe, unsubscribe, stats call or shutdown), and an unbounded edge means
//! a subscriber task reporting its end can never deadlock against the actor.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::Message;
use crate::pattern::Pattern;
use crate::stats::{Counters, SubscriberReport, SubscriberStats};
use crate::subscriber::Control;

/// How long a subscriber task gets to stop (and close its sink) after the deadline.
const ABORT_GRACE: Duration = Duration::from_secs(1);

pub(crate) struct Entry {
    pub(crate) id: u64,
    pub(crate) name: Arc<str>,
    pub(crate) pattern: Pattern,
    pub(crate) counters: Arc<Counters>,
    pub(crate) control: Arc<Control>,
    pub(crate) join: JoinHandle<()>,
}

impl Entry {
    fn stats(&self) -> SubscriberStats {
        self.counters
            .snapshot(self.id, &self.name, self.pattern.as_str())
    }
}

pub(crate) enum Command {
    Register(Entry),
    Ended(u64),
    Stats(oneshot::Sender<Vec<SubscriberStats>>),
    Shutdown {
        deadline: Instant,
        reply: oneshot::Sender<Vec<SubscriberReport>>,
    },
}

pub(crate) struct Actor {
    commands: mpsc::UnboundedReceiver<Command>,
    entries: Vec<Entry>,
    ended_early: HashSet<u64>,
    // Keeps the channel open while no subscriber exists.
    _keep_open: async_broadcast::InactiveReceiver<Message>,
}

impl Actor {
    pub(crate) fn new(
        commands: mpsc::UnboundedReceiver<Command>,
        keep_open: async_broadcast::InactiveReceiver<Message>,
    ) -> Actor {
        Actor {
            commands,
            entries: Vec::new(),
            ended_early: HashSet::new(),
            _keep_open: keep_open,
        }
    }

    pub(crate) async fn run(mut self) {
        while let Some(cmd) = self.commands.recv().await {
            match cmd {
                Command::Register(entry) => {
                    if !self.ended_early.remove(&entry.id) {
                        self.entries.push(entry);
                    }
                }
                Command::Ended(id) => {
                    let before = self.entries.len();
                    self.entries.retain(|e| e.id != id);
                    if before == self.entries.len() {
                        // The task ended before its registration arrived.
                        self.ended_early.insert(id);
                    }
                }
                Command::Stats(reply) => {
                    let _ = reply.send(self.entries.iter().map(Entry::stats).collect());
                }
                Command::Shutdown { deadline, reply } => {
                    let report = self.shutdown(deadline).await;
                    let _ = reply.send(report);
                }
            }
        }
    }

    async fn shutdown(&mut self, deadline: Instant) -> Vec<SubscriberReport> {
        // Registrations sent before the channel closed are already queued.
        while let Ok(cmd) = self.commands.try_recv() {
            match cmd {
                Command::Register(entry) if !self.ended_early.remove(&entry.id) => {
                    self.entries.push(entry)
                }
                // Ended tasks stay in the list: the report covers them too.
                Command::Ended(_) => {}
                Command::Stats(reply) => {
                    let _ = reply.send(self.entries.iter().map(Entry::stats).collect());
                }
                Command::Shutdown { reply, .. } => {
                    let _ = reply.send(Vec::new());
                }
                Command::Register(_) => {}
            }
        }
        let entries = std::mem::take(&mut self.entries);
        for e in &entries {
            *e.control.deadline.lock().unwrap_or_else(|p| p.into_inner()) = Some(deadline);
        }
        let mut reports = Vec::with_capacity(entries.len());
        for mut e in entries {
            let completed = tokio::time::timeout_at(deadline, &mut e.join).await.is_ok();
            if !completed {
                // Ask the task to stop where it is: it drops its in-flight
                // work (left counted as pending) and still closes its sink,
                // which reports what it could not flush. Only a task that does
                // not answer (a sync handler stuck on its thread) is aborted.
                e.control.request_abort();
                if tokio::time::timeout(ABORT_GRACE, &mut e.join)
                    .await
                    .is_err()
                {
                    e.join.abort();
                }
            }
            let stats = e.stats();
            reports.push(SubscriberReport {
                pending: stats.mailbox_len + stats.in_flight,
                unflushed: e
                    .counters
                    .unflushed
                    .load(std::sync::atomic::Ordering::Relaxed),
                completed,
                stats,
            });
        }
        reports
    }
}
