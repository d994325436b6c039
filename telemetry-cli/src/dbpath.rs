//! Where the database is: `--db`, else `$TELEMETRY_DB`, else a per-user data directory.

use std::path::{Path, PathBuf};

/// Environment variable naming the database when `--db` is not given.
pub const DB_ENV: &str = "TELEMETRY_DB";

/// Where the database path came from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbOrigin {
    /// The `--db` flag.
    Flag,
    /// The `TELEMETRY_DB` environment variable.
    Env,
    /// The per-user default.
    Default,
}

impl DbOrigin {
    /// How to say it in a message.
    pub fn describe(self) -> &'static str {
        match self {
            DbOrigin::Flag => "from --db",
            DbOrigin::Env => "from $TELEMETRY_DB",
            DbOrigin::Default => "the default location",
        }
    }
}

/// Why the database path cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DbPathError {
    /// A read command was pointed at a database that does not exist; nothing was created.
    #[error(
        "no telemetry database at {} ({}); record some calls first (e.g. `telemetry demo`) or pass --db PATH",
        path.display(),
        origin.describe()
    )]
    MissingDatabase {
        /// The path looked at.
        path: PathBuf,
        /// Where that path came from.
        origin: DbOrigin,
    },
    /// The database path cannot be a database file: it is a directory, or one of its parents is
    /// not a directory.
    #[error("{} cannot be a telemetry database ({}): {reason}", path.display(), origin.describe())]
    BadDatabasePath {
        /// The path.
        path: PathBuf,
        /// Where that path came from.
        origin: DbOrigin,
        /// What is wrong with it.
        reason: String,
    },
    /// Neither `--db`, `$TELEMETRY_DB`, `$XDG_DATA_HOME` nor `$HOME` says where the database is.
    #[error("cannot find a data directory: $HOME is not set; pass --db PATH or set $TELEMETRY_DB")]
    NoDataDir,
}

/// A resolved database path and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbPath {
    /// The file.
    pub path: PathBuf,
    /// Where the path came from.
    pub origin: DbOrigin,
}

impl DbPath {
    /// Resolves from the flag and the process environment.
    pub fn resolve(flag: Option<&Path>) -> Result<DbPath, DbPathError> {
        resolve_with(flag, |name| std::env::var_os(name).map(PathBuf::from))
    }

    /// Errors with [`DbPathError::MissingDatabase`] unless the file exists, and with
    /// [`DbPathError::BadDatabasePath`] when the path is a directory or under a file (creates
    /// nothing).
    pub fn require_existing(&self) -> Result<&Path, DbPathError> {
        if self.path.is_file() {
            return Ok(&self.path);
        }
        let bad = |reason: String| DbPathError::BadDatabasePath {
            path: self.path.clone(),
            origin: self.origin,
            reason,
        };
        if self.path.is_dir() {
            return Err(bad("it is a directory, not a database file".to_owned()));
        }
        // "a/t.db" where "a" is a file: the nearest existing ancestor is not a directory.
        if let Some(blocker) = self
            .path
            .ancestors()
            .skip(1)
            .filter(|p| !p.as_os_str().is_empty())
            .find(|p| p.symlink_metadata().is_ok())
            .filter(|p| !p.is_dir())
        {
            return Err(bad(format!("{} is not a directory", blocker.display())));
        }
        Err(DbPathError::MissingDatabase {
            path: self.path.clone(),
            origin: self.origin,
        })
    }
}

/// [`DbPath::resolve`] with an injectable environment (for tests). Empty variables count as
/// unset; a relative `XDG_DATA_HOME` is ignored, as the XDG spec says.
pub fn resolve_with(
    flag: Option<&Path>,
    env: impl Fn(&str) -> Option<PathBuf>,
) -> Result<DbPath, DbPathError> {
    let set = |name: &str| env(name).filter(|p| !p.as_os_str().is_empty());
    if let Some(path) = flag {
        return Ok(DbPath {
            path: path.to_path_buf(),
            origin: DbOrigin::Flag,
        });
    }
    if let Some(path) = set(DB_ENV) {
        return Ok(DbPath {
            path,
            origin: DbOrigin::Env,
        });
    }
    let data_dir = match set("XDG_DATA_HOME").filter(|p| p.is_absolute()) {
        Some(dir) => dir,
        None => set("HOME")
            .ok_or(DbPathError::NoDataDir)?
            .join(".local")
            .join("share"),
    };
    Ok(DbPath {
        path: data_dir.join("telemetry").join("telemetry.db"),
        origin: DbOrigin::Default,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<PathBuf> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| PathBuf::from(v))
        }
    }

    #[test]
    fn flag_beats_env_beats_default() {
        let env = env_of(&[("TELEMETRY_DB", "/env.db"), ("HOME", "/home/u")]);
        let got = resolve_with(Some(Path::new("/flag.db")), &env).unwrap();
        assert_eq!(got.path, PathBuf::from("/flag.db"));
        assert_eq!(got.origin, DbOrigin::Flag);
        let got = resolve_with(None, &env).unwrap();
        assert_eq!(got.path, PathBuf::from("/env.db"));
        assert_eq!(got.origin, DbOrigin::Env);
    }

    #[test]
    fn default_uses_xdg_data_home_then_home() {
        let got = resolve_with(None, env_of(&[("XDG_DATA_HOME", "/xdg"), ("HOME", "/h")])).unwrap();
        assert_eq!(got.path, PathBuf::from("/xdg/telemetry/telemetry.db"));
        assert_eq!(got.origin, DbOrigin::Default);
        let got = resolve_with(None, env_of(&[("HOME", "/h")])).unwrap();
        assert_eq!(
            got.path,
            PathBuf::from("/h/.local/share/telemetry/telemetry.db")
        );
    }

    #[test]
    fn empty_or_relative_variables_are_ignored() {
        let env = env_of(&[
            ("TELEMETRY_DB", ""),
            ("XDG_DATA_HOME", "relative"),
            ("HOME", "/h"),
        ]);
        let got = resolve_with(None, env).unwrap();
        assert_eq!(
            got.path,
            PathBuf::from("/h/.local/share/telemetry/telemetry.db")
        );
    }

    #[test]
    fn no_home_is_an_error() {
        assert!(matches!(
            resolve_with(None, env_of(&[])),
            Err(DbPathError::NoDataDir)
        ));
    }

    #[test]
    fn missing_file_is_reported_with_its_origin() {
        let db = DbPath {
            path: PathBuf::from("/definitely/not/here.db"),
            origin: DbOrigin::Env,
        };
        let err = crate::error::CliError::from(db.require_existing().unwrap_err());
        assert_eq!(err.exit_code(), 2);
        let msg = err.to_string();
        assert!(
            msg.contains("/definitely/not/here.db") && msg.contains("TELEMETRY_DB"),
            "{msg}"
        );
    }
}
