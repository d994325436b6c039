//! [`GpuReading`]: one reading of one device, as a [`GpuBackend`](crate::GpuBackend) returns it.

use crate::Timestamp;

/// One reading of one device, taken at `timestamp`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GpuReading {
    /// Device index.
    pub device: u32,
    /// When the reading was taken, on the sampler's clock.
    pub timestamp: Timestamp,
    /// Cumulative energy counter, millijoules (`None` where unsupported). It refreshes on its own
    /// period (~100 ms on an H100), so consecutive readings may repeat a value.
    pub energy_mj: Option<u64>,
    /// Power, milliwatts, as the driver reports it (an average over up to 1 s on Ampere+).
    pub power_mw: u32,
    /// Instantaneous power, milliwatts, where available (NVML field `POWER_INSTANT`).
    pub instant_power_mw: Option<u32>,
    /// GPU utilization, percent (0–100); `None` where the device does not report it (MIG
    /// instances and some datacenter parts answer NotSupported) or the read failed.
    pub utilization_pct: Option<u32>,
    /// Memory in use, bytes; `None` where it could not be read.
    pub memory_used_bytes: Option<u64>,
    /// Temperature, degrees Celsius; `None` where it could not be read.
    pub temperature_c: Option<u32>,
}

impl GpuReading {
    /// The power to integrate: the instantaneous power when present, else the averaged one, in
    /// watts.
    pub fn power_w(&self) -> f64 {
        f64::from(self.instant_power_mw.unwrap_or(self.power_mw)) / 1000.0
    }
}
