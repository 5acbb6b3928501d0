//! The dashboard's memory of the last hour: two small rings of counter
//! samples (the last minute at the sampling interval, the last hour by the
//! minute), filled by one sampler task.
//!
//! Rates are differences between samples of the counters the webhooks keep
//! anyway ([`WebhookManager::stats`](crate::webhook::WebhookManager::stats)),
//! so the delivery path is not touched. Memory is fixed: per endpoint, two
//! rings of at most [`RING`] pairs of counters.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::Shared;
use crate::webhook::WebhookId;

/// Points kept per ring: 60 intervals need 61 points.
pub(super) const RING: usize = 61;
const HOUR_STEP: Duration = Duration::from_secs(60);

/// Events delivered and failed (dead-lettered), as running totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub(super) struct Counts {
    pub(super) delivered: u64,
    pub(super) failed: u64,
}

impl Counts {
    fn since(self, earlier: Counts) -> Counts {
        Counts {
            delivered: self.delivered.saturating_sub(earlier.delivered),
            failed: self.failed.saturating_sub(earlier.failed),
        }
    }
}

/// A ring of (time, totals) points.
#[derive(Debug, Default)]
struct Ring {
    points: VecDeque<(Instant, Counts)>,
}

impl Ring {
    fn push(&mut self, at: Instant, c: Counts) {
        if self.points.len() == RING {
            self.points.pop_front();
        }
        self.points.push_back((at, c));
    }

    /// What happened between the oldest point and the newest.
    fn window(&self) -> Counts {
        match (self.points.front(), self.points.back()) {
            (Some((_, first)), Some((_, last))) => last.since(*first),
            _ => Counts::default(),
        }
    }

    /// What happened in each interval, oldest first.
    fn steps(&self) -> Vec<Counts> {
        self.points
            .iter()
            .zip(self.points.iter().skip(1))
            .map(|((_, a), (_, b))| b.since(*a))
            .collect()
    }

    fn last(&self) -> Option<(Instant, Counts)> {
        self.points.back().copied()
    }
}

/// One endpoint's rings.
#[derive(Debug, Default)]
struct Endpoint {
    minute: Ring,
    hour: Ring,
    seen: bool,
}

impl Endpoint {
    /// The last minute, and the last hour up to the newest sample (the
    /// hour ring's points are a minute apart; the minute since its last
    /// point counts too).
    fn windows(&self) -> Windows {
        let hour = match (self.hour.points.front(), self.minute.last()) {
            (Some((_, first)), Some((_, now))) => now.since(*first),
            _ => Counts::default(),
        };
        Windows {
            minute: self.minute.window(),
            hour,
        }
    }

    /// The hour ring's steps, then the minute in progress (if any sample
    /// is newer than its last point).
    fn hour_steps(&self) -> Vec<Counts> {
        let mut steps = self.hour.steps();
        if let (Some((at, point)), Some((now_at, now))) = (self.hour.last(), self.minute.last())
            && now_at > at
        {
            steps.push(now.since(point));
        }
        steps
    }
}

/// Deliveries and failures of the last minute and hour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub(super) struct Windows {
    pub(super) minute: Counts,
    pub(super) hour: Counts,
}

/// The per-interval series of all endpoints together, for the charts.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub(super) struct Series {
    /// Seconds per step of `minute`.
    pub(super) minute_step_secs: f64,
    pub(super) minute: Vec<Counts>,
    /// Seconds per step of `hour`.
    pub(super) hour_step_secs: f64,
    pub(super) hour: Vec<Counts>,
}

#[derive(Debug)]
pub(super) struct History {
    every: Duration,
    total: Endpoint,
    endpoints: HashMap<WebhookId, Endpoint>,
    last_hour_point: Option<Instant>,
    samples: u64,
}

impl History {
    pub(super) fn new(every: Duration) -> History {
        History {
            every,
            total: Endpoint::default(),
            endpoints: HashMap::new(),
            last_hour_point: None,
            samples: 0,
        }
    }

    /// Records one sample of every endpoint's totals taken at `at`.
    /// Endpoints not in it (deleted) are forgotten.
    pub(super) fn record(
        &mut self,
        at: Instant,
        sample: impl IntoIterator<Item = (WebhookId, Counts)>,
    ) {
        let hour_point = self
            .last_hour_point
            .is_none_or(|last| at.duration_since(last) >= HOUR_STEP);
        if hour_point {
            self.last_hour_point = Some(at);
        }
        let mut total = Counts::default();
        for e in self.endpoints.values_mut() {
            e.seen = false;
        }
        for (id, c) in sample {
            total.delivered += c.delivered;
            total.failed += c.failed;
            let e = self.endpoints.entry(id).or_default();
            e.seen = true;
            e.minute.push(at, c);
            if hour_point || e.hour.points.is_empty() {
                e.hour.push(at, c);
            }
        }
        self.endpoints.retain(|_, e| e.seen);
        // The totals of a deleted endpoint leave the sum: the sum may go
        // down, and `since` saturates, so a step never shows a negative.
        self.total.minute.push(at, total);
        if hour_point {
            self.total.hour.push(at, total);
        }
        self.samples += 1;
    }

    /// Samples taken so far.
    pub(super) fn samples(&self) -> u64 {
        self.samples
    }

    pub(super) fn windows(&self, id: &WebhookId) -> Windows {
        self.endpoints
            .get(id)
            .map(Endpoint::windows)
            .unwrap_or_default()
    }

    pub(super) fn total_windows(&self) -> Windows {
        self.total.windows()
    }

    pub(super) fn series(&self) -> Series {
        Series {
            minute_step_secs: self.every.as_secs_f64(),
            minute: self.total.minute.steps(),
            hour_step_secs: HOUR_STEP.as_secs_f64(),
            hour: self.total.hour_steps(),
        }
    }
}

/// Samples every `every` on the bus's runtime until the dashboard is
/// dropped or the bus shuts down.
pub(super) fn spawn_sampler(shared: &Arc<Shared>, every: Duration) {
    let weak: Weak<Shared> = Arc::downgrade(shared);
    shared.bus.runtime().spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(shared) = weak.upgrade() else { break };
            if shared.bus.is_closed() {
                break;
            }
            let sample: Vec<(WebhookId, Counts)> = shared
                .manager
                .list()
                .into_iter()
                .filter_map(|info| {
                    let s = shared.manager.stats(&info.id).ok()?;
                    Some((
                        info.id,
                        Counts {
                            delivered: s.delivered,
                            failed: s.failed,
                        },
                    ))
                })
                .collect();
            shared.history().record(Instant::now(), sample);
            // Once per sample, for every open stream.
            let overview = super::api::overview_json(&shared).await.to_string();
            shared.ticks.send_replace(Some(overview.into()));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> WebhookId {
        WebhookId::from(s)
    }

    fn c(delivered: u64, failed: u64) -> Counts {
        Counts { delivered, failed }
    }

    #[test]
    fn windows_and_steps_come_from_the_rings() {
        let t0 = Instant::now();
        let sec = Duration::from_secs(1);
        let mut h = History::new(sec);
        // 120 seconds: `a` delivers 2 a second and fails 1 every 10.
        for i in 0..=120u64 {
            h.record(t0 + sec * i as u32, [(id("a"), c(2 * i, i / 10))]);
        }
        let w = h.windows(&id("a"));
        // The minute ring spans the last 60 seconds.
        assert_eq!(w.minute, c(120, 6));
        // The hour ring has points at 0, 60 and 120 s.
        assert_eq!(w.hour, c(240, 12));
        assert_eq!(h.total_windows(), w);
        let s = h.series();
        assert_eq!(s.minute.len(), RING - 1);
        assert!(s.minute.iter().all(|x| x.delivered == 2));
        assert_eq!(s.hour, vec![c(120, 6), c(120, 6)]);
        assert_eq!(h.samples(), 121);
        // A minute in progress counts in the hour and is its last step.
        h.record(t0 + sec * 125, [(id("a"), c(260, 12))]);
        assert_eq!(h.windows(&id("a")).hour, c(260, 12));
        assert_eq!(h.series().hour, vec![c(120, 6), c(120, 6), c(20, 0)]);
        assert_eq!(h.windows(&id("unknown")), Windows::default());
    }

    #[test]
    fn a_deleted_endpoint_is_forgotten_and_never_makes_a_negative_step() {
        let t0 = Instant::now();
        let sec = Duration::from_secs(1);
        let mut h = History::new(sec);
        h.record(t0, [(id("a"), c(10, 0)), (id("b"), c(5, 5))]);
        h.record(t0 + sec, [(id("a"), c(11, 0))]);
        assert_eq!(h.windows(&id("b")), Windows::default());
        assert_eq!(h.series().minute, vec![c(0, 0)]);
        h.record(t0 + 2 * sec, [(id("a"), c(13, 0))]);
        assert_eq!(h.series().minute, vec![c(0, 0), c(2, 0)]);
        assert_eq!(h.endpoints.len(), 1);
    }
}
