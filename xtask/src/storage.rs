//! `cargo xtask storage [N]`: a prune of a file of `N` records (default 1 000 000) must give back
//! at least 75 % of the space of what it deleted, twice (the older half, then the rest). This is
//! `telemetry-store`'s `prune_space` example, which prints the sizes and exits 1 below the bound;
//! the test suite checks the same on 40 000 records.
//!
//! The example is built with the test profile and the workspace's features, as CI's test step
//! already built it: the step costs no compilation there (a release build compiled the bundled
//! SQLite and every dependency a second time, optimised, for a figure that does not depend on
//! optimisation: the freed pages are the deleted rows' pages).

use std::process::Command;
use std::time::Instant;

use crate::util::{cargo, status, target_dir, workspace_root};

/// Records in the file when no count is given: the 1 M.
const DEFAULT_RECORDS: u64 = 1_000_000;

/// Runs the check; the error says which part failed.
pub fn run(args: &[String]) -> Result<(), String> {
    let records = match args.first() {
        None => DEFAULT_RECORDS,
        Some(n) => n
            .parse::<u64>()
            .map_err(|e| format!("storage: the record count {n:?} is not a number: {e}"))?,
    };
    let root = workspace_root()?;
    status(
        Command::new(cargo()).current_dir(&root).args([
            "build",
            "-q",
            "--workspace",
            "--all-features",
            "--example",
            "prune_space",
        ]),
        "building telemetry-store's prune_space example",
    )?;
    let example = target_dir(&root)
        .join("debug")
        .join("examples")
        .join("prune_space");
    let started = Instant::now();
    status(
        Command::new(&example).arg(records.to_string()),
        &format!("prune_space with {records} records (at least 75 % of the space back)"),
    )?;
    eprintln!(
        "storage: {records} records written and pruned in {:.1?}",
        started.elapsed()
    );
    Ok(())
}
