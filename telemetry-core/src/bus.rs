//! [`EventBus`]: synchronous, thread-safe publish/subscribe for telemetry events.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use crate::event::{Event, EventType};

/// Handle returned by [`EventBus::subscribe`]; pass it to [`EventBus::unsubscribe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(u64);

type Callback = Arc<dyn Fn(&Event) + Send + Sync + 'static>;

struct Subscriber {
    id: SubscriptionId,
    callback: Callback,
}

/// One list per event type. Publishing clones the `Arc` of the current list under a short read
/// lock and calls subscribers after releasing it, so callbacks may subscribe or unsubscribe
/// (copy-on-write) without deadlock, and a panicking callback never poisons anything.
struct Slot {
    subscribers: RwLock<Arc<Vec<Subscriber>>>,
    /// Number of subscribers, read without locking so that publishing to nobody is a load.
    count: AtomicUsize,
}

impl Default for Slot {
    fn default() -> Self {
        Slot {
            subscribers: RwLock::new(Arc::new(Vec::new())),
            count: AtomicUsize::new(0),
        }
    }
}

/// Counters describing a bus's life so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BusStats {
    /// Events published.
    pub published: u64,
    /// Subscriber calls that panicked (the panic was caught; other subscribers still ran).
    pub subscriber_panics: u64,
}

/// A synchronous publish/subscribe bus for [`Event`]s.
///
/// - Subscribers run in the publisher's thread, in registration order, per event type.
/// - `Send + Sync`: share it behind an `Arc` between threads.
/// - A callback may subscribe or unsubscribe (itself included) from inside a callback; the change
///   applies from the next publish.
/// - A panicking callback is contained: the panic is caught, counted in
///   [`stats`](EventBus::stats), reported through `tracing`, and the remaining subscribers still run.
/// - Publishing an event type nobody subscribed to costs one atomic load.
///
/// ```
/// use std::sync::{Arc, atomic::{AtomicU64, Ordering}};
/// use telemetry_core::{Event, EventBus, EventType, TelemetryRecord};
///
/// let bus = EventBus::new();
/// let seen = Arc::new(AtomicU64::new(0));
/// let counter = Arc::clone(&seen);
/// let id = bus.subscribe(EventType::TelemetryRecord, move |event| {
///     if let Some(record) = event.as_record() {
///         counter.fetch_add(record.completion_tokens, Ordering::Relaxed);
///     }
/// });
/// bus.publish(Event::from(TelemetryRecord::builder("m", 1.7e9).tokens(3, 4).build()));
/// assert_eq!(seen.load(Ordering::Relaxed), 4);
/// assert!(bus.unsubscribe(id));
/// ```
pub struct EventBus {
    slots: [Slot; EventType::ALL.len()],
    next_id: AtomicU64,
    published: AtomicU64,
    panics: AtomicU64,
    history: Option<History>,
}

struct History {
    capacity: usize,
    events: Mutex<VecDeque<Event>>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("stats", &self.stats())
            .field(
                "history_capacity",
                &self.history.as_ref().map(|h| h.capacity),
            )
            .finish_non_exhaustive()
    }
}

impl EventBus {
    /// A bus without history.
    pub fn new() -> Self {
        EventBus {
            slots: Default::default(),
            next_id: AtomicU64::new(1),
            published: AtomicU64::new(0),
            panics: AtomicU64::new(0),
            history: None,
        }
    }

    /// A bus that also keeps the last `capacity` published events, for tests and debugging.
    ///
    /// Keeping history counts as listening: publishers that skip events nobody listens to (see
    /// [`EventBus::has_subscribers`]) publish every event type to such a bus.
    pub fn with_history(capacity: usize) -> Self {
        EventBus {
            history: Some(History {
                capacity,
                events: Mutex::new(VecDeque::with_capacity(capacity.min(1024))),
            }),
            ..Self::new()
        }
    }

    /// Registers `callback` for events of `event_type`; it runs after those registered before it.
    pub fn subscribe<F>(&self, event_type: EventType, callback: F) -> SubscriptionId
    where
        F: Fn(&Event) + Send + Sync + 'static,
    {
        let id = SubscriptionId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let slot = &self.slots[event_type.index()];
        let mut guard = slot
            .subscribers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let mut list: Vec<Subscriber> = guard
            .iter()
            .map(|s| Subscriber {
                id: s.id,
                callback: Arc::clone(&s.callback),
            })
            .collect();
        list.push(Subscriber {
            id,
            callback: Arc::new(callback),
        });
        slot.count.store(list.len(), Ordering::Release);
        *guard = Arc::new(list);
        id
    }

    /// Removes a subscription; returns whether it existed.
    pub fn unsubscribe(&self, id: SubscriptionId) -> bool {
        for slot in &self.slots {
            let mut guard = slot
                .subscribers
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if guard.iter().any(|s| s.id == id) {
                let list: Vec<Subscriber> = guard
                    .iter()
                    .filter(|s| s.id != id)
                    .map(|s| Subscriber {
                        id: s.id,
                        callback: Arc::clone(&s.callback),
                    })
                    .collect();
                slot.count.store(list.len(), Ordering::Release);
                *guard = Arc::new(list);
                return true;
            }
        }
        false
    }

    /// Whether anyone listens to `event_type`; publishers can skip building payloads when not.
    ///
    /// Keeping history counts as listening: a bus made with [`EventBus::with_history`] (capacity
    /// above zero) answers `true` for every event type even with no subscriber, so that the history
    /// holds every event a publisher would otherwise have skipped. [`EventBus::subscriber_count`]
    /// counts subscribers only.
    pub fn has_subscribers(&self, event_type: EventType) -> bool {
        self.keeps_history() || self.slots[event_type.index()].count.load(Ordering::Acquire) > 0
    }

    /// Whether published events are kept (a bus made with a history capacity above zero).
    pub fn keeps_history(&self) -> bool {
        self.history.as_ref().is_some_and(|h| h.capacity > 0)
    }

    /// Number of subscribers to `event_type`.
    pub fn subscriber_count(&self, event_type: EventType) -> usize {
        self.slots[event_type.index()].count.load(Ordering::Acquire)
    }

    /// Calls every subscriber of the event's type, in registration order, in this thread.
    pub fn publish(&self, event: Event) {
        self.published.fetch_add(1, Ordering::Relaxed);
        if let Some(history) = &self.history {
            history.push(&event);
        }
        let slot = &self.slots[event.event_type().index()];
        if slot.count.load(Ordering::Acquire) == 0 {
            return;
        }
        let list = Arc::clone(
            &slot
                .subscribers
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for subscriber in list.iter() {
            let result = catch_unwind(AssertUnwindSafe(|| (subscriber.callback)(&event)));
            if let Err(payload) = result {
                self.panics.fetch_add(1, Ordering::Relaxed);
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic payload".to_owned());
                tracing::error!(
                    subscription = subscriber.id.0,
                    event_type = ?event.event_type(),
                    %message,
                    "telemetry bus subscriber panicked; it was contained"
                );
            }
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> BusStats {
        BusStats {
            published: self.published.load(Ordering::Relaxed),
            subscriber_panics: self.panics.load(Ordering::Relaxed),
        }
    }

    /// The kept events, oldest first (empty for a bus made without history).
    pub fn history(&self) -> Vec<Event> {
        match &self.history {
            Some(h) => h
                .events
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .cloned()
                .collect(),
            None => Vec::new(),
        }
    }

    /// Empties the history.
    pub fn clear_history(&self) {
        if let Some(h) = &self.history {
            h.events
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
        }
    }
}

impl History {
    fn push(&self, event: &Event) {
        if self.capacity == 0 {
            return;
        }
        let mut events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        if events.len() == self.capacity {
            events.pop_front();
        }
        events.push_back(event.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::StreamToken;

    fn token(i: u64) -> Event {
        Event::StreamToken(StreamToken {
            call_id: 1,
            index: i,
            elapsed_seconds: 0.0,
        })
    }

    #[test]
    fn history_is_bounded_and_ordered() {
        let bus = EventBus::with_history(3);
        for i in 0..5 {
            bus.publish(token(i));
        }
        let kept: Vec<u64> = bus
            .history()
            .iter()
            .map(|e| match e {
                Event::StreamToken(t) => t.index,
                _ => u64::MAX,
            })
            .collect();
        assert_eq!(kept, vec![2, 3, 4]);
        bus.clear_history();
        assert!(bus.history().is_empty());
        assert_eq!(bus.stats().published, 5);
    }

    #[test]
    fn keeping_history_counts_as_listening() {
        let bus = EventBus::with_history(4);
        for t in EventType::ALL {
            assert!(bus.has_subscribers(t), "{t:?}");
            assert_eq!(bus.subscriber_count(t), 0);
        }
        assert!(bus.keeps_history());
        let none = EventBus::with_history(0);
        assert!(!none.keeps_history());
        assert!(!none.has_subscribers(EventType::StreamToken));
        assert!(!EventBus::new().has_subscribers(EventType::StreamToken));
    }

    #[test]
    fn unsubscribing_an_unknown_id_is_false() {
        let bus = EventBus::new();
        assert!(!bus.unsubscribe(SubscriptionId(42)));
    }

    #[test]
    fn bus_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<EventBus>();
    }
}
