//! [`FileWatch`]: whether the database file the writer has open is still the one at its path.
//!
//! SQLite keeps writing through its open file descriptor when the file is deleted (`rm`) or
//! another file is moved over it (`mv`): the first writes into an inode nobody can reach any
//! more, the second leaves the path's `-wal`/`-shm` files, which SQLite finds by name, shared by
//! two different databases, so readers of the new file see the old one's pages. Neither is
//! visible to SQLite's own error codes. The writer therefore compares, around every write
//! transaction, the identity (device and inode) of the file it opened with the path's: two
//! `stat` calls per batch, a few microseconds against a commit's milliseconds.
//!
//! The identity is taken right after SQLite opened the file and checked its schema, from the
//! path resolved as SQLite resolves it (symbolic links followed). A file swapped in that instant,
//! before the first write, cannot be told apart; everything later is.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// What became of the database file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FileChange {
    /// Nothing is at the path any more (the file, or a directory above it, was deleted or
    /// renamed).
    Deleted,
    /// Another file is at the path.
    Replaced,
}

impl FileChange {
    /// One phrase for errors and health: "deleted or moved away" / "replaced by another file".
    pub(crate) fn describe(&self) -> &'static str {
        match self {
            FileChange::Deleted => "deleted or moved away",
            FileChange::Replaced => "replaced by another file",
        }
    }
}

/// The identity of the open database file and the path it was opened at.
#[derive(Debug, Clone)]
pub(crate) struct FileWatch {
    path: PathBuf,
    opened: Option<Identity>,
}

/// Device and inode: what tells two files apart on unix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    device: u64,
    inode: u64,
}

impl FileWatch {
    /// Watches the file now at `path` (just opened by SQLite). A path that cannot be resolved
    /// or read gives a watch that never reports a change: the store then works as before
    /// rather than refusing to open.
    pub(crate) fn new(path: &Path) -> FileWatch {
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let opened = identity(&path).ok().flatten();
        FileWatch { path, opened }
    }

    /// `Some` once the file at the path is no longer the one opened. A path that cannot be
    /// read for another reason (permissions of a parent directory changed) is not taken as a
    /// change: the writer then finds out from SQLite, whose file descriptor still works.
    pub(crate) fn changed(&self) -> Option<FileChange> {
        let opened = self.opened?;
        match identity(&self.path) {
            Ok(Some(now)) if now == opened => None,
            Ok(Some(_)) => Some(FileChange::Replaced),
            Ok(None) => Some(FileChange::Deleted),
            Err(_) => None,
        }
    }
}

/// The identity of the file at `path`; `None` when nothing is there (or a parent is no longer
/// a directory).
#[cfg(unix)]
fn identity(path: &Path) -> std::io::Result<Option<Identity>> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some(Identity {
            device: m.dev(),
            inode: m.ino(),
        })),
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Elsewhere an open database file cannot be deleted or replaced (Windows refuses while SQLite
/// holds it open), so there is nothing to watch.
#[cfg(not(unix))]
fn identity(_path: &Path) -> std::io::Result<Option<Identity>> {
    Err(std::io::Error::from(ErrorKind::Unsupported))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_watch_sees_the_same_file_a_deleted_one_and_a_replaced_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        std::fs::write(&path, b"one").unwrap();
        let watch = FileWatch::new(&path);
        assert_eq!(watch.changed(), None);
        // Rewriting in place keeps the file.
        std::fs::write(&path, b"two").unwrap();
        assert_eq!(watch.changed(), None);

        let other = dir.path().join("other.db");
        std::fs::write(&other, b"other").unwrap();
        std::fs::rename(&other, &path).unwrap();
        assert_eq!(watch.changed(), Some(FileChange::Replaced));

        std::fs::remove_file(&path).unwrap();
        assert_eq!(watch.changed(), Some(FileChange::Deleted));
    }

    #[test]
    fn a_directory_moved_away_leaves_nothing_at_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("data");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("t.db"), b"one").unwrap();
        let watch = FileWatch::new(&sub.join("t.db"));
        std::fs::rename(&sub, dir.path().join("elsewhere")).unwrap();
        assert_eq!(watch.changed(), Some(FileChange::Deleted));
    }

    #[test]
    fn a_path_that_cannot_be_read_at_open_is_never_reported() {
        let watch = FileWatch::new(Path::new("/nonexistent/telemetry-identity/t.db"));
        assert_eq!(watch.changed(), None);
    }
}
