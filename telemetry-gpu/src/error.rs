//! Errors of `telemetry-gpu`.

use crate::Timestamp;

/// What went wrong talking to a GPU or using the sampler. Each variant is something a caller can
/// act on: fall back to no energy (`Unavailable`), skip a metric (`NotSupported`), drop a device
/// (`DeviceLost`), or fix the arguments (`InvalidWindow`, `InvalidWeight`, `InvalidConfig`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum GpuError {
    /// The backend cannot be used at all: no driver, no `libnvidia-ml`, or initialization failed.
    #[error("GPU backend unavailable: {reason}")]
    Unavailable {
        /// Why, as the driver or loader said it.
        reason: String,
    },
    /// The device does not support this query (e.g. the energy counter before Volta).
    #[error("GPU {device} does not support {what}")]
    NotSupported {
        /// Device index.
        device: u32,
        /// The query, e.g. `"total energy counter"`.
        what: &'static str,
    },
    /// The device fell off the bus or stopped answering; its readings stop.
    #[error("GPU {device} was lost (fell off the bus or stopped answering)")]
    DeviceLost {
        /// Device index.
        device: u32,
    },
    /// A device index that the backend does not have.
    #[error("no GPU with index {index}: the backend has {count} device(s)")]
    NoSuchDevice {
        /// The index asked for.
        index: u32,
        /// How many devices there are.
        count: u32,
    },
    /// The backend found no device to sample.
    #[error("the GPU backend reports no devices")]
    NoDevices,
    /// One query failed for another reason (driver error, timeout).
    #[error("reading {what} from GPU {device} failed: {reason}")]
    ReadFailed {
        /// Device index.
        device: u32,
        /// The query.
        what: &'static str,
        /// The driver's message.
        reason: String,
    },
    /// A window whose end is before its start.
    #[error("window {index} ends at {end} before it starts at {start}")]
    InvalidWindow {
        /// Position of the window in the list given.
        index: usize,
        /// Its start.
        start: Timestamp,
        /// Its end.
        end: Timestamp,
    },
    /// A weight that is not a finite number greater than zero.
    #[error("weight {index} must be a finite number greater than 0, got {weight}")]
    InvalidWeight {
        /// Position of the weight.
        index: usize,
        /// The value given.
        weight: f64,
    },
    /// `weights` and `windows` have different lengths.
    #[error("{weights} weights given for {windows} windows")]
    WeightsLength {
        /// Number of windows.
        windows: usize,
        /// Number of weights.
        weights: usize,
    },
    /// A configuration value that cannot work.
    #[error("invalid sampler configuration `{field}`: {reason}")]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// The timeline holds no sample yet, so nothing can be estimated.
    #[error("the GPU timeline holds no samples yet")]
    NoData,
    /// The sampler thread could not be started.
    #[error("could not start the GPU sampler thread: {reason}")]
    ThreadSpawn {
        /// The OS error.
        reason: String,
    },
}
