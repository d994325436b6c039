//! EventBus behaviour: ordering, unsubscribe, re-entrancy, panic containment, concurrency.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;

use telemetry_core::{Event, EventBus, EventType, StreamToken, SubscriptionId, TelemetryRecord};

fn record(tokens: u64) -> Event {
    Event::from(
        TelemetryRecord::builder("m", 1_764_300_000.0)
            .tokens(0, tokens)
            .build(),
    )
}

#[test]
fn subscribers_run_in_registration_order_in_the_publishing_thread() {
    let bus = EventBus::new();
    let log = Arc::new(Mutex::new(Vec::new()));
    let publisher = thread::current().id();
    for i in 0..5 {
        let log = Arc::clone(&log);
        bus.subscribe(EventType::TelemetryRecord, move |_| {
            assert_eq!(thread::current().id(), publisher);
            log.lock().unwrap().push(i);
        });
    }
    bus.publish(record(1));
    assert_eq!(*log.lock().unwrap(), vec![0, 1, 2, 3, 4]);
}

#[test]
fn subscribers_only_see_their_event_type() {
    let bus = EventBus::new();
    let records = Arc::new(AtomicUsize::new(0));
    let tokens = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&records);
    bus.subscribe(EventType::TelemetryRecord, move |_| {
        r.fetch_add(1, Ordering::SeqCst);
    });
    let t = Arc::clone(&tokens);
    bus.subscribe(EventType::StreamToken, move |e| {
        assert_eq!(e.event_type(), EventType::StreamToken);
        t.fetch_add(1, Ordering::SeqCst);
    });
    bus.publish(record(1));
    bus.publish(Event::StreamToken(StreamToken {
        call_id: 7,
        index: 0,
        elapsed_seconds: 0.01,
    }));
    bus.publish(record(2));
    assert_eq!(records.load(Ordering::SeqCst), 2);
    assert_eq!(tokens.load(Ordering::SeqCst), 1);
    assert!(bus.has_subscribers(EventType::StreamToken));
    assert!(!bus.has_subscribers(EventType::BatchEnd));
}

#[test]
fn unsubscribe_stops_delivery_and_keeps_others() {
    let bus = EventBus::new();
    let a = Arc::new(AtomicUsize::new(0));
    let b = Arc::new(AtomicUsize::new(0));
    let a2 = Arc::clone(&a);
    let id_a = bus.subscribe(EventType::TelemetryRecord, move |_| {
        a2.fetch_add(1, Ordering::SeqCst);
    });
    let b2 = Arc::clone(&b);
    bus.subscribe(EventType::TelemetryRecord, move |_| {
        b2.fetch_add(1, Ordering::SeqCst);
    });
    bus.publish(record(1));
    assert!(bus.unsubscribe(id_a));
    assert!(!bus.unsubscribe(id_a), "second unsubscribe is a no-op");
    bus.publish(record(1));
    assert_eq!(a.load(Ordering::SeqCst), 1);
    assert_eq!(b.load(Ordering::SeqCst), 2);
    assert_eq!(bus.subscriber_count(EventType::TelemetryRecord), 1);
}

#[test]
fn a_callback_may_subscribe_and_unsubscribe_without_deadlock() {
    let bus = Arc::new(EventBus::new());
    let late_calls = Arc::new(AtomicUsize::new(0));
    let own_id: Arc<OnceLock<SubscriptionId>> = Arc::new(OnceLock::new());

    let bus2 = Arc::clone(&bus);
    let late = Arc::clone(&late_calls);
    let own = Arc::clone(&own_id);
    let id = bus.subscribe(EventType::TelemetryRecord, move |_| {
        let late = Arc::clone(&late);
        // Subscribes a new callback and removes itself, from inside its own call.
        bus2.subscribe(EventType::TelemetryRecord, move |_| {
            late.fetch_add(1, Ordering::SeqCst);
        });
        if let Some(id) = own.get() {
            assert!(bus2.unsubscribe(*id));
        }
    });
    own_id.set(id).unwrap();

    bus.publish(record(1)); // adds the late subscriber (not called for this event), removes itself
    assert_eq!(late_calls.load(Ordering::SeqCst), 0);
    bus.publish(record(1));
    assert_eq!(late_calls.load(Ordering::SeqCst), 1);
    assert_eq!(bus.subscriber_count(EventType::TelemetryRecord), 1);
}

#[test]
fn a_panicking_subscriber_is_contained_and_counted() {
    let bus = EventBus::new();
    let after = Arc::new(AtomicUsize::new(0));
    bus.subscribe(EventType::TelemetryRecord, |_| panic!("subscriber bug"));
    let a = Arc::clone(&after);
    bus.subscribe(EventType::TelemetryRecord, move |_| {
        a.fetch_add(1, Ordering::SeqCst);
    });
    bus.publish(record(1));
    bus.publish(record(1));
    assert_eq!(
        after.load(Ordering::SeqCst),
        2,
        "later subscribers still ran"
    );
    assert_eq!(bus.stats().subscriber_panics, 2);
    assert_eq!(bus.stats().published, 2);
    // The bus still accepts subscriptions and delivers after the panics.
    let more = Arc::new(AtomicUsize::new(0));
    let m = Arc::clone(&more);
    bus.subscribe(EventType::TelemetryRecord, move |_| {
        m.fetch_add(1, Ordering::SeqCst);
    });
    bus.publish(record(1));
    assert_eq!(more.load(Ordering::SeqCst), 1);
}

#[test]
fn eight_threads_publishing_lose_nothing() {
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 10_000;
    let bus = Arc::new(EventBus::new());
    let count = Arc::new(AtomicU64::new(0));
    let sum = Arc::new(AtomicU64::new(0));
    let (c, s) = (Arc::clone(&count), Arc::clone(&sum));
    bus.subscribe(EventType::TelemetryRecord, move |e| {
        c.fetch_add(1, Ordering::Relaxed);
        s.fetch_add(e.as_record().unwrap().completion_tokens, Ordering::Relaxed);
    });
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let bus = Arc::clone(&bus);
            thread::spawn(move || {
                for i in 0..PER_THREAD {
                    bus.publish(record(t * PER_THREAD + i));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let n = THREADS * PER_THREAD;
    assert_eq!(count.load(Ordering::Relaxed), n);
    assert_eq!(sum.load(Ordering::Relaxed), n * (n - 1) / 2);
    assert_eq!(bus.stats().published, n);
}

#[test]
fn history_records_what_was_published() {
    let bus = EventBus::with_history(10);
    bus.publish(record(3));
    let history = bus.history();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].as_record().unwrap().completion_tokens, 3);
    assert!(EventBus::new().history().is_empty());
}
