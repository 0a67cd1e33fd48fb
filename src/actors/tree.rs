//! The supervision tree. [`Root`] is an actor that owns the groups
//! (ingest, pipeline, storage, kafka, search, query); every long-running
//! stage registers under its group with a [`StageHandle`] and reports its
//! failures and recoveries. A stage restarts itself with its own
//! [`Backoff`](crate::backoff::Backoff) (actix's `Supervisor`, or the loop
//! of an actor that owns a thread); when one keeps failing — more than
//! `max_restarts` failures within `window` — it escalates to its group,
//! and the root restarts every restartable stage of that group together
//! (as Quickwit restarts a whole indexing pipeline). A group that keeps
//! escalating is `failed`: /readyz answers 503 naming it, until it has
//! been quiet for a window.
//!
//! What the root decides is published in a [`Health`] view that /readyz,
//! /metrics and /api/admin/actors read without messaging the root.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use parking_lot::RwLock;
use serde_json::{json, Value};

use crate::metrics::{ActorStats, Counter, Gauge};

/// The groups, in data-flow order.
pub const GROUPS: [&str; 6] = ["ingest", "pipeline", "storage", "kafka", "search", "query"];

/// When a stage escalates and when a group is failed.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// Failures of one stage within `window` beyond which it escalates.
    pub max_restarts: usize,
    /// Escalations of one group within `window` beyond which it is failed.
    pub max_escalations: usize,
    pub window: Duration,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            max_restarts: 5,
            max_escalations: 2,
            window: Duration::from_secs(60),
        }
    }
}

/// Sent to a stage by the root when its group restarts: stop and let the
/// stage's own supervisor start it afresh.
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "()")]
pub struct RestartStage;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StageStatus {
    Running,
    Restarting,
    Stopped,
}

impl StageStatus {
    fn name(self) -> &'static str {
        match self {
            StageStatus::Running => "running",
            StageStatus::Restarting => "restarting",
            StageStatus::Stopped => "stopped",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupState {
    Running,
    /// A stage failed within the last window.
    Degraded,
    /// The group escalated more than the policy allows within a window.
    Failed,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Running => "running",
            GroupState::Degraded => "degraded",
            GroupState::Failed => "failed",
        }
    }
}

/// Command: add a stage under a group.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RegisterStage {
    pub group: &'static str,
    pub stage: String,
    pub restart: Option<Recipient<RestartStage>>,
}

/// Event: a stage failed and is restarting (or stopped for good).
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct StageFailed {
    pub group: &'static str,
    pub stage: String,
    pub error: String,
}

/// Event: a stage is running (again).
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct StageUp {
    pub group: &'static str,
    pub stage: String,
}

/// Event: a stage is restarting on its group's order ([`RestartStage`]):
/// counted with its restarts, not as a failure.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct StageRestarted {
    pub group: &'static str,
    pub stage: String,
}

/// Event: a stage ended for good (shutdown).
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct StageStopped {
    pub group: &'static str,
    pub stage: String,
}

struct Stage {
    status: StageStatus,
    failures: VecDeque<Instant>,
    restarts: u64,
    last_error: String,
    restart: Option<Recipient<RestartStage>>,
}

struct Group {
    stages: BTreeMap<String, Stage>,
    escalations: VecDeque<Instant>,
    escalations_total: u64,
    state: GroupState,
    last_failure: Option<Instant>,
}

impl Group {
    fn new() -> Group {
        Group {
            stages: BTreeMap::new(),
            escalations: VecDeque::new(),
            escalations_total: 0,
            state: GroupState::Running,
            last_failure: None,
        }
    }
}

/// The supervision tree's root actor.
pub struct Root {
    groups: BTreeMap<&'static str, Group>,
    policy: Policy,
    health: Health,
}

impl Root {
    /// Starts the root on the current arbiter and returns it with the
    /// health view it publishes.
    pub fn start(policy: Policy, health: Health) -> Addr<Root> {
        let mut groups = BTreeMap::new();
        for g in GROUPS {
            groups.insert(g, Group::new());
        }
        Root {
            groups,
            policy,
            health,
        }
        .start()
    }

    fn group(&mut self, name: &'static str) -> &mut Group {
        self.groups.entry(name).or_insert_with(Group::new)
    }

    /// Drops failures older than the window and settles group states.
    fn settle(&mut self, now: Instant) {
        let window = self.policy.window;
        for (name, g) in &mut self.groups {
            for s in g.stages.values_mut() {
                while s.failures.front().is_some_and(|t| now - *t > window) {
                    s.failures.pop_front();
                }
            }
            while g.escalations.front().is_some_and(|t| now - *t > window) {
                g.escalations.pop_front();
            }
            let quiet = g.last_failure.is_none_or(|t| now - t > window);
            // Failed stays failed until a quiet window has passed.
            let failing = g.escalations.len() > self.policy.max_escalations;
            let next = if failing || (g.state == GroupState::Failed && !quiet) {
                GroupState::Failed
            } else if !quiet {
                GroupState::Degraded
            } else {
                GroupState::Running
            };
            if next != g.state {
                match next {
                    GroupState::Failed => {
                        tracing::error!(group = name, "group failed: it keeps escalating")
                    }
                    _ => tracing::info!(group = name, state = next.name(), "group state"),
                }
                g.state = next;
            }
        }
        self.publish();
    }

    fn escalate(&mut self, group: &'static str, stage: &str, now: Instant) {
        let g = self.group(group);
        g.escalations.push_back(now);
        g.escalations_total += 1;
        tracing::warn!(
            group,
            stage,
            "stage keeps failing; restarting its whole group"
        );
        Counter::new(
            "strand_group_escalations_total",
            "times a stage kept failing and its group was restarted",
            &[("group", group)],
        )
        .inc();
        for s in g.stages.values_mut() {
            // The escalating stage's failures are forgiven with the restart.
            s.failures.clear();
            if let Some(r) = &s.restart {
                r.do_send(RestartStage);
            }
        }
    }

    fn publish(&self) {
        let mut snap = TreeSnapshot::default();
        for (name, g) in &self.groups {
            Gauge::new(
                "strand_group_state",
                "supervision group state: 0 running, 1 degraded, 2 failed",
                &[("group", name)],
            )
            .set(g.state as u64);
            if g.state == GroupState::Failed {
                snap.failed.push(name.to_string());
            }
            let stages: serde_json::Map<String, Value> = g
                .stages
                .iter()
                .map(|(sname, s)| {
                    let stats = ActorStats::get(sname);
                    let v = json!({
                        "status": s.status.name(),
                        "restarts": s.restarts,
                        "recent_failures": s.failures.len(),
                        "last_error": s.last_error,
                        "queue_depth": stats.queue_depth.load(Ordering::Relaxed),
                        "messages_in": stats.messages_in.load(Ordering::Relaxed),
                        "messages_out": stats.messages_out.load(Ordering::Relaxed),
                    });
                    (sname.clone(), v)
                })
                .collect();
            if stages.is_empty() {
                continue;
            }
            snap.groups.insert(
                name.to_string(),
                json!({
                    "state": g.state.name(),
                    "escalations": g.escalations_total,
                    "stages": stages,
                }),
            );
        }
        *self.health.tree.write() = snap;
    }
}

impl Actor for Root {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.publish();
        // Failure windows expire with time, not only with new events.
        ctx.run_interval(Duration::from_secs(1), |act, _| act.settle(Instant::now()));
    }
}

impl Handler<RegisterStage> for Root {
    type Result = ();

    fn handle(&mut self, m: RegisterStage, _: &mut Context<Self>) {
        self.group(m.group).stages.insert(
            m.stage,
            Stage {
                status: StageStatus::Running,
                failures: VecDeque::new(),
                restarts: 0,
                last_error: String::new(),
                restart: m.restart,
            },
        );
        self.publish();
    }
}

impl Handler<StageFailed> for Root {
    type Result = ();

    fn handle(&mut self, m: StageFailed, _: &mut Context<Self>) {
        let now = Instant::now();
        let max = self.policy.max_restarts;
        let g = self.group(m.group);
        g.last_failure = Some(now);
        let s = g.stages.entry(m.stage.clone()).or_insert_with(|| Stage {
            status: StageStatus::Restarting,
            failures: VecDeque::new(),
            restarts: 0,
            last_error: String::new(),
            restart: None,
        });
        s.status = StageStatus::Restarting;
        s.restarts += 1;
        s.failures.push_back(now);
        s.last_error = m.error;
        if s.failures.len() > max {
            self.escalate(m.group, &m.stage, now);
        }
        self.settle(now);
    }
}

impl Handler<StageUp> for Root {
    type Result = ();

    fn handle(&mut self, m: StageUp, _: &mut Context<Self>) {
        if let Some(s) = self.group(m.group).stages.get_mut(&m.stage) {
            s.status = StageStatus::Running;
        }
        self.publish();
    }
}

impl Handler<StageRestarted> for Root {
    type Result = ();

    fn handle(&mut self, m: StageRestarted, _: &mut Context<Self>) {
        if let Some(s) = self.group(m.group).stages.get_mut(&m.stage) {
            s.status = StageStatus::Restarting;
            s.restarts += 1;
        }
        self.publish();
    }
}

impl Handler<StageStopped> for Root {
    type Result = ();

    fn handle(&mut self, m: StageStopped, _: &mut Context<Self>) {
        if let Some(s) = self.group(m.group).stages.get_mut(&m.stage) {
            s.status = StageStatus::Stopped;
        }
        self.publish();
    }
}

/// What the root last published.
#[derive(Clone, Debug, Default)]
pub struct TreeSnapshot {
    pub groups: BTreeMap<String, Value>,
    pub failed: Vec<String>,
}

/// Readiness and the tree's state, shared with the HTTP handlers.
#[derive(Clone, Default)]
pub struct Health {
    started: Arc<AtomicBool>,
    tree: Arc<RwLock<TreeSnapshot>>,
}

impl Health {
    /// A view that is already started (tests and embedded servers).
    pub fn started() -> Health {
        let h = Health::default();
        h.set_started(true);
        h
    }

    pub fn set_started(&self, v: bool) {
        self.started.store(v, Ordering::SeqCst);
    }

    /// Ok when start-up finished and no group is failed; otherwise why not.
    pub fn ready(&self) -> Result<(), String> {
        if !self.started.load(Ordering::Acquire) {
            return Err("starting".into());
        }
        let t = self.tree.read();
        if t.failed.is_empty() {
            Ok(())
        } else {
            Err(format!("failed groups: {}", t.failed.join(", ")))
        }
    }

    /// `{"groups": {...}, "actors": {...}}` for /api/admin/actors.
    pub fn snapshot_json(&self) -> Value {
        let groups: serde_json::Map<String, Value> =
            self.tree.read().groups.clone().into_iter().collect();
        json!({ "groups": groups, "actors": ActorStats::snapshot_json() })
    }
}

/// A stage's link to the tree: reports failures and recoveries, and
/// counts restarts in the stage's `ActorStats` (shown at /metrics).
#[derive(Clone)]
pub struct StageHandle {
    root: Option<Addr<Root>>,
    pub group: &'static str,
    pub name: String,
    pub stats: Arc<ActorStats>,
}

impl StageHandle {
    /// A stage `name` of `group`; without a root (unit tests of a single
    /// stage) it only counts into the stage's `ActorStats`.
    pub fn new(root: Option<&Addr<Root>>, group: &'static str, name: impl Into<String>) -> Self {
        let name = name.into();
        StageHandle {
            root: root.cloned(),
            group,
            stats: ActorStats::get(&name),
            name,
        }
    }

    /// Lists the stage in the tree. `restart` receives [`RestartStage`]
    /// when the group restarts; stages that cannot be restarted in place
    /// (listeners) pass `None`.
    pub fn register(&self, restart: Option<Recipient<RestartStage>>) {
        if let Some(r) = &self.root {
            r.do_send(RegisterStage {
                group: self.group,
                stage: self.name.clone(),
                restart,
            });
        }
    }

    /// The stage failed and is restarting: counted, reported, escalated
    /// by the root if it keeps happening.
    pub fn failed(&self, error: &dyn std::fmt::Display) {
        let error = error.to_string();
        self.stats.restarts.fetch_add(1, Ordering::Relaxed);
        self.stats.record_error(&error);
        if let Some(r) = &self.root {
            r.do_send(StageFailed {
                group: self.group,
                stage: self.name.clone(),
                error,
            });
        }
    }

    /// The stage is restarting because its group restarts
    /// ([`RestartStage`]): counted like any restart, but not a failure, so
    /// it cannot escalate the group again. It shows `restarting` until the
    /// stage reports [`Self::up`].
    pub fn restarting(&self) {
        self.stats.restarts.fetch_add(1, Ordering::Relaxed);
        if let Some(r) = &self.root {
            r.do_send(StageRestarted {
                group: self.group,
                stage: self.name.clone(),
            });
        }
    }

    pub fn up(&self) {
        if let Some(r) = &self.root {
            r.do_send(StageUp {
                group: self.group,
                stage: self.name.clone(),
            });
        }
    }

    pub fn stopped(&self) {
        if let Some(r) = &self.root {
            r.do_send(StageStopped {
                group: self.group,
                stage: self.name.clone(),
            });
        }
    }
}

#[cfg(test)]
#[path = "tree_tests.rs"]
mod tests;
