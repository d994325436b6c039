//! Deferred completion: readings arrive once the timeline covers the window, in order of window
//! end; flush and drop complete what is pending; failing devices and panicking callbacks do not
//! stop the sampler.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Rig, Sink, assert_close, ms};
use telemetry_core::EnergyMethod;
use telemetry_gpu::{
    BackendError, GpuError, GpuSampler, MockBackend, MockDevice, PowerProfile, SamplerConfig,
    SystemClock,
};

fn constant(watts: f64) -> MockDevice {
    MockDevice::new(PowerProfile::Constant(watts))
}

#[test]
fn readings_wait_for_coverage_and_arrive_in_order_of_window_end() {
    // The counter read every tick, so coverage follows its 100 ms refreshes.
    let config = SamplerConfig {
        manual: true,
        counter_interval: Duration::ZERO,
        ..SamplerConfig::default()
    };
    let rig = Rig::with_config(vec![constant(500.0)], config);
    let sink = Sink::default();
    rig.tick_to(ms(200));
    let a = rig.sampler.begin(ms(200));
    let b = rig.sampler.begin(ms(300));
    let c = rig.sampler.begin(ms(400));
    // Ended in the order a, b, c but ending at 900, 350 and 600 ms.
    rig.tick_to(ms(350));
    rig.sampler.end(b, ms(350), None, sink.callback("b"));
    rig.tick_to(ms(600));
    rig.sampler.end(c, ms(600), None, sink.callback("c"));
    rig.sampler.end(a, ms(900), None, sink.callback("a"));
    assert_eq!(
        sink.tags(),
        vec!["b"],
        "b is covered at 600 ms, c and a are not"
    );
    rig.tick_to(ms(800));
    assert_eq!(sink.tags(), vec!["b", "c"]);
    rig.tick_to(ms(1000));
    assert_eq!(sink.tags(), vec!["b", "c", "a"]);
    for (tag, t0, t1) in [("a", 200, 900), ("b", 300, 350), ("c", 400, 600)] {
        let r = sink.get(tag).unwrap();
        assert_eq!((r.start, r.end), (ms(t0), ms(t1)));
        assert_eq!(r.method, EnergyMethod::Counter);
        assert_eq!(r.vendor, "mock");
    }
    // b (50 ms) overlapped a, so it got half of 25 J.
    assert_close(sink.get("b").unwrap().joules_total, 12.5, 0.01, "b");
    assert_eq!(sink.get("b").unwrap().overlapping, 1);
    let stats = rig.sampler.stats();
    assert_eq!(stats.completed_windows, 3);
    assert_eq!((stats.pending_windows, stats.active_windows), (0, 0));
}

#[test]
fn channel_delivery_and_flush_complete_uncovered_windows_with_best_data() {
    let rig = Rig::new(vec![constant(700.0)]);
    rig.tick_to(ms(1000));
    let h = rig.sampler.begin(ms(1000));
    rig.clock.set(ms(1040));
    let rx = rig.sampler.end_to_channel(h, ms(1040), None);
    assert!(rx.try_recv().is_err(), "not covered yet");
    rig.sampler.flush();
    let r = rx.try_recv().expect("flush completes it");
    assert_close(r.joules_total, 28.0, 0.05, "40 ms at 700 W");
    assert_eq!(
        r.method,
        EnergyMethod::PowerIntegration,
        "past the last refresh"
    );
}

#[test]
fn dropping_the_sampler_completes_pending_windows() {
    let rig = Rig::new(vec![constant(100.0)]);
    let sink = Sink::default();
    rig.tick_to(ms(500));
    let h = rig.sampler.begin(ms(450));
    rig.sampler
        .end(h, ms(500), Some(ms(470)), sink.callback("late"));
    let Rig { sampler, .. } = rig;
    let stats = sampler.shutdown();
    assert_eq!(stats.completed_windows, 1);
    let r = sink.get("late").unwrap();
    assert_close(r.joules_total, 5.0, 0.05, "50 ms at 100 W");
    assert_close(r.prefill_joules.unwrap(), 2.0, 0.05, "prefill");
    assert_close(r.decode_joules.unwrap(), 3.0, 0.05, "decode");
}

#[test]
fn an_abandoned_handle_still_takes_its_share() {
    let rig = Rig::new(vec![constant(200.0)]);
    let sink = Sink::default();
    rig.tick_to(ms(300));
    let kept = rig.sampler.begin(ms(300));
    let dropped = rig.sampler.begin(ms(300));
    rig.clock.set(ms(400));
    drop(dropped); // ends at 400 ms, no callback
    rig.sampler.end(kept, ms(400), None, sink.callback("kept"));
    rig.tick_to(ms(800));
    assert!(
        sink.get("kept").is_none(),
        "waits for the counter read at 1 s"
    );
    rig.tick_to(ms(1100));
    assert_close(
        sink.get("kept").unwrap().joules_total,
        10.0,
        0.01,
        "half of 20 J",
    );
    assert_eq!(rig.sampler.stats().completed_windows, 2);
}

#[test]
fn a_failing_device_is_counted_and_sampling_goes_on() {
    let rig = Rig::new(vec![constant(300.0), constant(100.0)]);
    let sink = Sink::default();
    let read_error = BackendError::ReadFailed {
        device: 1,
        what: "power",
        reason: "timeout".into(),
    };
    rig.backend.fail_next_reads(1, 3, read_error.clone());
    rig.tick_to(ms(1000));
    let stats = rig.sampler.stats();
    assert_eq!(stats.failed_reads, 3);
    assert_eq!(stats.last_error, Some(read_error));
    assert_eq!(stats.ticks, 11, "one at start, then every 100 ms");
    assert_eq!(stats.readings, 22 - 3);
    // Device 1 is lost for good: windows still complete, from device 0 alone once device 1's
    // data is stale.
    rig.backend.lose_device(1);
    rig.tick_to(ms(2000));
    let h = rig.sampler.begin(ms(2000));
    rig.sampler
        .end(h, ms(2100), None, sink.callback("after loss"));
    rig.tick_to(ms(3100));
    let r = sink
        .get("after loss")
        .expect("not held back by the lost device");
    assert_eq!(r.per_device.len(), 1);
    assert_close(r.joules_total, 30.0, 0.01, "device 0 only");
    assert_eq!(
        rig.sampler.stats().last_error,
        Some(BackendError::DeviceLost { device: 1 })
    );
    // A window from before the loss still sees both devices.
    let before = rig.sampler.energy_between(ms(500), ms(600)).unwrap();
    assert_close(before.joules_total, 40.0, 0.01, "both devices");
}

#[test]
fn a_panicking_callback_is_contained() {
    let rig = Rig::new(vec![constant(100.0)]);
    let sink = Sink::default();
    rig.tick_to(ms(100));
    let h1 = rig.sampler.begin(ms(100));
    let h2 = rig.sampler.begin(ms(150));
    rig.sampler
        .end(h1, ms(140), None, |_| panic!("subscriber bug"));
    rig.sampler.end(h2, ms(190), None, sink.callback("ok"));
    rig.tick_to(ms(1100));
    assert!(sink.get("ok").is_some());
    assert_eq!(rig.sampler.stats().callback_panics, 1);
}

#[test]
fn a_window_completes_after_the_timeout_when_the_counter_stops_refreshing() {
    // An idle device at 0 W never moves its counter.
    let rig = Rig::new(vec![constant(0.0)]);
    let sink = Sink::default();
    rig.tick_to(ms(500));
    let h = rig.sampler.begin(ms(500));
    rig.sampler.end(h, ms(600), None, sink.callback("idle"));
    rig.tick_to(ms(2500));
    assert!(sink.get("idle").is_none(), "waits up to the 2 s timeout");
    rig.tick_to(ms(2700));
    let r = sink.get("idle").unwrap();
    assert_eq!(r.joules_total, 0.0);
    assert!(r.is_measured());
}

#[test]
fn configuration_errors_are_typed() {
    let backend = || MockBackend::single(PowerProfile::Constant(1.0));
    let clock = Arc::new(SystemClock::new());
    let bad = |config: SamplerConfig| {
        GpuSampler::with_config(backend(), clock.clone(), config).unwrap_err()
    };
    let manual = SamplerConfig {
        manual: true,
        ..SamplerConfig::default()
    };
    assert!(matches!(
        bad(SamplerConfig {
            interval: Duration::ZERO,
            ..manual.clone()
        }),
        GpuError::InvalidConfig {
            field: "interval",
            ..
        }
    ));
    assert!(matches!(
        bad(SamplerConfig {
            history: Duration::from_millis(1),
            ..manual.clone()
        }),
        GpuError::InvalidConfig {
            field: "history",
            ..
        }
    ));
    // A length near `Duration::MAX` overflowed a deadline (the sampler thread panicked).
    let huge = Duration::MAX;
    for (field, config) in [
        (
            "interval",
            SamplerConfig {
                interval: huge,
                history: huge,
                ..manual.clone()
            },
        ),
        (
            "history",
            SamplerConfig {
                history: huge,
                ..manual.clone()
            },
        ),
        (
            "completion_timeout",
            SamplerConfig {
                completion_timeout: huge,
                ..manual.clone()
            },
        ),
        (
            "counter_interval",
            SamplerConfig {
                counter_interval: huge,
                ..manual.clone()
            },
        ),
    ] {
        let got = bad(config);
        assert!(
            matches!(&got, GpuError::InvalidConfig { field: f, reason } if *f == field && reason.contains("longer than a year")),
            "{field}: {got:?}"
        );
    }
    // A year is still taken.
    let year = telemetry_gpu::LONGEST_CONFIG_DURATION;
    assert!(
        GpuSampler::with_config(
            backend(),
            clock.clone(),
            SamplerConfig {
                history: year,
                counter_interval: year,
                ..manual.clone()
            }
        )
        .is_ok()
    );
    assert_eq!(
        bad(SamplerConfig {
            devices: Some(vec![0, 4]),
            ..manual.clone()
        }),
        GpuError::NoSuchDevice { index: 4, count: 1 }
    );
    assert_eq!(
        GpuSampler::with_config(MockBackend::new(vec![]), clock.clone(), manual.clone())
            .unwrap_err(),
        GpuError::NoDevices
    );
    let s = GpuSampler::with_config(backend(), clock, manual).unwrap();
    assert!(matches!(
        s.begin_weighted(s.now(), 0.0),
        Err(GpuError::InvalidWeight { .. })
    ));
    assert!(matches!(
        s.energy_between(ms(2), ms(1)),
        Err(GpuError::InvalidWindow { .. })
    ));
}

#[test]
fn the_background_thread_samples_and_delivers_on_its_own() {
    let config = SamplerConfig {
        interval: Duration::from_millis(5),
        ..SamplerConfig::default()
    };
    let backend = MockBackend::single(PowerProfile::Constant(100.0));
    let probe = backend.clone();
    let sampler = GpuSampler::with_config(backend, Arc::new(SystemClock::new()), config).unwrap();
    let delivered = Arc::new(AtomicUsize::new(0));
    let t0 = sampler.now();
    let h = sampler.begin(t0);
    std::thread::sleep(Duration::from_millis(30));
    let t1 = sampler.now();
    let seen = Arc::clone(&delivered);
    let rx = sampler.end_to_channel(h, t1, None);
    let r = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("delivered by the sampler thread");
    seen.fetch_add(1, Ordering::SeqCst);
    let expected = 100.0 * t1.saturating_duration_since(t0).as_secs_f64();
    assert_close(r.joules_total, expected, 0.25, "real-time window");
    assert!(probe.reads() >= 2);
    drop(sampler);
    assert_eq!(delivered.load(Ordering::SeqCst), 1);
}

#[test]
fn concurrent_callers_all_get_their_reading_exactly_once() {
    let config = SamplerConfig {
        interval: Duration::from_millis(2),
        ..SamplerConfig::default()
    };
    let backend = MockBackend::single(PowerProfile::Constant(300.0));
    let sampler =
        Arc::new(GpuSampler::with_config(backend, Arc::new(SystemClock::new()), config).unwrap());
    let delivered = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let sampler = Arc::clone(&sampler);
            let delivered = Arc::clone(&delivered);
            std::thread::spawn(move || {
                for i in 0..100 {
                    let h = sampler.begin(sampler.now());
                    if i % 10 == 0 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    let seen = Arc::clone(&delivered);
                    sampler.end(h, sampler.now(), None, move |r| {
                        assert!(r.joules_total >= 0.0);
                        seen.fetch_add(1, Ordering::SeqCst);
                    });
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let sampler = Arc::try_unwrap(sampler).expect("threads are done");
    let stats = sampler.shutdown();
    assert_eq!(delivered.load(Ordering::SeqCst), 400);
    assert_eq!(stats.completed_windows, 400);
    assert_eq!(stats.callback_panics, 0);
    assert_eq!((stats.active_windows, stats.pending_windows), (0, 0));
}

#[test]
fn begin_and_end_are_not_blocked_while_a_callback_runs() {
    use std::sync::mpsc;
    let rig = Arc::new(Rig::new(vec![constant(300.0)]));
    rig.tick_to(ms(500));
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let h = rig.sampler.begin(ms(500));
    // The callback holds up completion until the main thread's begin + end have returned.
    rig.sampler.end(h, ms(550), None, move |_| {
        started_tx.send(()).unwrap();
        // The timeout only keeps a regression from hanging the test; it fails it instead.
        let released = release_rx.recv_timeout(Duration::from_secs(30)).is_ok();
        assert!(released, "begin/end waited on the callback");
    });
    let completer = {
        let rig = Arc::clone(&rig);
        std::thread::spawn(move || rig.tick_to(ms(1000)))
    };
    started_rx.recv().unwrap();
    // Completion is in the middle of a callback on the other thread.
    let sink = Sink::default();
    let h2 = rig.sampler.begin(ms(600));
    rig.sampler.end(h2, ms(650), None, sink.callback("during"));
    assert_eq!(rig.sampler.stats().pending_windows, 1);
    release_tx.send(()).unwrap();
    completer.join().unwrap();
    assert_eq!(rig.sampler.stats().callback_panics, 0);
    assert_eq!(rig.sampler.stats().completed_windows, 1);
    rig.tick_to(ms(2000));
    assert!(sink.get("during").is_some());
}

#[test]
fn a_callback_may_flush_and_sample_without_deadlock() {
    use std::sync::Mutex;
    use telemetry_gpu::MockClock;

    // Run on a helper thread, so that a deadlock fails the test instead of hanging it.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let clock = MockClock::new();
        let config = SamplerConfig {
            manual: true,
            ..SamplerConfig::default()
        };
        let sampler = Arc::new(
            GpuSampler::with_config(
                MockBackend::new(vec![constant(500.0)]),
                Arc::new(clock.clone()),
                config,
            )
            .unwrap(),
        );
        let order = Arc::new(Mutex::new(Vec::new()));
        clock.set(ms(100));
        sampler.sample_now();
        let h1 = sampler.begin(ms(100));
        let h2 = sampler.begin(ms(120));
        clock.set(ms(200));
        {
            // The first callback flushes, samples, and starts and ends a window of its own.
            let weak = Arc::downgrade(&sampler);
            let order = Arc::clone(&order);
            sampler.end(h1, ms(150), None, move |_| {
                let sampler = weak.upgrade().unwrap();
                sampler.flush();
                sampler.sample_now();
                let h3 = sampler.begin(ms(160));
                let inner = Arc::clone(&order);
                sampler.end(h3, ms(190), None, move |r| {
                    inner.lock().unwrap().push(("third", r.joules_total));
                });
                order.lock().unwrap().push(("first", 0.0));
            });
        }
        let o = Arc::clone(&order);
        sampler.end(h2, ms(180), None, move |r| {
            o.lock().unwrap().push(("second", r.joules_total));
        });
        sampler.flush();
        let after_first_flush: Vec<&str> = order.lock().unwrap().iter().map(|x| x.0).collect();
        // The window ended inside a callback completes on a later pass.
        sampler.flush();
        let all = order.lock().unwrap().clone();
        let stats = sampler.stats();
        done_tx.send((after_first_flush, all, stats)).unwrap();
    });
    let (after_first_flush, all, stats) = done_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("a callback calling flush/sample_now deadlocked the sampler");
    assert_eq!(after_first_flush, vec!["first", "second"]);
    let tags: Vec<&str> = all.iter().map(|x| x.0).collect();
    assert_eq!(tags, vec!["first", "second", "third"]);
    // 30 ms at 500 W, alone on the device from 180 to 190 ms and sharing 160..180 with h2.
    let third = all[2].1;
    assert!(third > 0.0 && third <= 15.0 + 1e-6, "third: {third} J");
    assert_eq!(stats.completed_windows, 3);
    assert_eq!(stats.callback_panics, 0);
    assert_eq!((stats.pending_windows, stats.active_windows), (0, 0));
}

#[test]
fn a_callback_dropping_the_last_sampler_handle_neither_panics_nor_loses_windows() {
    use std::sync::{Mutex, mpsc};
    let config = SamplerConfig {
        interval: Duration::from_millis(5),
        counter_interval: Duration::from_millis(5),
        completion_timeout: Duration::from_millis(50),
        ..SamplerConfig::default()
    };
    let sampler = Arc::new(
        GpuSampler::with_config(
            MockBackend::new(vec![constant(100.0)]),
            Arc::new(SystemClock::new()),
            config,
        )
        .unwrap(),
    );
    let (first_tx, first_rx) = mpsc::channel();
    let (later_tx, later_rx) = mpsc::channel();
    let now = sampler.now();
    // The later window ends 300 ms from now: still pending when the first callback runs.
    let later = sampler.begin(now);
    sampler.end(later, now + Duration::from_millis(300), None, move |r| {
        later_tx.send(r).unwrap();
    });
    let first = sampler.begin(now);
    // The callback takes the last handle and drops it, on the sampler thread.
    let last_handle = Arc::new(Mutex::new(Some(Arc::clone(&sampler))));
    let slot = Arc::clone(&last_handle);
    // Ending 20 ms from now, it completes well after this thread has dropped its handles.
    sampler.end(first, now + Duration::from_millis(20), None, move |_| {
        let sampler = slot.lock().unwrap().take();
        drop(sampler);
        first_tx
            .send(std::thread::current().name().map(str::to_owned))
            .unwrap();
    });
    drop(last_handle); // the callback's slot now holds the only other handle
    drop(sampler);
    let thread = first_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the first callback ran to its end (a self-join panics before the send)");
    assert_eq!(thread.as_deref(), Some("gpu-sampler"));
    let reading = later_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the pending window was completed by the stopping sampler thread");
    assert!(reading.end > reading.start);
}
