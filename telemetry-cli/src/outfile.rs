//! Files written by `export -o` and `report -o`.
//!
//! - Never the database or one of its side files (`-wal`, `-shm`, `-journal`): the output path is
//!   compared with them as canonical paths (symlinks, `..` and relative paths resolved, dangling
//!   symlinks followed by name) and by device and inode (hard links).
//! - Written to a temporary file (mode 0600) in the target's directory and renamed over the target
//!   only once complete, so a failed write leaves no partial file and an old file stays as it was.
//!   Through a symlink, the file it points to is replaced, not the link.
//! - An existing target that is not a regular file (a FIFO, `/dev/stdout`) is written in place.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::CliError;

/// The side files SQLite keeps next to a database, with how to name them in a message.
const SIDE_FILES: [(&str, &str); 4] = [
    ("", "the telemetry database"),
    ("-wal", "the write-ahead log of the telemetry database"),
    ("-shm", "the shared-memory index of the telemetry database"),
    ("-journal", "the rollback journal of the telemetry database"),
];

/// Symlinks followed at most when resolving a path by name (Linux's own limit is 40).
const MAX_LINKS: usize = 40;

/// An output file being written; call [`commit`](OutputFile::commit) once complete. Dropped
/// without a commit, the temporary file is removed and the target is left as it was.
pub struct OutputFile {
    target: PathBuf,
    inner: Inner,
}

enum Inner {
    /// A temporary file renamed over the target on commit.
    Atomic(tempfile::NamedTempFile),
    /// A FIFO or device, written in place.
    Direct(File),
}

impl OutputFile {
    /// Refuses `output` when it is the database `db` or one of its side files, then creates the
    /// temporary file it is written to.
    pub fn create(db: &Path, output: &Path) -> Result<OutputFile, CliError> {
        refuse_database(db, output)?;
        let io = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| CliError::Io {
                action,
                path,
                source,
            }
        };
        // Follows symlinks: a FIFO or a device (or a link to one) is written in place.
        if let Ok(meta) = std::fs::metadata(output) {
            if meta.is_dir() {
                return Err(CliError::Usage(format!(
                    "cannot write to {}: it is a directory",
                    output.display()
                )));
            }
            if !meta.is_file() {
                let file = OpenOptions::new()
                    .write(true)
                    .open(output)
                    .map_err(io("opening", output))?;
                return Ok(OutputFile {
                    target: output.to_path_buf(),
                    inner: Inner::Direct(file),
                });
            }
        }
        let target = resolve_names(output)
            .pop()
            .unwrap_or_else(|| output.to_path_buf());
        let name = target
            .file_name()
            .ok_or_else(|| CliError::Usage(format!("{} is not a file name", output.display())))?;
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut prefix = std::ffi::OsString::from(".");
        prefix.push(name);
        prefix.push(".");
        // A missing directory is reported as the OS says it, without the temporary name.
        std::fs::metadata(&dir).map_err(io("creating", output))?;
        // tempfile creates the file with mode 0600 and removes it when dropped.
        let temp = tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(".tmp")
            .tempfile_in(&dir)
            .map_err(io("creating", output))?;
        Ok(OutputFile {
            target,
            inner: Inner::Atomic(temp),
        })
    }

    /// The file to write to.
    pub fn file(&mut self) -> &mut File {
        match &mut self.inner {
            Inner::Atomic(temp) => temp.as_file_mut(),
            Inner::Direct(file) => file,
        }
    }

    /// Flushes the data to disk and renames the temporary file over the target.
    pub fn commit(self) -> Result<(), CliError> {
        let target = self.target;
        let failed = |action: &'static str| {
            let path = target.clone();
            move |source| CliError::Io {
                action,
                path,
                source,
            }
        };
        match self.inner {
            Inner::Direct(mut file) => file.flush().map_err(failed("writing")),
            Inner::Atomic(temp) => {
                temp.as_file().sync_all().map_err(failed("writing"))?;
                temp.persist(&target)
                    .map(drop)
                    .map_err(|e| failed("renaming the finished file to")(e.error))
            }
        }
    }
}

/// Errors with [`CliError::OutputIsDatabase`] when writing `output` would touch the database `db`
/// or one of its side files.
pub fn refuse_database(db: &Path, output: &Path) -> Result<(), CliError> {
    let mut bases = vec![absolute(db)];
    if let Ok(canonical) = std::fs::canonicalize(db) {
        bases.push(canonical);
    }
    let protected: Vec<(PathBuf, &str)> = bases
        .iter()
        .flat_map(|base| {
            SIDE_FILES.iter().map(move |(suffix, what)| {
                let mut name = base.clone().into_os_string();
                name.push(suffix);
                (PathBuf::from(name), *what)
            })
        })
        .collect();
    let refuse = |what: &str| CliError::OutputIsDatabase {
        output: output.to_path_buf(),
        db: db.to_path_buf(),
        what: what.to_owned(),
    };
    for name in resolve_names(output) {
        if let Some((_, what)) = protected.iter().find(|(p, _)| *p == name) {
            return Err(refuse(what));
        }
    }
    // Hard links (and anything else naming the same file): same device and inode.
    if let Ok(meta) = std::fs::metadata(output) {
        for (path, what) in &protected {
            if std::fs::metadata(path).is_ok_and(|m| same_file(&m, &meta)) {
                return Err(refuse(what));
            }
        }
    }
    Ok(())
}

/// Every name `path` goes through on the way to the file it designates: the path with its
/// directory canonicalized, then each symlink's target the same way (dangling links included).
/// The last one is where a write lands.
fn resolve_names(path: &Path) -> Vec<PathBuf> {
    let mut names = Vec::new();
    let mut current = absolute(path);
    for _ in 0..MAX_LINKS {
        let full = match (current.parent(), current.file_name()) {
            (Some(parent), Some(name)) => std::fs::canonicalize(parent)
                .map(|p| p.join(name))
                .unwrap_or_else(|_| current.clone()),
            _ => std::fs::canonicalize(&current).unwrap_or_else(|_| current.clone()),
        };
        names.push(full.clone());
        match std::fs::read_link(&full) {
            Ok(target) => {
                current = match full.parent() {
                    Some(parent) if target.is_relative() => parent.join(target),
                    _ => target,
                };
            }
            Err(_) => break,
        }
    }
    names
}

/// `path` made absolute against the current directory (lexically; `..` kept for the
/// canonicalization of the directory to resolve).
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(_: &std::fs::Metadata, _: &std::fs::Metadata) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_and_its_side_files_are_refused_by_any_name() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        std::fs::write(&db, b"db").unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        for name in [
            "x.db",
            "x.db-wal",
            "x.db-shm",
            "x.db-journal",
            "sub/../x.db",
        ] {
            let err = refuse_database(&db, &dir.path().join(name)).unwrap_err();
            assert!(matches!(err, CliError::OutputIsDatabase { .. }), "{name}");
        }
        #[cfg(unix)]
        {
            let link = dir.path().join("link");
            std::os::unix::fs::symlink("x.db", &link).unwrap();
            assert!(refuse_database(&db, &link).is_err());
            // A dangling link to the (absent) WAL.
            let dangling = sub.join("wal-link");
            std::os::unix::fs::symlink("../x.db-wal", &dangling).unwrap();
            assert!(refuse_database(&db, &dangling).is_err());
            let hard = dir.path().join("hard");
            std::fs::hard_link(&db, &hard).unwrap();
            assert!(refuse_database(&db, &hard).is_err());
        }
        assert!(refuse_database(&db, &dir.path().join("x.db.json")).is_ok());
        assert!(refuse_database(&db, &sub.join("x.db")).is_ok());
    }

    #[test]
    fn an_uncommitted_file_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        let target = dir.path().join("out.json");
        std::fs::write(&target, b"old").unwrap();
        let mut out = OutputFile::create(&db, &target).unwrap();
        out.file().write_all(b"new, partial").unwrap();
        drop(out);
        assert_eq!(std::fs::read(&target).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let mut out = OutputFile::create(&db, &target).unwrap();
        out.file().write_all(b"new").unwrap();
        out.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
    }
}
