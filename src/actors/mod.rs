//! The supervision tree (`tree`) and the actors of the ingest and storage
//! stages: the receiver pool, the hot writer, the sealer and the retention
//! janitor, and the stages that own a listener (`listener`). Stages that
//! belong to a sink live with their sink (`crate::kafka::consumer`,
//! `crate::elasticsearch::sink`) and register in the same tree.

pub mod listener;
pub mod receiver;
pub mod sealer;
pub mod supervise;
pub mod tree;
pub mod writer;

/// Names the calling thread as `/proc/<pid>/task/*/comm` shows it (15
/// bytes at most), so per-thread CPU can be told apart by role.
pub fn name_thread(name: &str) {
    #[cfg(target_os = "linux")]
    {
        let mut buf = [0u8; 16];
        let n = name.len().min(15);
        buf[..n].copy_from_slice(&name.as_bytes()[..n]);
        // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16
        // bytes from `buf`, which lives for the call; it names only the
        // calling thread.
        unsafe {
            libc::prctl(libc::PR_SET_NAME, buf.as_ptr() as libc::c_ulong, 0, 0, 0);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = name;
}
