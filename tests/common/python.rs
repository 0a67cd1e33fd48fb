//! Python scripts under tests/ as real clients (the OpenTelemetry Python
//! SDK and its exporters, installed from tests/requirements.txt).

use std::path::PathBuf;
use std::process::Command;

/// `tests/<script>` (relative to the crate).
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(name)
}

/// Runs `python3 tests/<name> args...` to completion and returns its
/// stdout; fails the test with its stderr when it exits non-zero.
pub fn run(name: &str, args: &[&str]) -> String {
    let out = Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()))
        .arg(script(name))
        .args(args)
        .output()
        .expect("python3 runs (pip install -r tests/requirements.txt)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name} {args:?} failed ({}):\n{stderr}",
        out.status
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// [`run`], with its last stdout line parsed as JSON.
pub fn run_json(name: &str, args: &[&str]) -> serde_json::Value {
    let out = run(name, args);
    let line = out.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}: {e}: {out}"))
}
