//! `devstash run`: a module runs with its marked calls answered from the cache or computed and
//! stored.

use std::sync::Arc;

use anyhow::Result;

use crate::engine::ModuleCache;
use crate::flags::{GlobalArgs, RunArgs};
use crate::home::Home;
use crate::host::{Budget, StashHost};
use crate::python::Program;
use crate::runtime;
use crate::store::disk::DiskTier;
use crate::team;

/// Runs `devstash run`.
pub fn run(global: &GlobalArgs, args: &RunArgs) -> Result<i32> {
    let home = Home::open()?;
    tracing::info!(
        "cache: {}; per-user directory: {}",
        global.cache_dir.display(),
        home.path().display()
    );
    let tier = DiskTier::new(&global.cache_dir, home.signer());
    if !args.cache.no_cache {
        tier.prefetch();
    }
    args.cache.check_refresh_spelling(args.module.module()?)?;
    let program = Program::resolve(&home, args.module.module()?, args.module.sandbox()?)?;
    let limits = args.module.limits.limits();
    let wasi = program.sandbox.builder(&home)?.build_p1();
    let modules = ModuleCache::new(&home)?;
    let prepared = runtime::prepare(&program.module, program.kind, &limits, Some(&modules))?;
    let tier = if args.cache.no_cache {
        Box::new(tier) as Box<dyn crate::store::Tier>
    } else {
        team::tier(tier, &args.cache.remote.choice())?
    };
    let stash = StashHost::new(tier, args.cache.policy(&args.net)?)
        .with_net(args.net.policy()?)
        .with_secret_keys(home.keys().secrets, home.keys().headers)
        .with_writer(prepared.hash)
        .with_budget(Arc::new(Budget::new(limits.max_memory)));
    let outcome = runtime::execute(&prepared, wasi, stash)?;
    runtime::finish(&outcome, global.quiet, args.cache.no_cache);
    Ok(outcome.exit.code())
}
