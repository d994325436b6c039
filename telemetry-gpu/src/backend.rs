//! The [`GpuBackend`] trait and what it returns: [`DeviceInfo`] and [`GpuReading`].

use crate::{Clock, GpuError, Timestamp};

/// One GPU as the backend sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Index in the backend's enumeration (NVML index).
    pub index: u32,
    /// Marketing name, e.g. `"NVIDIA H100 80GB HBM3"`.
    pub name: String,
    /// Stable identifier, e.g. `"GPU-5f3c..."`.
    pub uuid: String,
    /// Total memory, bytes.
    pub memory_total_bytes: u64,
    /// Whether the cumulative energy counter can be read (NVML: Volta and later).
    pub energy_counter_supported: bool,
}

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

/// A source of GPU readings: NVML (`NvmlBackend`, feature `nvml`) or the
/// scripted `MockBackend` (feature `mock`).
///
/// The [`GpuSampler`](crate::GpuSampler) owns the backend on its thread; nothing on a caller's
/// hot path ever calls it.
pub trait GpuBackend: Send {
    /// Vendor name stored in records: `"nvidia"`, `"mock"`.
    fn vendor(&self) -> &'static str;

    /// The devices, in index order.
    ///
    /// # Errors
    /// [`GpuError::Unavailable`] if the driver stopped answering, or a device-specific error.
    fn devices(&self) -> Result<Vec<DeviceInfo>, GpuError>;

    /// Takes one reading of device `index`, stamping it with `clock`.
    ///
    /// # Errors
    /// [`GpuError::NoSuchDevice`], [`GpuError::DeviceLost`], [`GpuError::ReadFailed`] or
    /// [`GpuError::NotSupported`] when even power cannot be read. A failed utilization, memory or
    /// temperature read is not an error: that field is `None` and the power and counter are kept.
    fn read(&mut self, index: u32, clock: &dyn Clock) -> Result<GpuReading, GpuError>;

    /// Like [`read`](Self::read) without the energy counter (`energy_mj` is `None`): what the
    /// sampler takes on the ticks between counter reads
    /// ([`SamplerConfig::counter_interval`](crate::SamplerConfig::counter_interval)), since the
    /// counter is the expensive read (milliseconds of driver CPU on an H200, against microseconds
    /// for power, utilization, memory and temperature). The default reads everything and drops
    /// the counter; backends override it to skip the cost.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    fn read_without_counter(
        &mut self,
        index: u32,
        clock: &dyn Clock,
    ) -> Result<GpuReading, GpuError> {
        let mut reading = self.read(index, clock)?;
        reading.energy_mj = None;
        Ok(reading)
    }
}

impl<B: GpuBackend + ?Sized> GpuBackend for Box<B> {
    fn vendor(&self) -> &'static str {
        (**self).vendor()
    }

    fn devices(&self) -> Result<Vec<DeviceInfo>, GpuError> {
        (**self).devices()
    }

    fn read(&mut self, index: u32, clock: &dyn Clock) -> Result<GpuReading, GpuError> {
        (**self).read(index, clock)
    }

    fn read_without_counter(
        &mut self,
        index: u32,
        clock: &dyn Clock,
    ) -> Result<GpuReading, GpuError> {
        (**self).read_without_counter(index, clock)
    }
}
