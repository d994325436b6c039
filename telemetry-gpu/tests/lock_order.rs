//! The sampler's locks under contention (issue 12, part 3): `begin`/`end` from many threads while
//! completion callbacks flush, sample, query and end windows of their own, and another thread
//! flushes and queries, all against the running sampler thread. A deadlock fails the test through
//! a watchdog instead of hanging it; every callback runs exactly once. Meaningful under
//! `cargo test --release` (nothing here relies on debug assertions).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Weak};
use std::thread;
use std::time::Duration;

use telemetry_gpu::{
    EnergyReading, GpuSampler, MockBackend, MockDevice, PowerProfile, SamplerConfig, SamplerStats,
    SystemClock, Window,
};

const CALLERS: usize = 8;
const CALLS: usize = 1500;
/// Far longer than the run takes on a loaded 2-core machine (a few seconds in debug).
const WATCHDOG: Duration = Duration::from_secs(120);
/// Both mock devices together.
const WATTS: f64 = 800.0;

/// What the stress run saw, checked on the test thread.
struct Outcome {
    /// Callbacks run, per top-level window (`CALLERS * CALLS`; abandoned ones must stay 0).
    per_window: Vec<u32>,
    abandoned: Vec<bool>,
    nested_ended: usize,
    nested_delivered: usize,
    /// Readings with negative, non-finite or more than the devices' energy.
    bad_readings: usize,
    stats: SamplerStats,
}

#[derive(Default)]
struct Tally {
    delivered: AtomicUsize,
    ended: AtomicUsize,
    nested_ended: AtomicUsize,
    nested_delivered: AtomicUsize,
    bad_readings: AtomicUsize,
}

fn check_reading(r: &EnergyReading, tally: &Tally) {
    let secs = r.end.saturating_duration_since(r.start).as_secs_f64();
    let ok = r.joules_total.is_finite()
        && r.joules_total >= 0.0
        && r.joules_total <= WATTS * secs * 1.01 + 1e-6;
    if !ok {
        tally.bad_readings.fetch_add(1, Ordering::Relaxed);
    }
}

/// What a callback does besides counting, chosen by the window's number: flush, sample, query,
/// or begin and end a window of its own; every path that takes a lock from inside a callback.
fn reenter(n: usize, weak: &Weak<GpuSampler>, tally: &Arc<Tally>) {
    let Some(sampler) = weak.upgrade() else {
        return;
    };
    match n % 6 {
        0 => sampler.flush(),
        1 => sampler.sample_now(),
        2 => {
            let now = sampler.now();
            let _ = sampler.energy_between(now - Duration::from_millis(20), now);
            let _ = sampler.stats();
        }
        3 => {
            let h = sampler.begin(sampler.now());
            tally.ended.fetch_add(1, Ordering::SeqCst);
            tally.nested_ended.fetch_add(1, Ordering::SeqCst);
            let tally = Arc::clone(tally);
            sampler.end(h, sampler.now(), None, move |r| {
                check_reading(&r, &tally);
                tally.nested_delivered.fetch_add(1, Ordering::SeqCst);
                tally.delivered.fetch_add(1, Ordering::SeqCst);
            });
        }
        _ => {}
    }
}

fn stress() -> Outcome {
    let devices = vec![
        MockDevice::new(PowerProfile::Constant(300.0)),
        MockDevice::new(PowerProfile::Constant(500.0)),
    ];
    let config = SamplerConfig {
        interval: Duration::from_millis(2),
        counter_interval: Duration::from_millis(4),
        completion_timeout: Duration::from_millis(50),
        history: Duration::from_secs(30),
        ..SamplerConfig::default()
    };
    let sampler = Arc::new(
        GpuSampler::with_config(
            MockBackend::new(devices),
            Arc::new(SystemClock::new()),
            config,
        )
        .unwrap(),
    );
    let tally = Arc::new(Tally::default());
    let per_window: Arc<Vec<AtomicU32>> =
        Arc::new((0..CALLERS * CALLS).map(|_| AtomicU32::new(0)).collect());
    let abandoned: Vec<bool> = (0..CALLERS * CALLS).map(|n| n % 10 == 9).collect();
    let callers_done = Arc::new(AtomicBool::new(false));

    // Flushes and queries from outside any callback, racing the callers and the sampler thread.
    let querier = {
        let (sampler, done) = (Arc::clone(&sampler), Arc::clone(&callers_done));
        thread::spawn(move || {
            let mut round = 0_u64;
            while !done.load(Ordering::Acquire) {
                round += 1;
                match round % 4 {
                    0 => sampler.flush(),
                    1 => sampler.sample_now(),
                    2 => {
                        let now = sampler.now();
                        let from = now - Duration::from_millis(50);
                        let _ = sampler.attribute(&[Window::new(from, now)], None);
                        let _ = sampler.timeline();
                    }
                    _ => {
                        let _ = sampler.stats();
                    }
                }
                thread::yield_now();
            }
        })
    };

    let callers: Vec<_> = (0..CALLERS)
        .map(|c| {
            let sampler = Arc::clone(&sampler);
            let (tally, per_window) = (Arc::clone(&tally), Arc::clone(&per_window));
            thread::spawn(move || {
                for i in 0..CALLS {
                    let n = c * CALLS + i;
                    let t0 = sampler.now();
                    let handle = if n.is_multiple_of(4) {
                        sampler.begin_weighted(t0, 2.0).unwrap()
                    } else {
                        sampler.begin(t0)
                    };
                    if n % 10 == 9 {
                        drop(handle); // abandoned: ends at the drop, no callback
                        continue;
                    }
                    thread::yield_now();
                    let first_token = n.is_multiple_of(3).then_some(t0);
                    let weak = Arc::downgrade(&sampler);
                    let (tally2, per_window) = (Arc::clone(&tally), Arc::clone(&per_window));
                    tally.ended.fetch_add(1, Ordering::SeqCst);
                    sampler.end(handle, sampler.now(), first_token, move |r| {
                        check_reading(&r, &tally2);
                        reenter(n, &weak, &tally2);
                        per_window[n].fetch_add(1, Ordering::SeqCst);
                        // Last: once every window is delivered no callback holds the sampler.
                        tally2.delivered.fetch_add(1, Ordering::SeqCst);
                    });
                }
            })
        })
        .collect();
    for caller in callers {
        caller.join().unwrap();
    }
    callers_done.store(true, Ordering::Release);
    querier.join().unwrap();
    // Windows ended by callbacks during this loop complete on a later pass.
    while tally.delivered.load(Ordering::SeqCst) < tally.ended.load(Ordering::SeqCst) {
        sampler.flush();
        thread::sleep(Duration::from_millis(1));
    }
    let stats = Arc::try_unwrap(sampler)
        .expect("no callback holds the sampler once all are delivered")
        .shutdown();
    Outcome {
        per_window: per_window
            .iter()
            .map(|a| a.load(Ordering::SeqCst))
            .collect(),
        abandoned,
        nested_ended: tally.nested_ended.load(Ordering::SeqCst),
        nested_delivered: tally.nested_delivered.load(Ordering::SeqCst),
        bad_readings: tally.bad_readings.load(Ordering::SeqCst),
        stats,
    }
}

#[test]
fn begin_end_from_many_threads_while_callbacks_flush_and_sample_never_deadlocks() {
    let (tx, rx) = mpsc::channel();
    thread::Builder::new()
        .name("lock-order-stress".into())
        .spawn(move || {
            let _ = tx.send(stress());
        })
        .unwrap();
    let out = match rx.recv_timeout(WATCHDOG) {
        Ok(out) => out,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("deadlock: the stress run did not finish within {WATCHDOG:?}")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the stress run panicked"),
    };
    for (n, (&runs, &abandoned)) in out.per_window.iter().zip(&out.abandoned).enumerate() {
        let want = u32::from(!abandoned);
        assert_eq!(runs, want, "window {n}: callback ran {runs} times");
    }
    assert!(out.nested_ended > 0, "callbacks ended windows of their own");
    assert_eq!(out.nested_delivered, out.nested_ended);
    assert_eq!(out.bad_readings, 0);
    let total = CALLERS * CALLS + out.nested_ended;
    let s = &out.stats;
    assert_eq!(s.completed_windows, total as u64, "{s:?}");
    assert_eq!((s.active_windows, s.pending_windows), (0, 0), "{s:?}");
    assert_eq!(s.callback_panics, 0);
    assert!(s.counter_ticks > 0 && s.ticks >= s.counter_ticks, "{s:?}");
}
