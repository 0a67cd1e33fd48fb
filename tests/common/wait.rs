//! Poll until a condition holds or a timeout passes. Every check runs at
//! least once, also when it is already late.

use std::time::Duration;

use tokio::time::Instant;

/// The pause between two checks, unless a caller asks for another.
pub const TICK: Duration = Duration::from_millis(100);

/// Polls `f` every `every` until it yields a value; `None` after `timeout`.
pub async fn poll<T>(
    timeout: Duration,
    every: Duration,
    mut f: impl AsyncFnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// Polls `check` until it returns true; false after `timeout`, for callers
/// that fail with a message of their own.
pub async fn eventually(timeout: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    poll(timeout, TICK, async || check().await.then_some(()))
        .await
        .is_some()
}

/// Polls `f` until it yields a value; fails the test after `timeout`.
pub async fn value<T>(what: &str, timeout: Duration, f: impl AsyncFnMut() -> Option<T>) -> T {
    poll(timeout, TICK, f)
        .await
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// Polls `check` until it returns true; fails the test after `timeout`.
pub async fn until(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    value(what, timeout, async || check().await.then_some(())).await
}
