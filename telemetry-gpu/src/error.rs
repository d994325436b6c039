//! Errors of `telemetry-gpu`: [`GpuError`] for setting up and using the sampler, and
//! [`BackendError`] for what a backend query can return.

use crate::Timestamp;

/// What went wrong setting up a backend or a sampler, or using the sampler. Each variant is
/// something a caller can act on: fall back to no energy (`Unavailable`, `NoDevices`, `Backend`),
/// or fix the arguments (`NoSuchDevice`, `InvalidWindow`, `InvalidWeight`, `InvalidConfig`).
/// A failing read while sampling is not an error of any call: the sampler counts it and keeps the
/// latest in [`SamplerStats::last_error`](crate::SamplerStats::last_error) as a [`BackendError`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum GpuError {
    /// The backend cannot be used at all: no driver, no `libnvidia-ml`, or initialization failed.
    #[error("GPU backend unavailable: {reason}")]
    Unavailable {
        /// Why, as the driver or loader said it.
        reason: String,
    },
    /// A device selected in the configuration that the backend does not have.
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
    /// The backend could not describe its devices (while a backend was being set up, or a
    /// sampler was listing its devices).
    #[error(transparent)]
    Backend(BackendError),
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

/// What a [`GpuBackend`](crate::GpuBackend) query (listing devices, reading one) can fail with:
/// the device or the driver, never the caller's configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The driver stopped answering or cannot be used at all.
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
}

impl From<BackendError> for GpuError {
    /// An unavailable driver is [`GpuError::Unavailable`] whichever step found it, so that one
    /// match covers "no GPU here"; every other backend error is [`GpuError::Backend`].
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::Unavailable { reason } => GpuError::Unavailable { reason },
            other => GpuError::Backend(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unavailable_driver_is_one_setup_error_whichever_step_found_it() {
        let reason = "driver not loaded".to_owned();
        assert_eq!(
            GpuError::from(BackendError::Unavailable {
                reason: reason.clone()
            }),
            GpuError::Unavailable { reason }
        );
        let lost = BackendError::DeviceLost { device: 3 };
        let wrapped = GpuError::from(lost.clone());
        assert_eq!(wrapped, GpuError::Backend(lost.clone()));
        assert_eq!(wrapped.to_string(), lost.to_string());
    }
}
