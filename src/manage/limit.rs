//! The per-tenant request rate limit of the management API: one token
//! bucket per tenant, kept as GCRA (one theoretical arrival time per
//! tenant, no refill task).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// `requests` per `per` for each tenant, bursts of up to `burst` at once.
pub(super) struct TenantLimit {
    /// Time between requests at the steady rate.
    interval: Duration,
    /// How far ahead of the steady rate a burst may run.
    tolerance: Duration,
    /// The theoretical arrival time of each tenant's next request.
    tat: Mutex<HashMap<String, Instant>>,
}

/// Most tenants remembered before the idle ones are forgotten (a tenant
/// whose bucket is full again loses nothing by being forgotten).
const MAX_TENANTS: usize = 100_000;

impl TenantLimit {
    /// `None` for a rate that is not one (checked by the builder).
    pub(super) fn new(requests: u32, per: Duration, burst: u32) -> Option<TenantLimit> {
        if requests == 0 || per.is_zero() || burst == 0 {
            return None;
        }
        let interval = per / requests;
        if interval.is_zero() {
            return None;
        }
        Some(TenantLimit {
            interval,
            tolerance: interval * (burst - 1),
            tat: Mutex::new(HashMap::new()),
        })
    }

    /// Takes a token of `tenant`'s bucket, or says how long until one is
    /// there.
    pub(super) fn check(&self, tenant: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut tats = self.tat.lock().unwrap_or_else(|e| e.into_inner());
        let tat = tats.get(tenant).copied().unwrap_or(now).max(now);
        let allowed_at = tat.checked_sub(self.tolerance).unwrap_or(now);
        if allowed_at > now {
            return Err(allowed_at - now);
        }
        if tats.len() >= MAX_TENANTS && !tats.contains_key(tenant) {
            tats.retain(|_, t| *t > now);
        }
        tats.insert(tenant.to_owned(), tat + self.interval);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_then_the_steady_rate_per_tenant() {
        let l = TenantLimit::new(2, Duration::from_secs(1), 3).unwrap();
        for _ in 0..3 {
            l.check("a").unwrap();
        }
        let wait = l.check("a").unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        // Another tenant has its own bucket.
        l.check("b").unwrap();
        tokio::time::advance(wait).await;
        l.check("a").unwrap();
        assert!(l.check("a").is_err());
    }

    #[test]
    fn no_rate_is_refused() {
        assert!(TenantLimit::new(0, Duration::from_secs(1), 1).is_none());
        assert!(TenantLimit::new(1, Duration::ZERO, 1).is_none());
        assert!(TenantLimit::new(1, Duration::from_secs(1), 0).is_none());
    }
}
