//! Test support (feature `testing`): [`Tmpfs`], a real small disk that fills up, for tests of
//! what a store (or a program on it) does when the disk is full.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of a given size mounted on a directory for the length of a test, unmounted when
/// dropped. Mounting needs root: without it, [`mount_or_skip`](Self::mount_or_skip) says on
/// stderr that the test is skipped and why that is acceptable.
///
/// ```no_run
/// use telemetry_store::testing::Tmpfs;
///
/// let dir = tempfile::tempdir()?;
/// let Some(disk) = Tmpfs::mount_or_skip(dir.path(), "1m", "the locked-file test covers it")
/// else {
///     return Ok(());
/// };
/// let store = telemetry_store::TelemetryStore::open(disk.path().join("t.db"))?;
/// // ... record until the 1 MiB disk is full ...
/// # drop(store);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`mount`'s `size=` option: `"512k"`, `"1m"`) on the existing
    /// directory `dir`; `None` when that fails (not root, no `mount` command).
    pub fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }

    /// [`mount`](Self::mount), or `None` after one line on stderr saying that the test is
    /// skipped because no tmpfs can be mounted here (it needs root), and what covers the logic
    /// meanwhile (`covered_by`).
    pub fn mount_or_skip(dir: &Path, size: &str, covered_by: &str) -> Option<Tmpfs> {
        let mounted = Tmpfs::mount(dir, size);
        if mounted.is_none() {
            eprintln!("skipped: cannot mount a tmpfs here (needs root); {covered_by}");
        }
        mounted
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
