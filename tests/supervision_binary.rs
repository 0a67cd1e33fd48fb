//! The supervision tree as the real `strand serve` shows it: a listener
//! whose port is taken fails start-up naming the address and its config
//! key; a started process lists every group and stage it runs at
//! /api/admin/actors, its group states at /metrics, and is ready.

mod common;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::time::Duration;

use serde_json::Value;

use common::process::{free_port, serve_until_exit, Strand};

const KEYS: [&str; 6] = [
    "ingest.grpc_addr",
    "ingest.http_addr",
    "ingest.zipkin_addr",
    "query.addr",
    "sampling.remote.http_addr",
    "sampling.remote.grpc_addr",
];

#[test]
fn a_taken_port_fails_start_up_naming_the_address_and_the_key() {
    for key in KEYS {
        let dir = tempfile::tempdir().unwrap();
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let busy = taken.local_addr().unwrap().to_string();
        let addr = |k: &str| {
            if k == key {
                busy.clone()
            } else {
                format!("127.0.0.1:{}", free_port())
            }
        };
        let config = format!(
            "[ingest]\ngrpc_addr = \"{}\"\nhttp_addr = \"{}\"\nzipkin_addr = \"{}\"\n\n[query]\naddr = \"{}\"\n\n[sampling.remote]\nhttp_addr = \"{}\"\ngrpc_addr = \"{}\"\n\n[storage]\ndir = {:?}\n",
            addr(KEYS[0]),
            addr(KEYS[1]),
            addr(KEYS[2]),
            addr(KEYS[3]),
            addr(KEYS[4]),
            addr(KEYS[5]),
            dir.path().join("data").display().to_string()
        );
        let out = serve_until_exit(dir.path(), &config, Duration::from_secs(30));
        assert!(
            !out.status.success(),
            "{key}: started on a taken port ({})",
            out.status
        );
        assert_eq!(out.status.code(), Some(1), "{key}: {}", out.status);
        let line = out
            .stderr
            .lines()
            .find(|l| l.starts_with("strand: "))
            .unwrap_or_else(|| panic!("{key}: no error line on stderr:\n{}", out.stderr));
        assert!(line.contains(&busy), "{key}: address not named: {line}");
        assert!(line.contains(key), "{key}: key not named: {line}");
        // Nothing else was bound or reported ready before failing.
        assert!(
            !out.stdout.contains("strand is ready"),
            "{key}: {}",
            out.stdout
        );
        drop(taken);
    }
}

async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.expect("reachable");
    (r.status().as_u16(), r.text().await.expect("body"))
}

/// The stage names of `group` in the tree.
fn stages(tree: &Value, group: &str) -> BTreeSet<String> {
    tree["groups"][group]["stages"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// /api/admin/actors once every stage in `want` has registered (they
/// register asynchronously), or as it is after 20 s.
async fn tree_with(s: &Strand, want: &[(&str, BTreeSet<String>)]) -> Value {
    let url = format!("{}/api/admin/actors", s.query);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (code, body) = get(&url).await;
        assert_eq!(code, 200, "{body}");
        let v: Value = serde_json::from_str(&body).expect("json");
        let all = want
            .iter()
            .all(|(g, names)| names.is_subset(&stages(&v, g)));
        if all || std::time::Instant::now() >= deadline {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

async fn check_tree(s: &Strand, workers: usize, shards: usize) {
    let mut ingest: BTreeSet<String> = names("receiver-", workers).into_iter().collect();
    ingest.extend(
        [
            "otlp_grpc",
            "otlp_http",
            "zipkin_http",
            "sampling_http",
            "sampling_grpc",
        ]
        .map(String::from),
    );
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let mut storage = set(&["segment_sealer", "retention_janitor"]);
    storage.extend(names("hot_writer-", shards));
    let expect = [
        ("ingest", ingest),
        ("storage", storage),
        ("pipeline", set(&["span_metrics"])),
        ("query", set(&["query_http"])),
    ];
    let tree = tree_with(s, &expect).await;
    for (group, want) in &expect {
        assert_eq!(&stages(&tree, group), want, "stages of {group}: {tree}");
        let g = &tree["groups"][group];
        assert_eq!(g["state"], "running", "{group}: {g}");
        assert_eq!(g["escalations"], 0, "{group}: {g}");
        for name in want {
            let st = &g["stages"][name];
            assert_eq!(st["status"], "running", "{group}/{name}: {st}");
            assert_eq!(st["restarts"], 0, "{group}/{name}: {st}");
        }
    }
    // Embedded mode runs no Kafka and no Elasticsearch stages.
    let groups: BTreeSet<&str> = tree["groups"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        groups,
        BTreeSet::from(["ingest", "pipeline", "query", "storage"])
    );
    assert!(
        tree["actors"]["hot_writer-0"].is_object(),
        "{}",
        tree["actors"]
    );

    let (code, metrics) = get(&format!("{}/metrics", s.query)).await;
    assert_eq!(code, 200);
    for group in ["ingest", "storage", "query"] {
        let line = format!("strand_group_state{{group=\"{group}\"}} 0");
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line:?} in /metrics"
        );
    }
    let (code, body) = get(&format!("{}/readyz", s.query)).await;
    assert_eq!((code, body.as_str()), (200, "ready"));
}

#[actix_rt::test]
async fn the_tree_of_a_running_strand_is_visible() {
    let dir = tempfile::tempdir().unwrap();
    let s = Strand::start_with_args(
        dir.path(),
        "",
        &[
            "--set",
            "ingest.workers=3",
            "--set",
            "storage.writer_shards=2",
        ],
    );
    check_tree(&s, 3, 2).await;
}

#[actix_rt::test]
async fn one_receiver_worker_per_core_and_one_writer_shard_per_two_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let s = Strand::start(dir.path(), "");
    // The child runs on this machine: the same count of cores.
    let cores = std::thread::available_parallelism().unwrap().get();
    check_tree(&s, cores, (cores / 2).max(1)).await;
}
