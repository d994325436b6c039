//! `telemetry demo`: simulated, instrumented calls recorded through the bus into the store, then
//! the stats of the run.

mod engine;

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use telemetry_core::{Event, EventBus, EventType, TelemetryRecord};

use telemetry_wrap::{
    GenerateParams, InferenceEngine, InstrumentedEngine, Message, SimTiming, SimulatedEngine,
};

use crate::cli::DemoArgs;
use crate::dbpath::DbPath;
use crate::emit::emit;
use crate::error::CliError;
use crate::output::{self, count, escape_controls};
use crate::progress;
use crate::recording::{AutoFallback, CallClock, RUN_ID_KEY, Recording};
use crate::timearg::now_unix;
use engine::{DemoEngine, VirtualGpu};

/// Share of simulated calls that fail (overloaded, timeout, rate limited), so errors show.
const ERROR_RATE: f64 = 0.02;
/// The agents calls are made by.
const AGENTS: [&str; 2] = ["chat-assistant", "batch-summarizer"];
/// Prompts of different lengths (TTFT grows with the prompt).
const PROMPTS: [&str; 4] = [
    "Why is the sky blue?",
    "Summarize the following meeting notes in three bullet points: the team agreed to ship the \
     telemetry store this week, the aggregator follows, and the CLI demo goes into the README.",
    "Write a haiku about GPUs.",
    "Explain, step by step and with an example, how a mergeable quantile sketch answers a p99 \
     latency query over a month of data without reading every row, and what error it guarantees.",
];

/// Runs `demo`.
pub fn run(db: &DbPath, args: &DemoArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let models: Vec<&'static str> = SimulatedEngine::models()
        .iter()
        .take(usize::try_from(args.models).unwrap_or(usize::MAX))
        .map(|m| m.id)
        .collect();
    let timing = if args.realtime {
        SimTiming::RealTime
    } else {
        SimTiming::Instant
    };
    let clock = if args.realtime {
        CallClock::Real
    } else {
        CallClock::Simulated
    };
    let recording = Recording::builder(&db.path)
        .gpu(args.gpu, clock, AutoFallback::Mock)
        .otlp(args.otlp.as_deref())
        .start()?;
    let gpu = &recording.gpu;
    if let Some(note) = &gpu.note {
        eprintln!("telemetry: {}", escape_controls(note));
    }

    let sim = SimulatedEngine::new()
        .with_seed(args.seed)
        .with_error_rate(ERROR_RATE)
        .with_timing(timing);
    let demo = DemoEngine {
        inner: sim,
        virtual_gpu: match (&gpu.virtual_clock, &gpu.sampler) {
            (Some(clock), Some(sampler)) => {
                Some(VirtualGpu::new(clock.clone(), Arc::clone(sampler)))
            }
            _ => None,
        },
    };
    // The run id in every record, so that the table shows this demo's calls only.
    let metadata = serde_json::json!({ RUN_ID_KEY: recording.run_id });
    let spread = (!args.realtime && !args.span.is_zero())
        .then(|| Spread::relay(&recording.bus, args.span, args.calls));
    let engine_bus = spread
        .as_ref()
        .map_or_else(|| Arc::clone(&recording.bus), |s| Arc::clone(&s.bus));
    let engines: Vec<InstrumentedEngine<&DemoEngine>> = AGENTS
        .iter()
        .map(|agent| {
            let engine = InstrumentedEngine::new(&demo, Arc::clone(&engine_bus))
                .with_agent(agent)
                .with_price_table(SimulatedEngine::price_table())
                .with_metadata(metadata.clone())
                .map_err(|e| CliError::Usage(format!("run id: {e}")))?;
            Ok(match &gpu.sampler {
                Some(sampler) => engine.with_gpu_sampler(Arc::clone(sampler)),
                None => engine,
            })
        })
        .collect::<Result<_, CliError>>()?;

    emit(
        out,
        &format!(
            "demo: {} {}calls through SimulatedEngine (seed {}, {}), {} models, {} agents, concurrency {}\nGPU energy: {}\n",
            count(args.calls),
            if args.stream { "streaming " } else { "" },
            args.seed,
            if args.realtime {
                "real time"
            } else {
                "instant mode with synthetic timings"
            },
            models.len(),
            AGENTS.len(),
            args.concurrency,
            gpu.description,
        ),
    )?;

    let bar = progress::bar(args.calls, "calls", progress::enabled());
    // On the simulated clock a call's GPU window is only its own if calls take turns: another
    // thread advancing the shared clock mid-call would stretch it.
    let turns = Mutex::new(());
    let take_turns = demo.virtual_gpu.is_some();
    let next = AtomicU64::new(0);
    let failed = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for _ in 0..args.concurrency {
            scope.spawn(|| {
                loop {
                    // Taking the turn before the call number keeps turn-taking runs
                    // deterministic: call i is the engine's i-th call.
                    let turn =
                        take_turns.then(|| turns.lock().unwrap_or_else(PoisonError::into_inner));
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= args.calls {
                        break;
                    }
                    let pick = mix(args.seed, i);
                    let engine = &engines[usize::from(pick & 1 == 1)];
                    let model = pick_model(&models, pick >> 8);
                    let prompt = PROMPTS[((pick >> 40) % PROMPTS.len() as u64) as usize];
                    let ok = call(engine, model, prompt, args.stream);
                    drop(turn);
                    if !ok {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    bar.inc(1);
                }
            });
        }
    });
    bar.finish_and_clear();
    for engine in &engines {
        engine.flush();
    }
    let mut finished = recording.finish();
    finished.store_result()?;
    if let Some(spread) = &spread {
        finished.records_since(spread.start);
    }
    let stats = &finished.stats;

    let mut summary = finished.summary_line(failed.load(Ordering::Relaxed), &db.path);
    if stats.rejected + stats.dropped + stats.bus_errors > 0 {
        summary.push_str(&format!(
            "warning: the store refused {} records and dropped {} ({} bus errors)\n",
            stats.rejected, stats.dropped, stats.bus_errors
        ));
    }
    if let Some(line) = &finished.otlp_line {
        summary.push_str(line);
    }
    summary.push('\n');
    emit(out, &summary)?;

    finished.print_stats(&db.path, out)?;
    emit(
        out,
        &format!(
            "\nnext: telemetry --db {} stats --by agent   (or: series --bucket 1h, report, export, check)\n",
            output::path(&db.path)
        ),
    )
}

/// Instant mode's simulated span: the engines publish on a bus of their own, and each record
/// is passed on to the recording's bus with its timestamp moved to the next of `calls` evenly
/// spaced instants over the span ending now, so a demo of a few seconds reads like a day of
/// traffic (in the order the calls ended).
struct Spread {
    bus: Arc<EventBus>,
    start: f64,
}

impl Spread {
    fn relay(to: &Arc<EventBus>, span: Duration, calls: u64) -> Self {
        let bus = Arc::new(EventBus::new());
        let start = now_unix() - span.as_secs_f64();
        let step = span.as_secs_f64() / calls.max(1) as f64;
        let seen = AtomicU64::new(0);
        let to = Arc::clone(to);
        bus.subscribe(EventType::TelemetryRecord, move |event| {
            if let Some(record) = event.as_record() {
                let k = seen.fetch_add(1, Ordering::Relaxed);
                let mut moved = TelemetryRecord::clone(record);
                moved.timestamp = start + (k as f64 + 0.5) * step;
                to.publish(Event::TelemetryRecord(Arc::new(moved)));
            }
        });
        Spread { bus, start }
    }
}

/// Makes one call; `false` when it failed (the failure is recorded all the same).
fn call(engine: &InstrumentedEngine<&DemoEngine>, model: &str, prompt: &str, stream: bool) -> bool {
    let messages = [
        Message::system("You are a helpful assistant."),
        Message::user(prompt),
    ];
    let params = GenerateParams::new(model);
    if stream {
        match engine.stream(&messages, &params) {
            // Read to the end even after an error chunk: a stream dropped early is recorded as
            // cancelled, which is not what happened.
            Ok(chunks) => {
                let mut ok = true;
                for chunk in chunks {
                    ok &= chunk.is_ok();
                }
                ok
            }
            Err(_) => false,
        }
    } else {
        engine.generate(&messages, &params).is_ok()
    }
}

/// Models weighted so that the first (fastest) is the most called: weight `k - index`.
fn pick_model<'a>(models: &[&'a str], pick: u64) -> &'a str {
    let k = models.len() as u64;
    let total = k * (k + 1) / 2;
    let mut r = pick % total.max(1);
    for (i, m) in models.iter().enumerate() {
        let w = k - i as u64;
        if r < w {
            return m;
        }
        r -= w;
    }
    models.first().copied().unwrap_or("sim-tiny-1b")
}

/// splitmix64 of (seed, call index): which agent, model and prompt a call gets.
fn mix(seed: u64, i: u64) -> u64 {
    let mut z = seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_weights_favour_the_first() {
        let models = ["a", "b", "c", "d"];
        let mut counts = [0u32; 4];
        for i in 0..10_000 {
            let m = pick_model(&models, mix(7, i) >> 8);
            counts[models.iter().position(|x| *x == m).unwrap()] += 1;
        }
        assert!(counts.windows(2).all(|w| w[0] > w[1]), "{counts:?}");
        assert_eq!(pick_model(&["only"], 12345), "only");
    }
}
