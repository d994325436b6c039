//! Property test of accuracy under sampling jitter: a steady load, any counter refresh phase,
//! samples every 100 ms each up to 30 ms late. Short windows are exact under regular sampling
//! (`energy_exact.rs`); under jitter the refresh phase is learnt as the counter is observed, and a
//! 50 ms window next to a correction can be off by up to half a counter step (bounded here at 50 %),
//! while windows of 0.5 s and 1 s stay within 10 % and 5 %.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Rig, ms};
use proptest::prelude::*;
use telemetry_gpu::{MockDevice, PowerProfile};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn windows_in_a_steady_load_under_sampling_jitter(
        watts in 50.0_f64..1000.0,
        phase_ms in 0_u64..100,
        jitter in prop::collection::vec(0_u64..30, 60),
        starts in prop::collection::vec(1000_u64..5000, 10),
    ) {
        let device = MockDevice::new(PowerProfile::Constant(watts))
            .counter_refresh(Duration::from_millis(100), Duration::from_millis(phase_ms));
        let rig = Rig::new(vec![device]);
        // Ticks every 100 ms, each late by up to 30 ms (a slow read, a busy core).
        rig.sample_at(jitter.iter().enumerate().map(|(i, j)| ms(100 * (i as u64 + 1) + j)));
        for s in starts {
            for (len, tol) in [(50, 0.05), (500, 0.05), (1000, 0.05)] {
                let r = rig.sampler.energy_between(ms(s), ms(s + len)).unwrap();
                let expected = watts * len as f64 / 1000.0;
                prop_assert!(
                    (r.joules_total - expected).abs() <= tol * expected,
                    "[{} ms, +{} ms]: {} J, expected {} J", s, len, r.joules_total, expected
                );
            }
        }
    }
}
