//! Runs `strand serve` with a given config and waits for it to exit, for
//! start-up failures (a taken port, a bad key): the binary as a user runs
//! it, its stderr kept apart from its log.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

pub struct Exited {
    pub status: ExitStatus,
    pub stderr: String,
    pub stdout: String,
}

/// The binary under test (STRAND_BIN, as in `process.rs`, or cargo's).
pub fn strand_bin() -> PathBuf {
    std::env::var_os("STRAND_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_strand")))
}

/// Writes `config` to `dir/strand.toml`, runs `strand serve` on it and
/// waits up to `timeout` for it to exit (it is killed, and the test fails,
/// if it is still running then).
pub fn serve_until_exit(dir: &Path, config: &str, timeout: Duration) -> Exited {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("strand.toml");
    std::fs::write(&path, config).unwrap();
    let (out, err) = (dir.join("stdout.log"), dir.join("stderr.log"));
    let mut child = Command::new(strand_bin())
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "info")
        .stdout(Stdio::from(std::fs::File::create(&out).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&err).unwrap()))
        .spawn()
        .expect("spawn strand");
    let status = super::poll::wait_exit(&mut child, timeout);
    Exited {
        status,
        stderr: std::fs::read_to_string(err).unwrap_or_default(),
        stdout: std::fs::read_to_string(out).unwrap_or_default(),
    }
}
