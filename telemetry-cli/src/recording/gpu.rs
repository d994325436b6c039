//! Where a recording gets GPU energy: real NVML, the mock GPU on the real clock, the mock GPU on
//! a virtual clock that instant calls advance (`demo` without `--realtime`), or nothing. Chosen
//! here once for every command that records.

use std::sync::Arc;
use std::time::Duration;

use telemetry_gpu::{
    GpuSampler, MockBackend, MockClock, PowerProfile, SamplerConfig, SystemClock, Timestamp,
};

use crate::cli::GpuChoice;
use crate::error::GpuSetupError;
use crate::output::escape_controls;

/// The clock the recorded calls run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallClock {
    /// Calls take real time (`run`, `proxy`, `demo --realtime`).
    Real,
    /// Calls take no real time; their synthetic durations advance a virtual clock (`demo`).
    Simulated,
}

/// What `--gpu auto` uses when no NVIDIA GPU is usable on the real clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoFallback {
    /// The mock GPU, with a note on stderr saying why (`demo`: energy shows in a demo).
    Mock,
    /// No energy, said in the description (`proxy`: no invented joules in real records).
    #[cfg_attr(not(feature = "proxy"), allow(dead_code))]
    Off,
}

/// The GPU source chosen for a recording.
pub struct GpuSource {
    /// The sampler to attach to the engine, if any.
    pub sampler: Option<Arc<GpuSampler>>,
    /// For instant mode with the mock: the virtual clock the engine advances by each call's
    /// synthetic duration, so energy follows the simulated timeline.
    pub virtual_clock: Option<MockClock>,
    /// One line saying where the numbers come from.
    pub description: String,
    /// A note for stderr (e.g. why `auto` fell back to the mock).
    pub note: Option<String>,
}

impl GpuSource {
    /// No GPU source: energy is not recorded.
    pub fn none() -> Self {
        off("off (no energy recorded)".to_string())
    }
}

/// Timeline kept for the simulated clock: longer than the slowest simulated call.
const VIRTUAL_HISTORY: Duration = Duration::from_secs(35);

/// Lowest and highest power of the mock GPU's trace, watts.
const MOCK_POWER_RANGE: (f64, f64) = (180.0, 690.0);

/// Chooses and starts the GPU source for calls on `clock`; `auto` on the real clock falls back
/// as `fallback` says.
pub fn choose(
    choice: GpuChoice,
    clock: CallClock,
    fallback: AutoFallback,
) -> Result<GpuSource, GpuSetupError> {
    let realtime = clock == CallClock::Real;
    match choice {
        GpuChoice::Off => Ok(GpuSource::none()),
        GpuChoice::Mock => mock(realtime, None),
        GpuChoice::Nvml if !realtime => Err(GpuSetupError::NvmlNeedsRealTime),
        GpuChoice::Nvml => nvml(),
        GpuChoice::Auto if !realtime => mock(
            false,
            Some("instant mode: calls take no real time, so energy comes from the mock GPU on the simulated clock (use --realtime to measure a real GPU)".to_string()),
        ),
        GpuChoice::Auto => match (nvml(), fallback) {
            (Ok(source), _) => Ok(source),
            (Err(why), AutoFallback::Mock) => mock(
                true,
                Some(format!("no usable NVIDIA GPU ({why}); using the mock GPU")),
            ),
            (Err(why), AutoFallback::Off) => Ok(off(format!(
                "off (no usable NVIDIA GPU: {})",
                escape_controls(&why.to_string())
            ))),
        },
    }
}

/// No GPU source.
fn off(description: String) -> GpuSource {
    GpuSource {
        sampler: None,
        virtual_clock: None,
        description,
        note: None,
    }
}

#[cfg(feature = "nvml")]
fn nvml() -> Result<GpuSource, GpuSetupError> {
    let backend = telemetry_gpu::NvmlBackend::new().map_err(GpuSetupError::Nvml)?;
    let sampler = GpuSampler::new(backend).map_err(GpuSetupError::Nvml)?;
    let names: Vec<String> = sampler
        .devices()
        .iter()
        .map(|d| format!("{} #{}", d.name, d.index))
        .collect();
    Ok(GpuSource {
        sampler: Some(Arc::new(sampler)),
        virtual_clock: None,
        description: format!(
            "NVML, sampled every 100 ms: {} (energy shared among overlapping calls)",
            names.join(", ")
        ),
        note: None,
    })
}

#[cfg(not(feature = "nvml"))]
fn nvml() -> Result<GpuSource, GpuSetupError> {
    Err(GpuSetupError::NoNvmlSupport)
}

fn mock(realtime: bool, note: Option<String>) -> Result<GpuSource, GpuSetupError> {
    let backend = MockBackend::single(power_trace());
    let (lo, hi) = MOCK_POWER_RANGE;
    let gpu_err = GpuSetupError::Mock;
    if realtime {
        let sampler = GpuSampler::with_config(
            backend,
            Arc::new(SystemClock::new()),
            SamplerConfig::default(),
        )
        .map_err(gpu_err)?;
        return Ok(GpuSource {
            sampler: Some(Arc::new(sampler)),
            virtual_clock: None,
            description: format!(
                "mock GPU (\"Mock H100\", scripted {lo:.0}–{hi:.0} W power trace, sampled every 100 ms on the real clock)"
            ),
            note,
        });
    }
    let clock = MockClock::new();
    // Calls take turns on the simulated clock, which is sampled every interval as it advances,
    // so windows complete within a call or two: a short history keeps each completion cheap.
    let config = SamplerConfig {
        manual: true,
        history: VIRTUAL_HISTORY,
        ..SamplerConfig::default()
    };
    let sampler =
        GpuSampler::with_config(backend, Arc::new(clock.clone()), config).map_err(gpu_err)?;
    Ok(GpuSource {
        sampler: Some(Arc::new(sampler)),
        virtual_clock: Some(clock),
        description: format!(
            "mock GPU (\"Mock H100\", scripted {lo:.0}–{hi:.0} W power trace on the simulated clock, calls take turns on it; not a measurement)"
        ),
        note,
    })
}

/// Spacing of the mock power trace's points.
const TRACE_STEP_S: u64 = 20;
/// Length of the mock power trace; the last power holds after it. The mock backend scans the
/// trace on every read, so it is kept short: 3 h covers the default demo's simulated time.
const TRACE_LENGTH_S: u64 = 3 * 3_600;

/// A plausible, deterministic power trace: a point every few seconds, wandering between the
/// bounds of [`MOCK_POWER_RANGE`] like a busy inference GPU.
fn power_trace() -> PowerProfile {
    let (lo, hi) = MOCK_POWER_RANGE;
    let mid = (lo + hi) / 2.0;
    let amp = (hi - lo) / 2.0;
    let points = (0..=TRACE_LENGTH_S)
        .step_by(TRACE_STEP_S as usize)
        .map(|s| {
            let t = s as f64;
            let wave = 0.6 * (t / 300.0).sin() + 0.3 * (t / 71.0).sin() + 0.1 * (t / 29.0).cos();
            (
                Timestamp::from_duration(Duration::from_secs(s)),
                mid + amp * wave,
            )
        })
        .collect();
    PowerProfile::Trace(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_stays_within_its_range() {
        let trace = power_trace();
        let (lo, hi) = MOCK_POWER_RANGE;
        for s in (0..TRACE_LENGTH_S + 100).step_by(97) {
            let p = trace.power_at(Timestamp::from_duration(Duration::from_millis(s * 1_003)));
            assert!((lo..=hi).contains(&p), "{p} W at {s}");
        }
    }

    const INSTANT: CallClock = CallClock::Simulated;

    #[test]
    fn nvml_in_instant_mode_is_a_usage_error() {
        let err = choose(GpuChoice::Nvml, INSTANT, AutoFallback::Mock)
            .err()
            .unwrap();
        let err = crate::error::CliError::from(err);
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--realtime"));
    }

    #[test]
    fn auto_in_instant_mode_uses_the_virtual_mock() {
        let source = choose(GpuChoice::Auto, INSTANT, AutoFallback::Mock).unwrap();
        assert!(source.virtual_clock.is_some() && source.sampler.is_some());
        assert!(source.description.contains("mock"));
        assert!(source.note.unwrap().contains("instant mode"));
        let off = choose(GpuChoice::Off, INSTANT, AutoFallback::Mock).unwrap();
        assert!(off.sampler.is_none());
    }
}
