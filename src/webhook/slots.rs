//! An endpoint's sending slots when it is attached to a bus: at most
//! `concurrency` requests in flight. A delivery holds a slot while it sends
//! and gives it back while it waits for its next attempt (or for an earlier
//! event of its key), so a retrying event never holds up the others.
//!
//! The subscriber asks [`SendSlots::poll_ready`] before each delivery (the
//! [`Sink::poll_ready`](crate::Sink::poll_ready) seam), which reserves a slot
//! for the delivery that follows; events stay in the mailbox, under its
//! overflow policy, until a slot is free.
//!
//! With [adaptive concurrency](super::concurrency) the number of slots
//! changes: a rise adds slots (waiting deliveries are woken); a fall takes
//! free slots away at once and the others as their deliveries give them
//! back, so requests in flight finish and new ones wait.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};

use super::attempt::Attempt;
use super::concurrency::{Aimd, Pressure, Signal};

type Acquire = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

/// The slots of one subscription.
pub(crate) struct SendSlots {
    semaphore: Arc<Semaphore>,
    next: Mutex<Next>,
    adaptive: Option<Adaptive>,
}

/// The changing limit of adaptive concurrency.
struct Adaptive {
    state: Mutex<AdaptiveState>,
    /// Where the stats read the limit.
    pressure: Arc<Pressure>,
}

struct AdaptiveState {
    aimd: Aimd,
    /// Slots to take away as deliveries give them back (the limit fell below
    /// the requests in flight).
    owed: usize,
}

/// The slot reserved for the subscriber's next delivery, or the wait for one.
#[derive(Default)]
struct Next {
    reserved: Option<OwnedSemaphorePermit>,
    acquiring: Option<Acquire>,
}

impl fmt::Debug for SendSlots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendSlots")
            .field("free", &self.semaphore.available_permits())
            .field("adaptive", &self.adaptive.is_some())
            .finish_non_exhaustive()
    }
}

impl SendSlots {
    pub(crate) fn new(concurrency: usize) -> SendSlots {
        SendSlots {
            // A semaphore holds at most MAX_PERMITS (and panics past it); a
            // larger concurrency means no limit in practice.
            semaphore: Arc::new(Semaphore::new(concurrency.min(Semaphore::MAX_PERMITS))),
            next: Mutex::new(Next::default()),
            adaptive: None,
        }
    }

    /// Slots under adaptive concurrency, between 1 and `max`; the limit is
    /// published in `endpoint`'s stats.
    pub(crate) fn adaptive(max: usize, pressure: Arc<Pressure>) -> SendSlots {
        let aimd = Aimd::new(max.min(Semaphore::MAX_PERMITS));
        pressure.set_limit(aimd.limit());
        SendSlots {
            semaphore: Arc::new(Semaphore::new(aimd.limit())),
            next: Mutex::new(Next::default()),
            adaptive: Some(Adaptive {
                state: Mutex::new(AdaptiveState { aimd, owed: 0 }),
                pressure,
            }),
        }
    }

    fn adaptive_state(&self) -> Option<std::sync::MutexGuard<'_, AdaptiveState>> {
        let a = self.adaptive.as_ref()?;
        Some(a.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A delivery had to wait for a slot.
    fn saw_limit(&self) {
        if let Some(mut a) = self.adaptive_state() {
            a.aimd.saw_limit();
        }
    }

    fn generation(&self) -> u64 {
        self.adaptive_state().map_or(0, |a| a.aimd.generation())
    }

    /// Gives a slot back, or takes it away if the limit fell meanwhile.
    fn give_back(&self, permit: OwnedSemaphorePermit) {
        if let Some(mut a) = self.adaptive_state()
            && a.owed > 0
        {
            a.owed -= 1;
            permit.forget();
        }
    }

    /// Tells the controller how an attempt went, and applies a new limit.
    fn feedback(&self, r: &Attempt, generation: u64) {
        let (Some(adaptive), Some(signal)) = (&self.adaptive, Signal::of(r)) else {
            return;
        };
        let mut a = adaptive.state.lock().unwrap_or_else(|e| e.into_inner());
        let old = a.aimd.limit();
        let Some(new) = a.aimd.observe(signal, generation) else {
            return;
        };
        if new > old {
            let paid = (new - old).min(a.owed);
            a.owed -= paid;
            self.semaphore.add_permits(new - old - paid);
        } else {
            let taken = self.semaphore.forget_permits(old - new);
            a.owed += old - new - taken;
        }
        adaptive.pressure.set_limit(new);
    }

    fn next(&self) -> std::sync::MutexGuard<'_, Next> {
        self.next.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ready once a slot is reserved for the next delivery.
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut next = self.next();
        if next.reserved.is_some() {
            return Poll::Ready(());
        }
        if next.acquiring.is_none() {
            match self.semaphore.clone().try_acquire_owned() {
                Ok(permit) => {
                    next.reserved = Some(permit);
                    return Poll::Ready(());
                }
                Err(_) => self.saw_limit(),
            }
        }
        let semaphore = self.semaphore.clone();
        let acquiring = next
            .acquiring
            .get_or_insert_with(|| Box::pin(semaphore.acquire_owned()));
        match acquiring.as_mut().poll(cx) {
            Poll::Ready(permit) => {
                next.acquiring = None;
                // The semaphore is never closed; if it were, deliveries would
                // take their slots themselves.
                next.reserved = permit.ok();
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// A delivery's slot: the one `poll_ready` reserved, if any (otherwise
    /// the delivery waits for one before its first attempt).
    pub(crate) fn slot(self: &Arc<Self>) -> Slot {
        Slot {
            permit: self.next().reserved.take(),
            generation: self.generation(),
            slots: self.clone(),
        }
    }
}

/// The slot a delivery holds while it sends.
#[derive(Debug)]
pub(crate) struct Slot {
    slots: Arc<SendSlots>,
    permit: Option<OwnedSemaphorePermit>,
    /// The adaptive limit's generation when the slot was taken.
    generation: u64,
}

impl Slot {
    /// Gives the slot back while the delivery waits.
    pub(crate) fn release(&mut self) {
        if let Some(permit) = self.permit.take() {
            self.slots.give_back(permit);
        }
    }

    /// Takes a slot again before sending (at once if it still holds one).
    pub(crate) async fn take(&mut self) {
        if self.permit.is_none() {
            let semaphore = self.slots.semaphore.clone();
            self.permit = match semaphore.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    self.slots.saw_limit();
                    semaphore.acquire_owned().await.ok()
                }
            };
            self.generation = self.slots.generation();
        }
    }

    /// Tells the adaptive limit, if any, how the attempt sent with this slot
    /// went.
    pub(crate) fn feedback(&self, r: &Attempt) {
        self.slots.feedback(r, self.generation);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::task::noop_waker_ref;

    #[tokio::test]
    async fn a_released_slot_goes_to_the_next_delivery() {
        let slots = Arc::new(SendSlots::new(1));
        let mut cx = Context::from_waker(noop_waker_ref());
        assert!(slots.poll_ready(&mut cx).is_ready());
        assert!(slots.poll_ready(&mut cx).is_ready(), "stays reserved");
        let mut first = slots.slot();
        assert!(
            slots.poll_ready(&mut cx).is_pending(),
            "the one slot is taken"
        );
        first.release();
        assert!(slots.poll_ready(&mut cx).is_ready());
        let second = slots.slot();
        // The first delivery's next attempt waits until the second is done.
        {
            let again = first.take();
            tokio::pin!(again);
            assert!(futures_util::poll!(again.as_mut()).is_pending());
            drop(second);
            again.await;
        }
        assert!(first.permit.is_some());
    }

    fn answer(status: u16) -> Attempt {
        use super::super::attempt::Verdict;
        Attempt {
            verdict: if status == 200 {
                Verdict::Delivered
            } else {
                Verdict::Retry { after: None }
            },
            status: Some(status),
            latency: std::time::Duration::from_millis(1),
            error: None,
            excerpt: None,
        }
    }

    #[tokio::test]
    async fn adaptive_slots_follow_the_limit() {
        let pressure = Arc::new(Pressure::default());
        let slots = Arc::new(SendSlots::adaptive(8, pressure.clone()));
        assert_eq!(pressure.limit(), Some(1));
        let mut cx = Context::from_waker(noop_waker_ref());
        assert!(slots.poll_ready(&mut cx).is_ready());
        let mut a = slots.slot();
        // The second waits: the limit is in use.
        assert!(slots.poll_ready(&mut cx).is_pending());
        for _ in 0..5 {
            a.feedback(&answer(200));
        }
        assert_eq!(pressure.limit(), Some(2));
        // The rise gave the waiting one its slot.
        assert!(slots.poll_ready(&mut cx).is_ready());
        let b = slots.slot();
        // Answers to requests sent at the new limit bring it down again
        // while both are in flight: they finish, then only one is free.
        a.release();
        a.take().await;
        for _ in 0..5 {
            b.feedback(&answer(503));
        }
        assert_eq!(pressure.limit(), Some(1));
        drop(a);
        drop(b);
        assert!(slots.poll_ready(&mut cx).is_ready());
        let _c = slots.slot();
        assert!(slots.poll_ready(&mut cx).is_pending(), "one slot only");
    }
}
