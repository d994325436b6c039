//! GPU energy through the sampler with the mock backend and mock clock: exact joules, deferred
//! records (the caller never waits for the sampler), shared energy for overlapping calls, flush.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Collector, messages, ms};
use telemetry_core::{EnergyMethod, EventBus, EventType};
use telemetry_gpu::{
    Clock, GpuSampler, MockBackend, MockClock, PowerProfile, SamplerConfig, Timestamp,
};
use telemetry_wrap::{
    CallContext, GenerateParams, GenerateResult, InferenceEngine, InstrumentedEngine, Message,
    SimulatedEngine, StreamChunk, Usage, instrumented_generate_with,
};

/// An engine whose calls take `busy` on the mock clock.
struct Busy {
    clock: MockClock,
    busy: Duration,
}

impl InferenceEngine for Busy {
    type Error = std::io::Error;
    type Stream = std::vec::IntoIter<Result<StreamChunk, std::io::Error>>;

    fn engine_id(&self) -> &str {
        "busy"
    }

    fn generate(&self, _: &[Message], _: &GenerateParams) -> Result<GenerateResult, Self::Error> {
        self.clock.advance(self.busy);
        Ok(GenerateResult::new("x", Usage::new(10, 10)))
    }

    fn stream(&self, _: &[Message], _: &GenerateParams) -> Result<Self::Stream, Self::Error> {
        // The first token 20 ms into the call (engine-reported), then usage.
        Ok(vec![
            Ok(StreamChunk::text("a").at(ms(20))),
            Ok(StreamChunk::text("b").at(ms(30))),
        ]
        .into_iter())
    }
}

/// What most tests here start from: a mock clock, a manual sampler of a constant power created
/// at the clock's origin, and a bus whose events a collector keeps.
struct Rig {
    clock: MockClock,
    sampler: Arc<GpuSampler>,
    bus: Arc<EventBus>,
    seen: Collector,
}

impl Rig {
    /// A rig whose mock GPU draws `watts` throughout.
    fn new(watts: f64) -> Rig {
        let clock = MockClock::new();
        let config = SamplerConfig {
            manual: true,
            ..SamplerConfig::default()
        };
        let sampler = Arc::new(
            GpuSampler::with_config(
                MockBackend::single(PowerProfile::Constant(watts)),
                Arc::new(clock.clone()),
                config,
            )
            .unwrap(),
        );
        let bus = Arc::new(EventBus::new());
        let seen = Collector::attach(&bus);
        Rig {
            clock,
            sampler,
            bus,
            seen,
        }
    }

    /// A [`Busy`] engine on the rig's clock, instrumented on its bus with its sampler.
    fn busy_engine(&self, busy: Duration) -> InstrumentedEngine<Busy> {
        InstrumentedEngine::new(
            Busy {
                clock: self.clock.clone(),
                busy,
            },
            Arc::clone(&self.bus),
        )
        .with_gpu_sampler(Arc::clone(&self.sampler))
    }

    /// A call context for `engine_id` on the rig's bus, with its sampler.
    fn context(&self, engine_id: &str) -> CallContext {
        CallContext::new(Arc::clone(&self.bus), engine_id)
            .with_gpu_sampler(Arc::clone(&self.sampler))
    }

    /// [`tick_to`] on the rig's clock and sampler.
    fn tick_to(&self, target_ms: u64) {
        tick_to(&self.clock, &self.sampler, target_ms);
    }
}

/// Moves the mock clock to `target_ms`, sampling at every 100 ms boundary on the way, as the
/// sampler thread would.
fn tick_to(clock: &MockClock, sampler: &GpuSampler, target_ms: u64) {
    let target = Timestamp::from_millis(target_ms);
    loop {
        let now = clock.now().as_nanos() / 1_000_000;
        let next = Timestamp::from_millis((now / 100 + 1) * 100);
        if next > target {
            clock.set(target);
            return;
        }
        clock.set(next);
        sampler.sample_now();
    }
}

#[test]
fn energy_matches_the_profile_and_the_record_waits_for_it() {
    let rig = Rig::new(700.0);
    let engine = rig.busy_engine(ms(50));
    assert!(engine.gpu_sampler().is_some());

    rig.tick_to(420);
    engine
        .generate(&messages(), &GenerateParams::new("m"))
        .unwrap();
    // The call returned; the sampler has not covered it yet, so only start and end are out.
    assert_eq!(
        rig.seen.types(),
        [EventType::InferenceStart, EventType::InferenceEnd]
    );

    // Past the counter read at 1 s (the sampler reads the energy counter once a second).
    rig.tick_to(1100);
    let r = rig.seen.only_record();
    let joules = r.energy_joules.unwrap();
    assert!((joules - 35.0).abs() < 0.01, "700 W × 50 ms, got {joules}");
    assert_eq!(r.energy_method, EnergyMethod::Counter);
    assert_eq!(r.energy_vendor, "mock");
    assert!((r.power_watts.unwrap() - 700.0).abs() < 1.0);
    assert!(r.gpu_utilization_pct.is_some() && r.gpu_temperature_c.is_some());
    assert!((r.gpu_memory_used_gb.unwrap() - 40.0).abs() < 1e-9);
}

#[test]
fn overlapping_calls_share_energy_and_split_prefill_decode() {
    let rig = Rig::new(600.0);
    let engine = rig.busy_engine(Duration::ZERO);
    let params = GenerateParams::new("m");

    // A: [420, 520] ms, B: [470, 570] ms on the mock clock.
    rig.tick_to(420);
    let a = engine.stream(&messages(), &params).unwrap();
    rig.tick_to(470);
    let b = engine.stream(&messages(), &params).unwrap();
    rig.tick_to(520);
    assert_eq!(a.count(), 2);
    rig.tick_to(570);
    assert_eq!(b.count(), 2);
    // Past the counter read at 1 s (the sampler reads the energy counter once a second).
    rig.tick_to(1100);

    let records = rig.seen.records();
    assert_eq!(records.len(), 2);
    let energies: Vec<f64> = records.iter().map(|r| r.energy_joules.unwrap()).collect();
    // Each: 50 ms alone (30 J) + 50 ms shared (15 J); together the device's 90 J.
    for e in &energies {
        assert!((e - 45.0).abs() < 0.05, "{energies:?}");
    }
    assert!((energies.iter().sum::<f64>() - 90.0).abs() < 0.1);
    for r in &records {
        let (p, d) = (
            r.prefill_energy_joules.unwrap(),
            r.decode_energy_joules.unwrap(),
        );
        assert!((p + d - r.energy_joules.unwrap()).abs() < 0.05, "{r:?}");
        assert!(p > 0.0 && d > 0.0);
    }
}

#[test]
fn flush_completes_pending_records() {
    let rig = Rig::new(300.0);
    let engine = rig.busy_engine(ms(40));
    rig.tick_to(420);
    for _ in 0..3 {
        engine
            .generate(&messages(), &GenerateParams::new("m"))
            .unwrap();
    }
    assert!(rig.seen.records().is_empty());
    rig.clock.advance(ms(10));
    engine.flush();
    let records = rig.seen.records();
    assert_eq!(records.len(), 3);
    assert!(records.iter().all(|r| r.energy_joules.is_some()));
    assert!(records.iter().all(|r| r.validate().is_ok()));
}

#[test]
fn background_sampler_with_the_simulated_engine_never_blocks_the_caller() {
    let sampler = GpuSampler::with_config(
        MockBackend::single(PowerProfile::Constant(500.0)),
        Arc::new(telemetry_gpu::SystemClock::new()),
        SamplerConfig {
            interval: ms(5),
            ..SamplerConfig::default()
        },
    )
    .unwrap();
    let bus = Arc::new(EventBus::new());
    let seen = Collector::attach(&bus);
    let engine =
        InstrumentedEngine::new(SimulatedEngine::new(), Arc::clone(&bus)).with_gpu_sampler(sampler);
    let params = GenerateParams::new("sim-tiny-1b").with_max_tokens(8);
    for _ in 0..20 {
        engine.generate(&messages(), &params).unwrap();
    }
    engine.flush();
    let records = seen.records();
    assert_eq!(records.len(), 20);
    assert!(records.iter().all(|r| r.energy_vendor == "mock"));
}

#[test]
fn instrumented_generate_with_gets_energy_like_the_decorator() {
    let rig = Rig::new(700.0);
    let ctx = rig.context("busy");
    let engine = Busy {
        clock: rig.clock.clone(),
        busy: ms(50),
    };
    rig.tick_to(420);
    instrumented_generate_with(&engine, &messages(), &GenerateParams::new("m"), &ctx).unwrap();
    assert_eq!(
        rig.seen.types(),
        [EventType::InferenceStart, EventType::InferenceEnd]
    );
    rig.tick_to(1100);
    let r = rig.seen.only_record();
    let joules = r.energy_joules.unwrap();
    assert!((joules - 35.0).abs() < 0.01, "700 W × 50 ms, got {joules}");
    assert_eq!(r.energy_method, EnergyMethod::Counter);
}

#[test]
fn a_call_driven_from_outside_gets_energy_and_splits_it_at_the_first_token() {
    let rig = Rig::new(400.0);
    let ctx = rig.context("proxy");
    assert!(ctx.gpu_sampler().is_some());
    rig.tick_to(420);
    let mut call = ctx.call("m").streaming(true).start();
    // The first token 30 ms in (engine-reported), the end 100 ms in.
    call.on_chunk(&StreamChunk::text("a").at(ms(30)));
    rig.tick_to(520);
    call.on_chunk(&StreamChunk::text("b").at(ms(100)));
    call.finish();
    rig.tick_to(1100);
    let r = rig.seen.only_record();
    let joules = r.energy_joules.unwrap();
    assert!((joules - 40.0).abs() < 0.05, "400 W × 100 ms, got {joules}");
    let prefill = r.prefill_energy_joules.unwrap();
    assert!(
        (prefill - 12.0).abs() < 0.05,
        "400 W × 30 ms, got {prefill}"
    );
}

#[test]
fn dropping_a_call_with_a_sampler_still_publishes_its_record() {
    let rig = Rig::new(100.0);
    let ctx = rig.context("proxy");
    rig.tick_to(420);
    let call = ctx.call("m").streaming(true).start();
    rig.tick_to(470);
    drop(call);
    rig.clock.advance(ms(10));
    ctx.flush();
    let r = rig.seen.only_record();
    assert_eq!(r.outcome, telemetry_core::Outcome::Cancelled);
    assert!(r.energy_joules.is_some());
}
