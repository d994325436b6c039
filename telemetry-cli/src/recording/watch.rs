//! [`StoreWatch`]: says on stderr, while a command records, when the store stops writing.
//!
//! The store reports its failures through `tracing`, which the CLI does not print, and through
//! [`TelemetryStore::health`]. A long `proxy` would otherwise learn of a full disk or a deleted
//! database only at exit. A small thread reads the health every [`WATCH_INTERVAL`] (an atomic
//! load and one `stat` of the database) and prints one line when the writer starts failing,
//! when it recovers, and when it stops for good because its file was deleted or replaced.

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use telemetry_store::{Health, TelemetryStore};

use crate::output::escape_controls;

/// How often the health is read.
pub(crate) const WATCH_INTERVAL: Duration = Duration::from_millis(250);

/// The watching thread; [`stop`](Self::stop) or dropping ends it (and lets its handle of the
/// store go, so that a recording dropped early still closes its store).
#[derive(Debug)]
pub(crate) struct StoreWatch {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl StoreWatch {
    /// Starts watching `store`; `None` (with a line on stderr) if the thread cannot start.
    pub(crate) fn start(store: TelemetryStore) -> Option<StoreWatch> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("telemetry-store-watch".to_owned())
            .spawn(move || {
                let mut said = Said::default();
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(WATCH_INTERVAL) {
                    if let Some(line) = said.update(&store.health()) {
                        eprintln!("telemetry: {}", escape_controls(&line));
                    }
                }
            });
        match thread {
            Ok(thread) => Some(StoreWatch {
                stop: Some(stop),
                thread: Some(thread),
            }),
            Err(e) => {
                eprintln!("telemetry: warning: not watching the store's health (thread: {e})");
                None
            }
        }
    }

    /// Stops the thread (within a moment) and waits for it.
    pub(crate) fn stop(self) {
        drop(self);
    }
}

impl Drop for StoreWatch {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // The thread only reads the health and prints: it does not panic.
            let _ = thread.join();
        }
    }
}

/// What has been said so far, so that each change is said once.
#[derive(Debug, Default)]
struct Said {
    failing: bool,
    stopped: bool,
}

impl Said {
    /// The line to print for `health`, if it is news.
    fn update(&mut self, health: &Health) -> Option<String> {
        match health {
            Health::Stopped { reason } if !self.stopped => {
                self.stopped = true;
                Some(format!("error: {reason}"))
            }
            Health::Failing { last_error, .. } if !self.failing && !self.stopped => {
                self.failing = true;
                Some(format!(
                    "warning: the telemetry store cannot write: {last_error} (records are kept and \
                     retried; new ones are dropped and counted while this lasts)"
                ))
            }
            Health::Healthy if self.failing => {
                self.failing = false;
                Some("the telemetry store writes again".to_owned())
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_change_of_health_is_said_once() {
        let mut said = Said::default();
        assert_eq!(said.update(&Health::Healthy), None);
        let failing = Health::Failing {
            consecutive_failures: 3,
            last_error: "database or disk is full".to_owned(),
        };
        let line = said.update(&failing).unwrap_or_default();
        assert!(
            line.starts_with("warning:") && line.contains("disk is full"),
            "{line}"
        );
        assert_eq!(said.update(&failing), None);
        assert_eq!(
            said.update(&Health::Healthy).as_deref(),
            Some("the telemetry store writes again")
        );
        let stopped = Health::Stopped {
            reason: "/d/t.db was deleted".to_owned(),
        };
        let line = said.update(&stopped).unwrap_or_default();
        assert_eq!(line, "error: /d/t.db was deleted");
        assert_eq!(said.update(&stopped), None);
        assert_eq!(said.update(&failing), None);
    }
}
