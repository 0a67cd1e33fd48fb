//! The `sampling_strategies` stage (group `pipeline`): polls the
//! strategies file's modification time and reloads it on change. A bad
//! file is logged and counted by the store and leaves the previous
//! strategies in force; it is not a failure of the stage (restarting would
//! not fix the file), so the tree is not told.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::store::Store;
use crate::actors::tree::{RestartStage, Root, StageHandle};

struct Reloader {
    store: Arc<Store>,
    every: Duration,
    stage: StageHandle,
    /// The last error reported, so a file that stays bad (or missing) is
    /// logged once, not on every poll.
    last: Option<String>,
}

impl Reloader {
    fn tick(&mut self) {
        match self.store.reload_if_changed() {
            Ok(_) => self.last = None,
            Err(e) if self.last.as_ref() == Some(&e) => {}
            Err(e) => self.last = Some(e),
        }
    }
}

impl Actor for Reloader {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.stage.up();
        ctx.run_interval(self.every, |act, _| act.tick());
    }
}

impl Supervised for Reloader {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.stage.up();
    }
}

impl Handler<RestartStage> for Reloader {
    type Result = ();

    fn handle(&mut self, _: RestartStage, ctx: &mut Context<Self>) {
        self.stage.restarting();
        ctx.stop();
    }
}

/// Starts the reloader on its own arbiter (file reads block it only).
pub fn start(store: Arc<Store>, every: Duration, root: Option<&Addr<Root>>) {
    let stage = StageHandle::new(root, "pipeline", "sampling_strategies");
    let arbiter = Arbiter::new();
    arbiter.spawn_fn(|| crate::actors::name_thread("sampling-strategies"));
    let act = Reloader {
        store,
        every,
        stage: stage.clone(),
        last: None,
    };
    let addr = Supervisor::start_in_arbiter(&arbiter.handle(), move |_| act);
    stage.register(Some(addr.recipient()));
}
