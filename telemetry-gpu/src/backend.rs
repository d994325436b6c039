//! The [`GpuBackend`] trait and the [`DeviceInfo`] it lists; its readings are [`GpuReading`]s.

use crate::{BackendError, Clock, GpuReading};

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
    /// [`BackendError::Unavailable`] if the driver stopped answering, or a device-specific error.
    fn devices(&self) -> Result<Vec<DeviceInfo>, BackendError>;

    /// Takes one reading of device `index`, stamping it with `clock`.
    ///
    /// # Errors
    /// [`BackendError::NoSuchDevice`], [`BackendError::DeviceLost`],
    /// [`BackendError::Unavailable`], [`BackendError::ReadFailed`] or
    /// [`BackendError::NotSupported`] when even power cannot be read. A failed utilization, memory or
    /// temperature read is not an error: that field is `None` and the power and counter are kept.
    fn read(&mut self, index: u32, clock: &dyn Clock) -> Result<GpuReading, BackendError>;

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
    ) -> Result<GpuReading, BackendError> {
        let mut reading = self.read(index, clock)?;
        reading.energy_mj = None;
        Ok(reading)
    }
}

impl<B: GpuBackend + ?Sized> GpuBackend for Box<B> {
    fn vendor(&self) -> &'static str {
        (**self).vendor()
    }

    fn devices(&self) -> Result<Vec<DeviceInfo>, BackendError> {
        (**self).devices()
    }

    fn read(&mut self, index: u32, clock: &dyn Clock) -> Result<GpuReading, BackendError> {
        (**self).read(index, clock)
    }

    fn read_without_counter(
        &mut self,
        index: u32,
        clock: &dyn Clock,
    ) -> Result<GpuReading, BackendError> {
        (**self).read_without_counter(index, clock)
    }
}
