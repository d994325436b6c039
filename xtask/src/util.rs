//! What every task needs: where the workspace and its builds are, the cargo to run, running a
//! command to its end, a free loopback port, the tail of a log.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The cargo that runs xtask (`$CARGO`), else `cargo` from `PATH`.
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// Whether this runs on CI (`CI=true`), where a check that cannot run is a failure.
pub fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The workspace root: the parent of this crate's manifest directory.
pub fn workspace_root() -> Result<PathBuf, String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| format!("{} has no parent", manifest.display()))
}

/// Where cargo puts its builds: `$CARGO_TARGET_DIR` (relative to `root`) or `root/target`.
pub fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), |dir| root.join(dir))
}

/// Runs `cmd` to the end; an error names `what` unless it exits 0.
pub fn status(cmd: &mut Command, what: &str) -> Result<(), String> {
    let status = cmd
        .status()
        .map_err(|e| format!("could not start {what}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

/// Builds the `telemetry` binary (debug, as both the Chromium and the Prometheus steps use it,
/// so CI builds it once) and returns its path under `target`.
pub fn build_telemetry(target: &Path) -> Result<PathBuf, String> {
    status(
        Command::new(cargo()).args(["build", "-p", "telemetry-cli", "--bins"]),
        "building telemetry",
    )?;
    Ok(target.join("debug").join("telemetry"))
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The last 15 lines of the file at `path` (empty when it cannot be read).
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Whether an executable `name` is on `PATH`.
pub fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(name).is_file()))
}

/// Installs Debian `packages` with apt-get (from the package lists as they are, then once more
/// after `apt-get update`); whether apt-get said it succeeded.
pub fn apt_install(packages: &[&str]) -> bool {
    if !on_path("apt-get") {
        return false;
    }
    let install = format!(
        "DEBIAN_FRONTEND=noninteractive apt-get -o APT::Sandbox::User=root install -y -q --no-install-recommends {}",
        packages.join(" ")
    );
    [install.clone(), format!("apt-get update -q && {install}")]
        .iter()
        .any(|script| {
            Command::new("sh")
                .args(["-c", script])
                .status()
                .is_ok_and(|s| s.success())
        })
}
