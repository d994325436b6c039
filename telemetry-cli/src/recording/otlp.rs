//! OTLP export from the command line: live while recording (`demo`, `run`, `proxy` with
//! `--otlp [URL]`), and the configuration that the backfill of stored records
//! (`export --format otlp`) shares.
//!
//! The endpoint is the URL given, else the standard `OTEL_EXPORTER_OTLP_*` variables, else
//! `http://localhost:4318`; headers, resource and limits come from the variables (see
//! `telemetry_otel::OtlpConfig::from_env`). `service.name` is `telemetry` unless set there.
//!
//! With a GPU sampler (`demo`, `proxy --gpu`), the live export also carries the device-level
//! series (`hw.energy`, `hw.power`, `hw.gpu.utilization`, `hw.gpu.memory.*`): a small thread
//! hands the sampler's newest reading of each device to the exporter a few times per metric
//! interval, and once more when the export finishes.

use std::sync::Arc;

use telemetry_core::EventBus;
use telemetry_gpu::GpuSampler;

use crate::error::CliError;

#[cfg(feature = "otlp")]
use {
    crate::output::count,
    std::sync::mpsc,
    std::thread::JoinHandle,
    std::time::Duration,
    telemetry_otel::{DeviceReading, OtlpConfig, OtlpExporter},
};

/// Records the live exporter holds before dropping new ones, unless `OTEL_BSP_MAX_QUEUE_SIZE`
/// says otherwise: a burst of instant demo calls must not be dropped behind one slow request,
/// and 32 Ki records stay bounded (a few tens of MB at most).
#[cfg(feature = "otlp")]
const LIVE_QUEUE: usize = 32 * 1024;

/// How long `finish` waits for the last export.
#[cfg(feature = "otlp")]
const SHUTDOWN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// The configuration for `--otlp [URL]` / `--endpoint URL`: `url` when given and not empty.
#[cfg(feature = "otlp")]
pub(crate) fn config(url: Option<&str>, flag: &str) -> Result<OtlpConfig, CliError> {
    let usage = |e: telemetry_otel::ConfigError| CliError::Usage(format!("{flag}: {e}"));
    let mut config = OtlpConfig::from_env().map_err(usage)?;
    if let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) {
        config = config.with_endpoint(url).map_err(usage)?;
    }
    if config
        .resource()
        .first()
        .is_some_and(|(_, name)| name.starts_with("unknown_service"))
    {
        config = config.with_service_name("telemetry");
    }
    Ok(config)
}

/// Device readings per metric interval: the exported `hw.*` values are at most a quarter of
/// an interval old.
#[cfg(feature = "otlp")]
const DEVICE_READS_PER_INTERVAL: u32 = 4;

/// Shortest time between two device readings handed to the exporter.
#[cfg(feature = "otlp")]
const MIN_DEVICE_PERIOD: Duration = Duration::from_millis(250);

/// A live OTLP export attached to a bus; see [`LiveExport::start`].
#[derive(Debug)]
pub struct LiveExport {
    #[cfg(feature = "otlp")]
    exporter: Arc<OtlpExporter>,
    /// The thread feeding device readings ([`LiveExport::with_gpu`]).
    #[cfg(feature = "otlp")]
    devices: Option<DeviceFeed>,
}

/// The thread handing a GPU sampler's newest readings to the exporter; dropping `stop` ends it
/// (after one last reading).
#[cfg(feature = "otlp")]
#[derive(Debug)]
struct DeviceFeed {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

/// Hands the newest reading of each of `sampler`'s devices to `exporter` (only enqueues), with
/// the device's newest energy counter value when the newest reading has none: the counter is
/// read once a second and the rest every tick, so the newest reading alone mostly carries no
/// energy, and `hw.energy` went missing whenever no feed fell on a counter tick. Every value is
/// stamped now, as it always was: the sampler's clock may be simulated (`demo`), so its times
/// do not translate into wall time; the counter value is then at most about a second old.
#[cfg(feature = "otlp")]
fn feed_devices(sampler: &GpuSampler, exporter: &OtlpExporter) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let counters = sampler.latest_counter_readings();
    for r in sampler.latest_readings() {
        let energy_mj = r.energy_mj.or_else(|| {
            counters
                .iter()
                .find(|c| c.device == r.device)
                .and_then(|c| c.energy_mj)
        });
        let info = sampler.devices().iter().find(|d| d.index == r.device);
        let id = info
            .map(|d| d.uuid.clone())
            .filter(|uuid| !uuid.is_empty())
            .unwrap_or_else(|| format!("gpu{}", r.device));
        exporter.device_reading(DeviceReading {
            id,
            name: info.map(|d| d.name.clone()).unwrap_or_default(),
            time_unix_s: now,
            energy_joules: energy_mj.map(|mj| mj as f64 / 1000.0),
            power_watts: Some(r.power_w()),
            utilization: r.utilization_pct.map(|pct| f64::from(pct) / 100.0),
            memory_used_bytes: r.memory_used_bytes,
            memory_limit_bytes: info.map(|d| d.memory_total_bytes).filter(|&b| b > 0),
        });
    }
}

impl LiveExport {
    /// With `--otlp` given (`Some(url)`, `url` empty for the default endpoint), starts exporting
    /// every record published on `bus` as spans and metrics; `None` without `--otlp`.
    ///
    /// A bad URL or variable is a usage error (exit 2). A collector that is down is not an
    /// error: records are dropped and counted, and [`LiveExport::finish`] says so.
    pub fn start(otlp: Option<&str>, bus: &EventBus) -> Result<Option<Self>, CliError> {
        let Some(url) = otlp else {
            return Ok(None);
        };
        #[cfg(feature = "otlp")]
        {
            let mut config = config(Some(url), "--otlp")?;
            if std::env::var_os("OTEL_BSP_MAX_QUEUE_SIZE").is_none() {
                config = config.with_queue_capacity(LIVE_QUEUE);
            }
            let exporter = OtlpExporter::start(config).map_err(CliError::OtlpStart)?;
            exporter.subscribe_to_bus(bus);
            Ok(Some(LiveExport {
                exporter: Arc::new(exporter),
                devices: None,
            }))
        }
        #[cfg(not(feature = "otlp"))]
        {
            let _ = (url, bus);
            Err(CliError::Usage(
                "--otlp: this telemetry was built without the `otlp` feature".to_owned(),
            ))
        }
    }

    /// Also exports the device-level series of the GPUs `sampler` reads (`hw.energy`,
    /// `hw.power`, `hw.gpu.utilization`, `hw.gpu.memory.*`, with `hw.id` = the device's UUID,
    /// `hw.type` = `gpu`, `hw.name` = its name): a thread hands the sampler's newest reading of
    /// each device to the exporter at start, a few times per metric interval, and once more at
    /// [`finish`](Self::finish). Reading the sampler's newest values takes one short lock and no
    /// GPU access. Without a sampler (or if the thread cannot start) nothing changes.
    pub fn with_gpu(self, sampler: Option<&Arc<GpuSampler>>) -> Self {
        #[cfg(feature = "otlp")]
        {
            let mut this = self;
            let Some(sampler) = sampler else {
                return this;
            };
            let period = (this.exporter.config().metric_interval() / DEVICE_READS_PER_INTERVAL)
                .max(MIN_DEVICE_PERIOD);
            let (stop, stopped) = mpsc::channel::<()>();
            let exporter = Arc::clone(&this.exporter);
            let sampler = Arc::clone(sampler);
            let thread = std::thread::Builder::new()
                .name("telemetry-otlp-gpu".to_owned())
                .spawn(move || {
                    // Until `stop` is dropped (a timeout means: read again).
                    loop {
                        feed_devices(&sampler, &exporter);
                        if !matches!(
                            stopped.recv_timeout(period),
                            Err(mpsc::RecvTimeoutError::Timeout)
                        ) {
                            break;
                        }
                    }
                    feed_devices(&sampler, &exporter);
                });
            match thread {
                Ok(thread) => this.devices = Some(DeviceFeed { stop, thread }),
                Err(e) => eprintln!("telemetry: --otlp: no GPU series (thread: {e})"),
            }
            this
        }
        #[cfg(not(feature = "otlp"))]
        {
            let _ = sampler;
            self
        }
    }

    /// Sends what is left (within 10 s) and stops; returns one line saying what was sent,
    /// dropped and failed, with the last error if any.
    pub fn finish(self) -> String {
        #[cfg(feature = "otlp")]
        {
            if let Some(feed) = self.devices {
                drop(feed.stop);
                // The thread only reads the sampler and enqueues: it does not panic.
                let _ = feed.thread.join();
            }
            let shutdown = self.exporter.shutdown(SHUTDOWN_DEADLINE);
            let s = self.exporter.stats();
            let mut line = format!(
                "otlp: {} spans sent to {} ({} dropped, {} failed), metrics sent {} time{}",
                count(s.spans_exported),
                self.exporter.config().traces_endpoint(),
                count(s.dropped),
                count(s.spans_failed),
                s.metric_exports,
                if s.metric_exports == 1 { "" } else { "s" },
            );
            if s.calls_folded > 0 {
                line.push_str(&format!(
                    "; {} calls folded into the otel.metric.overflow series (more than {} series per metric)",
                    count(s.calls_folded),
                    self.exporter.config().cardinality_limit(),
                ));
            }
            if let Err(e) = shutdown {
                line.push_str(&format!("; {e}"));
            }
            if let Some(e) = self.exporter.last_error() {
                line.push_str(&format!("; last error: {e}"));
            }
            line.push('\n');
            line
        }
        #[cfg(not(feature = "otlp"))]
        {
            String::new()
        }
    }
}
