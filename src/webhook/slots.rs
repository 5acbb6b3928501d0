//! An endpoint's sending slots when it is attached to a bus: at most
//! `concurrency` requests in flight. A delivery holds a slot while it sends
//! and gives it back while it waits for its next attempt (or for an earlier
//! event of its key), so a retrying event never holds up the others.
//!
//! The subscriber asks [`SendSlots::poll_ready`] before each delivery (the
//! [`Sink::poll_ready`](crate::Sink::poll_ready) seam), which reserves a slot
//! for the delivery that follows; events stay in the mailbox, under its
//! overflow policy, until a slot is free.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};

type Acquire = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

/// The slots of one subscription.
pub(crate) struct SendSlots {
    semaphore: Arc<Semaphore>,
    next: Mutex<Next>,
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
        }
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
            slots: self.clone(),
        }
    }
}

/// The slot a delivery holds while it sends.
#[derive(Debug)]
pub(crate) struct Slot {
    slots: Arc<SendSlots>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Slot {
    /// Gives the slot back while the delivery waits.
    pub(crate) fn release(&mut self) {
        self.permit = None;
    }

    /// Takes a slot again before sending (at once if it still holds one).
    pub(crate) async fn take(&mut self) {
        if self.permit.is_none() {
            self.permit = self.slots.semaphore.clone().acquire_owned().await.ok();
        }
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
}
