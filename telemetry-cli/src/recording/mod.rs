//! One way to start recording and one way to finish it, for every command that records
//! (`demo`, `run`, `proxy`).
//!
//! [`Recording::builder`] opens the store, subscribes it to a new bus, chooses and starts the
//! GPU source ([`gpu::choose`]), starts the live OTLP export (`--otlp`, with the GPU's device
//! series) and loads the price table (`--prices`). The command then builds its engines or proxy
//! on [`Recording::bus`] and makes its calls; [`Recording::finish`] flushes the store, finishes
//! the OTLP export and closes the store, and the [`Finished`] recording prints the usual summary
//! line and stats table.
//!
//! ```text
//! let recording = Recording::builder(&db.path)
//!     .gpu(args.gpu, CallClock::Real, AutoFallback::Off)
//!     .otlp(args.otlp.as_deref())
//!     .start()?;
//! // ... engines publish on recording.bus ...
//! engine.flush(); // records still waiting for GPU energy
//! let mut finished = recording.finish();
//! ```

pub(crate) mod gpu;
pub(crate) mod otlp;
mod watch;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use telemetry_agg::TelemetryAggregator;
use telemetry_core::{EventBus, TimeRange};
use telemetry_gpu::GpuSampler;
use telemetry_store::{OverflowPolicy, Retention, StoreError, StoreStats, TelemetryStore};
use telemetry_wrap::PriceTable;

use crate::cli::{GpuChoice, StatsGroup};
use crate::emit::emit;
use crate::error::CliError;
use crate::output::{self, count};
use crate::present::render;
use crate::timearg::{format_duration, format_time, now_unix};
pub(crate) use gpu::{AutoFallback, CallClock, GpuSource};
use otlp::LiveExport;
use watch::StoreWatch;

/// What a recording is started with; see [`Recording::builder`].
#[derive(Debug)]
#[must_use]
pub(crate) struct RecordingBuilder<'a> {
    db: &'a Path,
    overflow: Option<OverflowPolicy>,
    gpu: Option<(GpuChoice, CallClock, AutoFallback)>,
    otlp: Option<&'a str>,
    prices: Option<&'a Path>,
    retain: Option<Duration>,
}

impl<'a> RecordingBuilder<'a> {
    /// A store that cannot keep up drops (and counts) new records instead of making callers
    /// wait (`proxy`: the bus hands each record to the store on the proxy's own thread).
    #[cfg_attr(not(feature = "proxy"), allow(dead_code))]
    pub(crate) fn drop_when_full(mut self) -> Self {
        self.overflow = Some(OverflowPolicy::DropNewest);
        self
    }

    /// GPU energy from `choice` (`--gpu`) for calls on `clock`; without this, none.
    pub(crate) fn gpu(
        mut self,
        choice: GpuChoice,
        clock: CallClock,
        fallback: AutoFallback,
    ) -> Self {
        self.gpu = Some((choice, clock, fallback));
        self
    }

    /// `--otlp [URL]`: `Some("")` for the default endpoint, `None` for no export.
    pub(crate) fn otlp(mut self, url: Option<&'a str>) -> Self {
        self.otlp = url;
        self
    }

    /// `--retain DURATION`: the store deletes older records in the background.
    pub(crate) fn retain(mut self, window: Option<Duration>) -> Self {
        self.retain = window;
        self
    }

    /// `--prices FILE`: the price table, loaded at [`start`](Self::start).
    #[cfg_attr(not(feature = "proxy"), allow(dead_code))]
    pub(crate) fn prices(mut self, path: Option<&'a Path>) -> Self {
        self.prices = path;
        self
    }

    /// Loads the prices, starts the GPU source, opens the store, subscribes it to a new bus and
    /// starts the OTLP export, in that order. A bad price file or `--otlp` URL is a usage error.
    pub(crate) fn start(self) -> Result<Recording, CliError> {
        let prices = match self.prices {
            Some(path) => Some(
                PriceTable::from_path(path)
                    .map_err(|e| CliError::Usage(format!("--prices {}: {e}", path.display())))?,
            ),
            None => None,
        };
        let gpu = match self.gpu {
            Some((choice, clock, fallback)) => gpu::choose(choice, clock, fallback)?,
            None => GpuSource::none(),
        };
        let mut store = TelemetryStore::builder(self.db);
        if let Some(policy) = self.overflow {
            store = store.overflow(policy);
        }
        if let Some(window) = self.retain {
            store = store.retention(Retention::new(window));
        }
        let store = store.open()?;
        let bus = Arc::new(EventBus::new());
        store.subscribe_to_bus(&bus);
        let otlp = LiveExport::start(self.otlp, &bus)?.map(|o| o.with_gpu(gpu.sampler.as_ref()));
        let watch = StoreWatch::start(store.clone());
        Ok(Recording {
            watch,
            store,
            bus,
            gpu,
            prices,
            otlp,
            run_id: new_run_id(),
            started: Instant::now(),
            started_wall: now_unix(),
        })
    }
}

/// A recording in progress: the store, the bus it listens to, the GPU source and the prices.
pub(crate) struct Recording {
    /// The store, subscribed to [`bus`](Self::bus).
    pub store: TelemetryStore,
    /// Where engines and the proxy publish their records.
    pub bus: Arc<EventBus>,
    /// The GPU source (no sampler when energy is off).
    pub gpu: GpuSource,
    /// The `--prices` table, if one was given.
    #[cfg_attr(not(feature = "proxy"), allow(dead_code))]
    pub prices: Option<PriceTable>,
    otlp: Option<LiveExport>,
    /// Says on stderr when the store fails or stops while recording.
    watch: Option<StoreWatch>,
    /// Put in the metadata of every record of this recording ([`RUN_ID_KEY`]), so that its
    /// table shows its own calls, not those of another recording of the same seconds.
    pub run_id: String,
    started: Instant,
    started_wall: f64,
}

/// The metadata key of the recording's id in each record `demo` and `run` make.
pub(crate) const RUN_ID_KEY: &str = "telemetry.run_id";

/// 16 random hex digits (std's per-process random hash keys, mixed with the clock).
fn new_run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::hash::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{:016x}", h.finish())
}

impl Recording {
    /// A recording into the database at `db`, without GPU, OTLP or prices until asked for.
    pub(crate) fn builder(db: &Path) -> RecordingBuilder<'_> {
        RecordingBuilder {
            db,
            overflow: None,
            gpu: None,
            otlp: None,
            prices: None,
            retain: None,
        }
    }

    /// The GPU sampler to attach to engines, if any.
    #[cfg_attr(not(feature = "proxy"), allow(dead_code))]
    pub(crate) fn sampler(&self) -> Option<&Arc<GpuSampler>> {
        self.gpu.sampler.as_ref()
    }

    /// Flushes the store (everything published so far: flush engines waiting for GPU energy
    /// first), finishes the OTLP export (within 10 s) and closes the store. A store failure is
    /// kept in the [`Finished`] recording, so the summary can still be printed. The counts are
    /// read once the store is closed: what it could not write by then (a full disk, its file
    /// deleted) is counted in [`StoreStats::lost`], none is left pending.
    pub(crate) fn finish(self) -> Finished {
        if let Some(watch) = self.watch {
            watch.stop();
        }
        let flushed = self.store.flush();
        let otlp_line = self.otlp.map(LiveExport::finish);
        let closed = self.store.close();
        let stats = self.store.stats();
        Finished {
            stats,
            otlp_line,
            elapsed: self.started.elapsed(),
            run_id: self.run_id,
            started_wall: self.started_wall,
            ended_wall: now_unix(),
            store_error: flushed.and(closed).err(),
        }
    }
}

/// A finished recording: what the store wrote and what the OTLP export sent.
#[derive(Debug)]
pub(crate) struct Finished {
    /// The store's counters at the end.
    pub stats: StoreStats,
    /// The OTLP export's summary line (with its newline), with `--otlp`.
    pub otlp_line: Option<String>,
    /// From the start of the recording to its end.
    pub elapsed: Duration,
    run_id: String,
    started_wall: f64,
    ended_wall: f64,
    store_error: Option<StoreError>,
}

impl Finished {
    /// The first failure of the final flush or close, if any (once), with what the store wrote,
    /// dropped and could not write.
    pub(crate) fn store_result(&mut self) -> Result<(), CliError> {
        match self.store_error.take() {
            Some(source) => Err(CliError::RecordingIncomplete {
                source,
                written: self.stats.written,
                dropped: self.stats.dropped + self.stats.rejected,
                lost: self.stats.lost,
            }),
            None => Ok(()),
        }
    }

    /// `N records written, M dropped` (with how many of those were accepted but never written:
    /// pending at exit on a full disk, or held when the database file went).
    #[cfg_attr(not(feature = "proxy"), allow(dead_code))]
    pub(crate) fn written_and_dropped(&self) -> String {
        let s = &self.stats;
        let mut text = format!(
            "{} records written, {} dropped",
            count(s.written),
            count(s.dropped + s.rejected)
        );
        if s.lost > 0 {
            text.push_str(&format!(
                " ({} of them accepted but never written)",
                count(s.lost)
            ));
        }
        text
    }

    /// `recorded N calls (F failed) into DB in S s`, with its newline.
    pub(crate) fn summary_line(&self, failed: u64, db: &Path) -> String {
        format!(
            "recorded {} calls ({} failed) into {} in {:.2} s\n",
            count(self.stats.written),
            count(failed),
            output::path(db),
            self.elapsed.as_secs_f64(),
        )
    }

    /// What the retention window did (`--retain`), with its newline; `None` without one.
    pub(crate) fn retention_line(&self) -> Option<String> {
        retention_line(&self.stats)
    }

    /// The records of this recording lie from `since` on (the demo's simulated span starts
    /// before the recording did).
    pub(crate) fn records_since(&mut self, since: f64) {
        self.started_wall = self.started_wall.min(since);
    }

    /// The stats table of this recording's own calls: the records of its time span that carry
    /// its run id (another recording of the same seconds is left out).
    pub(crate) fn print_stats(&self, db: &Path, out: &mut dyn Write) -> Result<(), CliError> {
        let agg = TelemetryAggregator::open(db)?;
        let range = TimeRange::new(
            Some(self.started_wall.floor()),
            Some(self.ended_wall.ceil() + 1.0),
        )?;
        let stats = agg.summary_matching(&range, |r| {
            r.metadata.get(RUN_ID_KEY).and_then(|v| v.as_str()) == Some(self.run_id.as_str())
        })?;
        emit(out, &render(&stats, &range, StatsGroup::Model))
    }
}

/// `retention 30d: deleted N records older than T in P passes, gave back X` (with its
/// newline), from a store's counters; `None` when it has no retention window.
pub(crate) fn retention_line(stats: &StoreStats) -> Option<String> {
    let retention = stats.retention.as_ref()?;
    let cutoff = retention.last_cutoff.map_or_else(
        || "(no pass finished)".to_owned(),
        |c| format_time(c as f64),
    );
    let error = retention
        .last_error
        .as_deref()
        .map_or_else(String::new, |e| format!("; last pass failed: {e}"));
    Some(format!(
        "retention {}: deleted {} records older than {} in {} passes, gave back {} \
         (longest step {:.1} ms){error}\n",
        format_duration(retention.window),
        count(stats.pruned),
        cutoff,
        count(retention.passes),
        output::bytes(stats.reclaimed_bytes),
        stats.longest_prune_step.as_secs_f64() * 1e3,
    ))
}
