//! Waiting for a condition with a deadline instead of sleeping a fixed
//! time: every helper polls and fails naming what it waited for.

use std::future::Future;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_millis(20);

/// Polls `f` until it is true; panics naming `what` after `timeout`.
pub async fn until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(EVERY).await;
    }
}

/// Polls `f` until it yields `Some`; panics naming `what` after `timeout`.
pub async fn until_some<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(EVERY).await;
    }
}

/// Waits for `child` to exit; kills it and panics after `timeout`.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("process {} still running after {timeout:?}", child.id());
        }
        std::thread::sleep(EVERY);
    }
}
