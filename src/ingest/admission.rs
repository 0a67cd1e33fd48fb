//! Admission control in front of the receiver: the in-flight byte budget
//! (backpressure). Who may send is `crate::security::auth`.

use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

use crate::error::{Error, Result};
use crate::metrics::Gauge;

/// Request bytes admitted but not yet durable, counted in KiB on a
/// semaphore (so one permit count fits in `u32` for any request). A request
/// that does not fit is refused at once (RESOURCE_EXHAUSTED / 429) rather
/// than queued: the client's retry with backoff is the queue.
pub struct Admission {
    sem: Arc<Semaphore>,
    capacity_kib: u32,
    gauge: Gauge,
}

/// Held from admission until the request's spans are durable (or it
/// failed); dropping it returns the bytes to the budget.
pub struct InflightPermit {
    permit: OwnedSemaphorePermit,
    bytes: u64,
    gauge: Gauge,
}

impl Drop for InflightPermit {
    fn drop(&mut self) {
        self.gauge.sub(self.bytes);
    }
}

impl Admission {
    pub fn new(max_inflight_bytes: usize) -> Arc<Admission> {
        let capacity_kib = u32::try_from(max_inflight_bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .max(1);
        Arc::new(Admission {
            sem: Arc::new(Semaphore::new(capacity_kib as usize)),
            capacity_kib,
            gauge: Gauge::new(
                "strand_ingest_inflight_bytes",
                "request bytes admitted and not yet durable",
                &[],
            ),
        })
    }

    fn kib(&self, bytes: usize) -> u32 {
        u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.capacity_kib)
    }

    fn acquire(&self, kib: u32) -> Result<OwnedSemaphorePermit> {
        match self.sem.clone().try_acquire_many_owned(kib) {
            Ok(permit) => Ok(permit),
            Err(TryAcquireError::NoPermits) => Err(Error::Overloaded(format!(
                "ingest in-flight limit of {} KiB reached; retry later",
                self.capacity_kib
            ))),
            Err(TryAcquireError::Closed) => {
                Err(Error::Unavailable("ingest is shutting down".into()))
            }
        }
    }

    pub fn try_admit(&self, bytes: usize) -> Result<InflightPermit> {
        let permit = self.acquire(self.kib(bytes))?;
        self.gauge.add(bytes as u64);
        Ok(InflightPermit {
            permit,
            bytes: bytes as u64,
            gauge: self.gauge.clone(),
        })
    }

    /// Re-sizes an admitted permit to `bytes`, once the real size is known
    /// (a body shorter than reserved, or inflated by gzip): growing is
    /// refused like `try_admit` (the permit keeps its size), shrinking
    /// returns the difference to the budget.
    pub fn resize(&self, p: &mut InflightPermit, bytes: usize) -> Result<()> {
        let (want, have) = (self.kib(bytes), p.permit.num_permits() as u32);
        if want > have {
            p.permit.merge(self.acquire(want - have)?);
        } else if want < have {
            drop(p.permit.split((have - want) as usize));
        }
        self.gauge.sub(p.bytes);
        self.gauge.add(bytes as u64);
        p.bytes = bytes as u64;
        Ok(())
    }

    /// KiB currently available (for tests and diagnostics).
    pub fn available_kib(&self) -> usize {
        self.sem.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_refuses_then_recovers() {
        let a = Admission::new(10 * 1024);
        let p1 = a.try_admit(6 * 1024).unwrap();
        assert!(matches!(a.try_admit(5 * 1024), Err(Error::Overloaded(_))));
        let p2 = a.try_admit(4 * 1024).unwrap();
        assert_eq!(a.available_kib(), 0);
        drop(p1);
        drop(p2);
        assert_eq!(a.available_kib(), 10);
        // Larger than the whole budget: admitted alone rather than never.
        let _big = a.try_admit(1 << 30).unwrap();
    }

    #[test]
    fn resize_grows_within_the_budget_and_gives_back() {
        let a = Admission::new(10 * 1024);
        let mut p = a.try_admit(8 * 1024).unwrap();
        a.resize(&mut p, 2 * 1024).unwrap();
        assert_eq!(a.available_kib(), 8);
        let other = a.try_admit(7 * 1024).unwrap();
        assert!(matches!(
            a.resize(&mut p, 4 * 1024),
            Err(Error::Overloaded(_))
        ));
        assert_eq!(a.available_kib(), 1, "a refused resize keeps the old size");
        drop(other);
        a.resize(&mut p, 9 * 1024).unwrap();
        assert_eq!(a.available_kib(), 1);
        drop(p);
        assert_eq!(a.available_kib(), 10);
    }
}
