//! Runs the real `strand` binary as a child process, as a user would:
//! a server on free loopback ports, or a `strand serve` expected to exit
//! (start-up failures such as a taken port or a bad key).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub struct Strand {
    pub child: Child,
    pub dir: PathBuf,
    pub grpc: String,
    pub http: String,
    pub query: String,
    /// Zipkin v2 receiver base URL (`POST {zipkin}/api/v2/spans`).
    pub zipkin: String,
    /// Remote sampling: HTTP base URL (`GET {sampling}/sampling?service=`)
    /// and gRPC URL (`jaeger.api_v2.SamplingManager`).
    pub sampling: String,
    pub sampling_grpc: String,
    config_path: PathBuf,
    ports: (u16, u16, u16),
    args: Vec<String>,
}

pub fn free_port() -> u16 {
    // A port once handed out stays reserved for this test process: a node
    // killed and restarted binds its ports again, and a test running beside
    // it must not be handed one of them while it is down.
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if GIVEN.lock().unwrap().insert(port) {
            return port;
        }
    }
}

impl Strand {
    /// Starts `strand serve` with its data under `dir` and `extra` TOML
    /// appended to the generated config; waits until /readyz answers 200.
    pub fn start(dir: &Path, extra: &str) -> Strand {
        Strand::start_full(dir, &[], "", extra)
    }

    /// As [`Strand::start`], with more `strand serve` arguments (such as
    /// `--target query`).
    pub fn start_with_args(dir: &Path, extra: &str, args: &[&str]) -> Strand {
        Strand::start_full(dir, args, "", extra)
    }

    /// As [`Strand::start`], as `strand serve --target <target>`, with
    /// `query_extra` inside the `[query]` section (e.g. `peers = [...]`).
    pub fn start_target(dir: &Path, target: &str, query_extra: &str, extra: &str) -> Strand {
        Strand::start_full(dir, &["--target", target], query_extra, extra)
    }

    /// As [`Strand::start`] without waiting for /readyz over plain HTTP
    /// (a query port that speaks TLS): the caller waits its own way.
    pub fn spawn_unchecked(dir: &Path, extra: &str) -> Strand {
        Strand::spawn_full(dir, &[], "", extra)
    }

    fn start_full(dir: &Path, args: &[&str], query_extra: &str, extra: &str) -> Strand {
        let mut s = Strand::spawn_full(dir, args, query_extra, extra);
        s.wait_ready();
        s
    }

    fn spawn_full(dir: &Path, args: &[&str], query_extra: &str, extra: &str) -> Strand {
        let ports = (free_port(), free_port(), free_port());
        let (g, h, q) = ports;
        let z = free_port();
        let (sh, sg) = (free_port(), free_port());
        let config_path = dir.join("strand.toml");
        std::fs::create_dir_all(dir).unwrap();
        let extra = with_sampling_ports(extra, sh, sg);
        write_config(
            &config_path,
            (ports, z),
            &dir.join("data"),
            query_extra,
            &extra,
        );
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        Strand {
            child: spawn(&config_path, dir, &args),
            dir: dir.to_path_buf(),
            grpc: format!("http://127.0.0.1:{g}"),
            http: format!("http://127.0.0.1:{h}"),
            query: format!("http://127.0.0.1:{q}"),
            zipkin: format!("http://127.0.0.1:{z}"),
            sampling: format!("http://127.0.0.1:{sh}"),
            sampling_grpc: format!("http://127.0.0.1:{sg}"),
            config_path,
            ports,
            args,
        }
    }

    /// SIGTERM and wait: the graceful shutdown path.
    pub fn stop(&mut self) {
        // SAFETY: kill(2) on our own child's pid; no memory is touched.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }

    /// Starts the same configuration again after a kill.
    pub fn restart(&mut self) {
        self.child = spawn(&self.config_path, &self.dir, &self.args);
        self.wait_ready();
    }

    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = format!("{}/readyz", self.query);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(self.dir.join("strand.log")).unwrap_or_default();
                panic!("strand exited during start-up ({status}):\n{log}");
            }
            if ureq_like_get(&url).is_some_and(|code| code == 200) {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "strand did not become ready at {url} within 60 s; log (newest first):\n{}",
                    self.log_tail(20)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last `lines` lines of the process's log, newest first.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.dir.join("strand.log")).unwrap_or_default();
        log.lines().rev().take(lines).collect::<Vec<_>>().join("\n")
    }

    /// SIGKILL: no shutdown hook runs, as in a crash.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Strand {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The remote-sampling listeners on free ports (their defaults, :5778 and
/// :5779, would collide between tests), inside the test's own
/// `[sampling.remote]` section when it has one.
fn with_sampling_ports(extra: &str, http: u16, grpc: u16) -> String {
    let ports = format!(
        "[sampling.remote]\nhttp_addr = \"127.0.0.1:{http}\"\ngrpc_addr = \"127.0.0.1:{grpc}\"\n"
    );
    match extra.contains("[sampling.remote]") {
        true => extra.replacen("[sampling.remote]\n", &ports, 1),
        false => format!("{extra}\n{ports}"),
    }
}

fn write_config(
    path: &Path,
    ((g, h, q), z): ((u16, u16, u16), u16),
    storage: &Path,
    query_extra: &str,
    extra: &str,
) {
    // strand traces itself by default; tests that count services or
    // traces see only their own data unless they ask for self-traces.
    let self_tracing = if extra.contains("[self_tracing]") {
        ""
    } else {
        "\n[self_tracing]\nenabled = false\n"
    };
    let config = format!(
        "[ingest]\ngrpc_addr = \"127.0.0.1:{g}\"\nhttp_addr = \"127.0.0.1:{h}\"\nzipkin_addr = \"127.0.0.1:{z}\"\n\n[query]\naddr = \"127.0.0.1:{q}\"\n{query_extra}\n\n[storage]\ndir = {:?}\n{extra}\n{self_tracing}",
        storage.display().to_string()
    );
    std::fs::write(path, config).unwrap();
}

/// The binary under test: cargo's, or STRAND_BIN, a copy of it for when
/// other builds share the target directory and may replace it while tests
/// run.
pub fn strand_bin() -> PathBuf {
    std::env::var_os("STRAND_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_strand")))
}

fn spawn(config: &Path, dir: &Path, args: &[String]) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("strand.log"))
        .unwrap();
    Command::new(strand_bin())
        .arg("serve")
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn strand")
}

/// How a `strand serve` that was expected to stop ended, with its stderr
/// kept apart from its stdout (its log).
pub struct Exited {
    pub status: ExitStatus,
    pub stderr: String,
    pub stdout: String,
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
    let status = wait_exit(&mut child, timeout);
    Exited {
        status,
        stderr: std::fs::read_to_string(err).unwrap_or_default(),
        stdout: std::fs::read_to_string(out).unwrap_or_default(),
    }
}

/// Waits for `child` to exit; kills it and fails the test after `timeout`.
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
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A blocking GET returning the status code, without pulling an HTTP
/// client into every test binary's blocking context.
fn ureq_like_get(url: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut s = std::net::TcpStream::connect(host).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split_whitespace().nth(1)?.parse().ok()
}
