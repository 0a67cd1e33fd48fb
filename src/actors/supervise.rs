//! Restart with capped exponential backoff for actix `Supervised` actors.
//!
//! actix's `Supervisor` restarts an actor that *stops* (not one that
//! panics), immediately. Actors therefore turn failures into `ctx.stop()`,
//! and use [`RestartBackoff`] + [`pause_then`] so the restart waits: in
//! `restarting()` call [`RestartBackoff::arm`], and at the top of
//! `started()` call [`pause_then`] with [`RestartBackoff::take_pending`].
//! While the pause runs the actor processes no messages.

use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context};

use crate::backoff::Backoff;

/// The delays between restarts of one actor (wrapping the one [`Backoff`]).
#[derive(Clone, Debug)]
pub struct RestartBackoff {
    backoff: Backoff,
    pending: Option<Duration>,
}

impl Default for RestartBackoff {
    /// 100 ms doubling, capped at 30 s.
    fn default() -> Self {
        RestartBackoff::new(Backoff::new(
            Duration::from_millis(100),
            Duration::from_secs(30),
        ))
    }
}

impl RestartBackoff {
    pub fn new(backoff: Backoff) -> Self {
        RestartBackoff {
            backoff,
            pending: None,
        }
    }

    /// Call from `Supervised::restarting`: arms the delay that
    /// [`Self::take_pending`] hands to `started()`, and returns it.
    pub fn arm(&mut self) -> Duration {
        let d = self.backoff.next_delay();
        self.pending = Some(d);
        d
    }

    /// The delay armed by the last restart, once (`None` on first start).
    pub fn take_pending(&mut self) -> Option<Duration> {
        self.pending.take()
    }

    /// Work succeeded: the next restart waits the base delay again.
    pub fn succeeded(&mut self) {
        self.backoff.reset();
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
    fn arms_one_delay_per_restart() {
        let mut b = RestartBackoff::new(Backoff::new(
            Duration::from_millis(100),
            Duration::from_millis(1000),
        ));
        assert!(b.take_pending().is_none(), "first start: no pause");
        assert_eq!(b.arm(), Duration::from_millis(100));
        assert_eq!(b.arm(), Duration::from_millis(200));
        assert_eq!(b.take_pending(), Some(Duration::from_millis(200)));
        assert!(b.take_pending().is_none());
        b.succeeded();
        assert_eq!(b.arm(), Duration::from_millis(100));
    }
}
