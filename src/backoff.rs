//! The one capped exponential backoff every retry loop and supervisor in
//! strand uses: `base`, 2×base, 4×base, … capped at `max`, starting over
//! once a retry has stayed quiet for a while.

use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    /// A failure this long after the previous one starts over from `base`.
    reset_after: Duration,
    attempt: u32,
    last: Option<Instant>,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Backoff {
        Backoff {
            base,
            max,
            reset_after: max.saturating_mul(4),
            attempt: 0,
            last: None,
        }
    }

    /// The next delay to wait before trying again.
    pub fn next_delay(&mut self) -> Duration {
        if self.last.is_some_and(|t| t.elapsed() > self.reset_after) {
            self.attempt = 0;
        }
        self.last = Some(Instant::now());
        let d = self
            .base
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        d
    }

    /// After a success: the next failure waits `base` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
        self.last = None;
    }

    /// Delays handed out since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_reset() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let d: Vec<u128> = (0..6).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(d, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.attempts(), 6);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }

    #[test]
    fn a_quiet_spell_starts_over() {
        let mut b = Backoff::new(Duration::from_millis(1), Duration::from_millis(2));
        b.next_delay();
        b.next_delay();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(b.next_delay(), Duration::from_millis(1));
    }
}
