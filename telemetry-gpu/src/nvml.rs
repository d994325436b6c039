//! [`NvmlBackend`]: NVIDIA GPUs through NVML (feature `nvml`).
//!
//! `libnvidia-ml` is loaded at run time, so a machine without the driver gets
//! [`GpuError::Unavailable`] from [`NvmlBackend::new`], not a link error or a panic.

use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::struct_wrappers::device::FieldValueSample;
use nvml_wrapper::structs::device::FieldId;
use nvml_wrapper::sys_exports::field_id::NVML_FI_DEV_POWER_INSTANT;

use crate::{BackendError, Clock, DeviceInfo, GpuBackend, GpuError, GpuReading, Timestamp};

/// NVIDIA GPUs through NVML. Initializes NVML once; each [`read`](GpuBackend::read) costs about
/// 3.5 ms (p99 21 ms, measured on an H200) when the energy counter is read, mostly driver CPU;
/// power, utilization, memory and temperature cost microseconds, which is what
/// [`read_without_counter`](GpuBackend::read_without_counter) reads. Only the
/// [`GpuSampler`](crate::GpuSampler) thread calls it, and it reads the counter only every
/// [`SamplerConfig::counter_interval`](crate::SamplerConfig::counter_interval).
///
/// The energy counter is read on devices that support it (Volta and later); elsewhere readings
/// carry power only and energy comes from power integration. Instantaneous power
/// (`NVML_FI_DEV_POWER_INSTANT`) is read where the driver has it, since the plain power reading is
/// a one-second average on Ampere and later.
#[cfg_attr(docsrs, doc(cfg(feature = "nvml")))]
pub struct NvmlBackend {
    nvml: Nvml,
    devices: Vec<DeviceInfo>,
    instant_power: Vec<bool>,
}

impl std::fmt::Debug for NvmlBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NvmlBackend")
            .field("devices", &self.devices)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: &NvmlError) -> BackendError {
    BackendError::Unavailable {
        reason: e.to_string(),
    }
}

/// Maps an NVML error on `device` during `what` to the error a caller can act on.
fn map_err(device: u32, what: &'static str, e: NvmlError) -> BackendError {
    match e {
        NvmlError::NotSupported => BackendError::NotSupported { device, what },
        NvmlError::GpuLost => BackendError::DeviceLost { device },
        NvmlError::DriverNotLoaded
        | NvmlError::LibraryNotFound
        | NvmlError::Uninitialized
        | NvmlError::LibloadingError(_)
        | NvmlError::FailedToLoadSymbol(_) => unavailable(&e),
        other => BackendError::ReadFailed {
            device,
            what,
            reason: other.to_string(),
        },
    }
}

/// A side reading (utilization, memory, temperature): its value, or `None` when the device does
/// not give it (NotSupported, a transient failure). Only a lost device or driver fails the whole
/// reading, since then the power and counter of the same tick are gone too.
fn optional<T>(
    device: u32,
    what: &'static str,
    result: Result<T, NvmlError>,
) -> Result<Option<T>, BackendError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) => match map_err(device, what, e) {
            lost @ (BackendError::DeviceLost { .. } | BackendError::Unavailable { .. }) => {
                Err(lost)
            }
            other => {
                tracing::debug!(error = %other, "GPU side reading skipped; power and energy kept");
                Ok(None)
            }
        },
    }
}

impl NvmlBackend {
    /// Loads and initializes NVML and lists the devices, probing which support the energy counter
    /// and instantaneous power.
    ///
    /// # Errors
    /// [`GpuError::Unavailable`] without a driver or `libnvidia-ml`; [`GpuError::NoDevices`] when
    /// NVML lists none; [`GpuError::Backend`] if a device cannot be described.
    pub fn new() -> Result<Self, GpuError> {
        let nvml = Nvml::init().map_err(|e| unavailable(&e))?;
        let count = nvml.device_count().map_err(|e| unavailable(&e))?;
        let mut devices = Vec::new();
        let mut instant_power = Vec::new();
        for index in 0..count {
            let device = nvml
                .device_by_index(index)
                .map_err(|e| map_err(index, "device handle", e))?;
            let name = device.name().map_err(|e| map_err(index, "name", e))?;
            let uuid = device.uuid().map_err(|e| map_err(index, "UUID", e))?;
            let memory_total_bytes = device
                .memory_info()
                .map_err(|e| map_err(index, "memory info", e))?
                .total;
            let energy_counter_supported = device.total_energy_consumption().is_ok();
            instant_power.push(instant_power_mw(&device).is_some());
            devices.push(DeviceInfo {
                index,
                name,
                uuid,
                memory_total_bytes,
                energy_counter_supported,
            });
        }
        if devices.is_empty() {
            return Err(GpuError::NoDevices);
        }
        Ok(NvmlBackend {
            nvml,
            devices,
            instant_power,
        })
    }

    /// The NVML handle, for measurements beyond [`GpuBackend`] (e.g. the `gpu-check` example).
    pub fn nvml(&self) -> &Nvml {
        &self.nvml
    }
}

fn instant_power_mw(device: &nvml_wrapper::Device<'_>) -> Option<u32> {
    let samples = device
        .field_values_for(&[FieldId(NVML_FI_DEV_POWER_INSTANT)])
        .ok()?;
    let sample: &FieldValueSample = samples.first()?.as_ref().ok()?;
    use nvml_wrapper::enums::device::SampleValue;
    match sample.value.as_ref().ok()? {
        SampleValue::U32(v) => Some(*v),
        SampleValue::U64(v) => u32::try_from(*v).ok(),
        SampleValue::I64(v) => u32::try_from(*v).ok(),
        SampleValue::F64(v) if v.is_finite() && *v >= 0.0 => Some(v.round() as u32),
        SampleValue::F64(_) => None,
    }
}

impl GpuBackend for NvmlBackend {
    fn vendor(&self) -> &'static str {
        "nvidia"
    }

    fn devices(&self) -> Result<Vec<DeviceInfo>, BackendError> {
        Ok(self.devices.clone())
    }

    fn read(&mut self, index: u32, clock: &dyn Clock) -> Result<GpuReading, BackendError> {
        self.read_inner(index, clock, true)
    }

    fn read_without_counter(
        &mut self,
        index: u32,
        clock: &dyn Clock,
    ) -> Result<GpuReading, BackendError> {
        self.read_inner(index, clock, false)
    }
}

impl NvmlBackend {
    /// One reading; the energy counter (the slow part) only when `counter`.
    fn read_inner(
        &mut self,
        index: u32,
        clock: &dyn Clock,
        counter: bool,
    ) -> Result<GpuReading, BackendError> {
        let Some(info) = self.devices.iter().find(|d| d.index == index) else {
            return Err(BackendError::NoSuchDevice {
                index,
                count: u32::try_from(self.devices.len()).unwrap_or(u32::MAX),
            });
        };
        let device = self
            .nvml
            .device_by_index(index)
            .map_err(|e| map_err(index, "device handle", e))?;
        let before = clock.now();
        // The counter read is the slow one (~3 ms); the reading is stamped at its midpoint.
        let energy_mj = if counter && info.energy_counter_supported {
            Some(
                device
                    .total_energy_consumption()
                    .map_err(|e| map_err(index, "total energy counter", e))?,
            )
        } else {
            None
        };
        let after = clock.now();
        let instant = if self
            .instant_power
            .get(index as usize)
            .copied()
            .unwrap_or(false)
        {
            instant_power_mw(&device)
        } else {
            None
        };
        let power_mw = match device.power_usage() {
            Ok(p) => p,
            Err(e) => instant.ok_or_else(|| map_err(index, "power", e))?,
        };
        // MIG instances and some datacenter parts answer NotSupported for utilization: a failed
        // side read leaves that field empty and keeps this tick's power and counter.
        let utilization_pct =
            optional(index, "utilization", device.utilization_rates())?.map(|u| u.gpu);
        let memory_used_bytes =
            optional(index, "memory info", device.memory_info())?.map(|m| m.used);
        let temperature_c = optional(
            index,
            "temperature",
            device.temperature(TemperatureSensor::Gpu),
        )?;
        Ok(GpuReading {
            device: index,
            timestamp: Timestamp::from_nanos(before.as_nanos() / 2 + after.as_nanos() / 2),
            energy_mj,
            power_mw,
            instant_power_mw: instant,
            utilization_pct,
            memory_used_bytes,
            temperature_c,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_side_reading_that_fails_is_empty_not_an_error() {
        assert_eq!(optional(0, "utilization", Ok(42_u32)), Ok(Some(42)));
        assert_eq!(
            optional::<u32>(0, "utilization", Err(NvmlError::NotSupported)),
            Ok(None)
        );
        assert_eq!(
            optional::<u32>(1, "temperature", Err(NvmlError::Timeout)),
            Ok(None)
        );
        assert_eq!(
            optional::<u32>(2, "memory info", Err(NvmlError::GpuLost)),
            Err(BackendError::DeviceLost { device: 2 })
        );
        assert!(matches!(
            optional::<u32>(0, "utilization", Err(NvmlError::DriverNotLoaded)),
            Err(BackendError::Unavailable { .. })
        ));
    }
}
