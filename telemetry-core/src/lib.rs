//! # telemetry-core
//!
//! The vocabulary of the inference-telemetry workspace, with no I/O:
//!
//! - [`TelemetryRecord`]: one inference call (timing, tokens, cost, energy, GPU state, outcome),
//!   with [`TelemetryRecord::validate`] saying exactly which field is wrong; its [`Metadata`]
//!   is shared, not copied, between the records that carry the same.
//! - [`TimeRange`]: the inclusive `since <= timestamp <= until` filter of every query.
//! - [`Event`] / [`EventType`] and the [`EventBus`] that carries them from instrumented engines
//!   to the store, synchronously, in registration order, containing panicking subscribers.
//! - [`QuantileSketch`] and [`Rollup`]: the mergeable summaries behind fast, true percentiles.
//! - [`RECORD_FIELDS`]: the one description of the record's fields, from which the columns, the
//!   store's binding, the readers' decoding and the CSV and JSON layouts derive.
//! - [`api`] and [`operation`]: the names of the APIs and GenAI operations a record names.
//! - [`schema`]: the SQLite schema, defined once for the writer and the readers.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use telemetry_core::{Event, EventBus, EventType, TelemetryRecord};
//!
//! let bus = EventBus::new();
//! let stored = Arc::new(Mutex::new(Vec::new()));
//! let sink = Arc::clone(&stored);
//! bus.subscribe(EventType::TelemetryRecord, move |event| {
//!     if let Some(record) = event.as_record() {
//!         if record.validate().is_ok() {
//!             sink.lock().unwrap().push(Arc::clone(record));
//!         }
//!     }
//! });
//!
//! let record = TelemetryRecord::builder("qwen2.5-7b", 1_764_300_000.0)
//!     .engine("llama.cpp")
//!     .tokens(200, 64)
//!     .latency_seconds(1.9)
//!     .build();
//! bus.publish(Event::from(record));
//! assert_eq!(stored.lock().unwrap().len(), 1);
//! ```
//!
//! ## Feature flags
//!
//! - `serde` (default): `Serialize`/`Deserialize` for records, event payloads and time ranges.
//! - `testing`: [`testing`], record fixtures (a sample factory and proptest strategies) that the
//!   workspace's tests share; pulls in `proptest`.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod bus;
mod error;
mod event;
mod fields;
mod metadata;
mod names;
mod record;
mod rollup;
mod rollup_fields;
pub mod schema;
mod sketch;
mod strings;
#[cfg(feature = "testing")]
pub mod testing;
mod time_range;
mod validate;

pub use bus::{BusStats, EventBus, SubscriptionId};
pub use error::{SketchDecodeError, TimeRangeError, ValidationError};
pub use event::{BatchInfo, CallId, Event, EventType, InferenceEnd, InferenceStart, StreamToken};
pub use fields::{
    FIELD_COUNT, FieldDecodeError, FieldKind, FieldValue, RECORD_FIELDS, RecordField, StoredValue,
    field_index,
};
pub use metadata::Metadata;
pub use names::{api, operation};
pub use record::{EnergyMethod, Outcome, TelemetryRecord, TelemetryRecordBuilder};
pub use rollup::{ROLLUP_LEVELS, RollupKey, bucket_start};
pub use rollup_fields::{
    ROLLUP_FIELD_COUNT, ROLLUP_FIELDS, ROLLUP_INPUT_FIELDS, ROLLUP_INPUTS, Rollup,
    RollupDecodeError, RollupField, RollupKind, RollupValue,
};
pub use sketch::{QuantileSketch, RELATIVE_ACCURACY};
pub use strings::{STRING_BY_ID_SQL, StringCache, parse_stored_id, stored_id};
pub use time_range::TimeRange;
/// The longest wait any setting of these crates can hold (about 100 years): the store's, the
/// proxy's and the OTLP exporter's setters take a longer one as this. A deadline is the time now
/// plus the wait, and a wait near `Duration::MAX` would overflow it.
pub const LONGEST_WAIT: std::time::Duration =
    std::time::Duration::from_secs(100 * 365 * 24 * 60 * 60);

pub use validate::{
    MAX_ERROR_MESSAGE_BYTES, MAX_LABEL_BYTES, MAX_METADATA_BYTES, MAX_NAME_BYTES, MAX_TIMESTAMP,
    MAX_TOKENS, MIN_TIMESTAMP, is_name,
};
