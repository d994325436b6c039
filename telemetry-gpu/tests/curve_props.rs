//! Property tests of `EnergyCurve` over arbitrary (jittered, resetting, counter-less) samples:
//! energies are non-negative and additive, the method query never panics, and a window that spans
//! whole refreshes of a steadily counting device gets the counter's delta, whether the counter is
//! read every sample or only on some.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use telemetry_gpu::{EnergyCurve, EnergySource, GpuReading, Timestamp};

fn reading(t_ms: u64, energy_mj: Option<u64>, power_mw: u32) -> GpuReading {
    GpuReading {
        device: 0,
        timestamp: Timestamp::from_millis(t_ms),
        energy_mj,
        power_mw,
        instant_power_mw: None,
        utilization_pct: None,
        memory_used_bytes: None,
        temperature_c: None,
    }
}

fn samples() -> impl Strategy<Value = Vec<GpuReading>> {
    let step = (1_u64..300, 0_u64..200_000, 0_u32..1_000_000, 0_u8..20);
    (any::<bool>(), prop::collection::vec(step, 1..60)).prop_map(|(counter, steps)| {
        let (mut t, mut c) = (0, 1_000_u64);
        steps
            .into_iter()
            .map(|(dt, dc, p, event)| {
                t += dt;
                c = match event {
                    0 => dc,    // reset or wrap: the counter goes back
                    1..=6 => c, // no refresh since the last sample
                    _ => c + dc,
                };
                reading(t, counter.then_some(c), p)
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn energies_are_non_negative_and_additive(
        samples in samples(),
        cuts in prop::collection::vec(0_u64..20_000, 3),
    ) {
        let curve = EnergyCurve::from_samples(&samples);
        let mut cuts: Vec<Timestamp> = cuts.into_iter().map(Timestamp::from_millis).collect();
        cuts.sort();
        let (a, b, c) = (cuts[0], cuts[1], cuts[2]);
        let (ab, bc, ac) = (
            curve.energy_between(a, b),
            curve.energy_between(b, c),
            curve.energy_between(a, c),
        );
        prop_assert!(ab >= 0.0 && bc >= 0.0 && ac.is_finite());
        prop_assert!((ab + bc - ac).abs() <= 1e-9 * ac.max(1.0), "{} + {} != {}", ab, bc, ac);
        let _ = curve.method_between(a, c);
        let _ = curve.method_between(a, a);
        let _ = curve.power_at(b);
    }

    #[test]
    fn the_counter_decides_windows_between_refreshes(
        steps in prop::collection::vec((50_u64..150, 1_u64..100_000), 3..40),
        power_mw in 1_u32..1_000_000,
        sparse in 1_usize..12,
    ) {
        // Power every sample, the counter on every `sparse`-th one (and the first and last), and
        // it changes between counter reads: a refresh lies at most 100 ms before each read.
        let (mut t, mut c) = (100, 0_u64);
        let mut samples = vec![reading(t, Some(0), power_mw)];
        for (i, (dt, dc)) in steps.iter().enumerate() {
            t += dt;
            c += dc;
            let read = (i + 1) % sparse == 0 || i + 1 == steps.len();
            samples.push(reading(t, read.then_some(c), power_mw));
        }
        let curve = EnergyCurve::from_samples(&samples);
        // The first read's value is as of a refresh at most 100 ms before it, which starts the
        // count: from 100 ms before the first sample to the last one, the counter's whole delta
        // plus power over at most 100 ms at each end.
        let total = curve.energy_between(Timestamp::ZERO, Timestamp::from_millis(t));
        let counted = c as f64 / 1000.0;
        let power_w = f64::from(power_mw) / 1000.0;
        prop_assert!(total >= counted - 1e-6, "total {} < counted {}", total, counted);
        prop_assert!(
            total <= counted + power_w * 0.2 + 1e-6,
            "total {} > counted {} + edges",
            total,
            counted
        );
    }
}
