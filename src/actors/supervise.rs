//! Restart with capped exponential backoff for actix `Supervised` actors.
//!
//! actix's `Supervisor` restarts an actor that *stops* (not one that
//! panics), immediately. Actors therefore turn failures into `ctx.stop()`,
//! and use [`Backoff`] + [`pause_then`] so the restart waits: in
//! `restarting()` call [`Backoff::on_restart`] (counts the restart in
//! `ActorStats`), and at the top of `started()` call [`pause_then`] with the
//! delay it returned. While the pause runs the actor processes no messages.

use std::time::{Duration, Instant};

use actix::{Actor, ActorFutureExt, AsyncContext, Context};

use crate::metrics::ActorStats;

#[derive(Clone, Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    /// A failure this long after the last restart starts over from `base`.
    reset_after: Duration,
    attempt: u32,
    last_restart: Option<Instant>,
    pending: Option<Duration>,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Backoff {
        Backoff {
            base,
            max,
            reset_after: max * 4,
            attempt: 0,
            last_restart: None,
            pending: None,
        }
    }

    /// The next delay: base, 2×base, 4×base, ... capped at max.
    pub fn next_delay(&mut self) -> Duration {
        if self
            .last_restart
            .is_some_and(|t| t.elapsed() > self.reset_after)
        {
            self.attempt = 0;
        }
        self.last_restart = Some(Instant::now());
        let d = self
            .base
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        d
    }

    /// Call from `Supervised::restarting`: counts the restart and arms
    /// the delay that [`Self::take_pending`] hands to `started()`.
    pub fn on_restart(&mut self, stats: &ActorStats) -> Duration {
        stats
            .restarts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = self.next_delay();
        self.pending = Some(d);
        d
    }

    /// The delay armed by the last restart, once (`None` on first start).
    pub fn take_pending(&mut self) -> Option<Duration> {
        self.pending.take()
    }
}

/// Holds the actor's mailbox for `delay`, then runs `then` (typically the
/// recovery step; it may `ctx.stop()` again, which restarts with a longer
/// delay).
pub fn pause_then<A>(
    ctx: &mut Context<A>,
    delay: Duration,
    then: impl FnOnce(&mut A, &mut Context<A>) + 'static,
) where
    A: Actor<Context = Context<A>>,
{
    ctx.wait(
        actix::fut::wrap_future::<_, A>(actix::clock::sleep(delay))
            .map(move |_, act, ctx| then(act, ctx)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let d: Vec<u128> = (0..6).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(d, vec![100, 200, 400, 800, 1000, 1000]);
        let stats = ActorStats::default();
        assert!(b.take_pending().is_none());
        b.on_restart(&stats);
        assert_eq!(stats.restarts.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert_eq!(b.take_pending(), Some(Duration::from_millis(1000)));
        assert!(b.take_pending().is_none());
    }
}
