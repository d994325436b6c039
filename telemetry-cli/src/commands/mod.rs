//! One file (or folder) per command; [`run()`] dispatches. Commands do not import each other:
//! what several share lives beside this folder (`recording`, `read`, `present`, `emit`, ...).

mod check;
mod compact;
mod demo;
mod export;
mod import;
#[cfg(feature = "proxy")]
mod proxy;
pub(crate) mod report;
mod retention;
mod run;
mod series;
mod serve;
mod stats;

use crate::cli::{Cli, Command};
use crate::dbpath::DbPath;
use crate::error::CliError;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    let db = DbPath::resolve(cli.db.as_deref())?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match cli.command {
        Command::Stats(args) => stats::run(&db, &args, &mut out),
        Command::Series(args) => series::run(&db, &args, &mut out),
        Command::Report(args) => report::run(&db, &args, &mut out),
        Command::Export(args) => export::run(&db, &args, &mut out),
        Command::Check(args) => check::run(&db, &args, &mut out),
        Command::Prune(args) => retention::prune(&db, &args, &mut out),
        Command::Clear(args) => retention::clear(&db, &args, &mut out),
        Command::Compact(args) => compact::run(&db, &args, &mut out),
        Command::ImportOpenjarvis(args) => import::run(&db, &args, &mut out),
        Command::Demo(args) => demo::run(&db, &args, &mut out),
        Command::Run(args) => run::run(&db, &args, &mut out),
        Command::Serve(args) => serve::run(&db, &args, &mut out),
        #[cfg(feature = "proxy")]
        Command::Proxy(args) => proxy::run(&db, &args, &mut out),
    }
}
