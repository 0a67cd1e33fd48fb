use super::*;

/// A stage that counts the restarts the root asks of it.
struct Probe(Arc<std::sync::atomic::AtomicU64>);

impl Actor for Probe {
    type Context = Context<Self>;
}

impl Handler<RestartStage> for Probe {
    type Result = ();
    fn handle(&mut self, _: RestartStage, _: &mut Context<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

async fn until(mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        actix::clock::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not met in 2 s");
}

#[actix_rt::test]
async fn a_stage_that_keeps_failing_restarts_its_group_then_fails_it() {
    let health = Health::started();
    let policy = Policy {
        max_restarts: 2,
        max_escalations: 1,
        window: Duration::from_secs(60),
    };
    let root = Root::start(policy, health.clone());
    let (a, b) = (Arc::default(), Arc::default());
    let pa = Probe(Arc::clone(&a)).start();
    let pb = Probe(Arc::clone(&b)).start();
    let sa = StageHandle::new(Some(&root), "storage", "tree_test_a");
    sa.register(Some(pa.recipient()));
    StageHandle::new(Some(&root), "storage", "tree_test_b").register(Some(pb.recipient()));
    let other = StageHandle::new(Some(&root), "query", "tree_test_c");
    other.register(None);
    other.up();
    for _ in 0..2 {
        sa.failed(&"disk on fire");
    }
    until(|| health.snapshot_json()["groups"]["storage"]["state"] == "degraded").await;
    assert_eq!(
        a.load(Ordering::SeqCst),
        0,
        "within the limit: no escalation"
    );
    assert!(health.ready().is_ok(), "degraded is still ready");
    sa.failed(&"disk on fire");
    until(|| b.load(Ordering::SeqCst) == 1).await;
    assert_eq!(
        a.load(Ordering::SeqCst),
        1,
        "every stage of the group restarts"
    );
    assert_eq!(
        health.snapshot_json()["groups"]["query"]["state"],
        "running"
    );
    // A second escalation within the window fails the group.
    for _ in 0..3 {
        sa.failed(&"disk on fire");
    }
    until(|| health.ready().is_err()).await;
    let why = health.ready().unwrap_err();
    assert!(why.contains("storage"), "{why}");
    let v = health.snapshot_json();
    assert_eq!(v["groups"]["storage"]["state"], "failed");
    assert_eq!(v["groups"]["storage"]["escalations"], 2);
    assert_eq!(
        v["groups"]["storage"]["stages"]["tree_test_a"]["restarts"],
        6
    );
    assert_eq!(
        v["groups"]["storage"]["stages"]["tree_test_a"]["last_error"],
        "disk on fire"
    );
}

#[actix_rt::test]
async fn a_restart_ordered_by_the_group_counts_but_is_no_failure() {
    let health = Health::started();
    let policy = Policy {
        max_restarts: 0,
        ..Policy::default()
    };
    let root = Root::start(policy, health.clone());
    let s = StageHandle::new(Some(&root), "search", "tree_test_e");
    s.register(None);
    let stage = || health.snapshot_json()["groups"]["search"]["stages"]["tree_test_e"].clone();
    until(|| stage().is_object()).await;
    let before = s.stats.restarts.load(Ordering::Relaxed);
    s.restarting();
    until(|| stage()["status"] == "restarting").await;
    let v = stage();
    assert_eq!(v["restarts"], 1);
    assert_eq!(v["recent_failures"], 0, "not a failure");
    assert_eq!(health.snapshot_json()["groups"]["search"]["escalations"], 0);
    assert_eq!(s.stats.restarts.load(Ordering::Relaxed), before + 1);
    s.up();
    until(|| stage()["status"] == "running").await;
}

#[actix_rt::test]
async fn failures_expire_with_the_window() {
    let health = Health::started();
    let policy = Policy {
        max_restarts: 1,
        max_escalations: 0,
        window: Duration::from_millis(200),
    };
    let root = Root::start(policy, health.clone());
    let s = StageHandle::new(Some(&root), "kafka", "tree_test_d");
    s.register(None);
    s.failed(&"broker away");
    until(|| health.snapshot_json()["groups"]["kafka"]["state"] == "degraded").await;
    until(|| health.snapshot_json()["groups"]["kafka"]["state"] == "running").await;
    assert!(health.ready().is_ok());
}
