//! Cumulative metrics over the records seen: explicit-bucket histograms and counters keyed by
//! the GenAI attribute set, turned into an OTLP metrics request on demand.

use std::collections::HashMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use telemetry_core::{Outcome, TelemetryRecord};

use crate::device::{DeviceReading, Devices};
use crate::semconv as sc;
use crate::span::{error_type, kv, kv_str, operation_name, scope, server};

/// The attributes a data point is keyed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    operation: &'static str,
    provider: String,
    model: String,
    server_address: Option<String>,
    server_port: Option<u16>,
    /// `error.type` (duration only) or `gen_ai.token.type` (token usage only).
    extra: Option<(&'static str, String)>,
}

impl Key {
    fn of(record: &TelemetryRecord) -> Self {
        let (address, port) = server(record);
        Key {
            operation: operation_name(record),
            provider: record.engine.clone(),
            model: record.model_id.clone(),
            server_address: address.map(str::to_owned),
            server_port: address.and(port),
            extra: None,
        }
    }

    fn with(&self, key: &'static str, value: &str) -> Self {
        Key {
            extra: Some((key, value.to_owned())),
            ..self.clone()
        }
    }

    fn attributes(&self) -> Vec<KeyValue> {
        let mut a = vec![kv_str(sc::GEN_AI_OPERATION_NAME, self.operation)];
        if !self.provider.is_empty() {
            a.push(kv_str(sc::GEN_AI_PROVIDER_NAME, &self.provider));
        }
        a.push(kv_str(sc::GEN_AI_REQUEST_MODEL, &self.model));
        a.push(kv_str(sc::GEN_AI_RESPONSE_MODEL, &self.model));
        if let Some(address) = &self.server_address {
            a.push(kv_str(sc::SERVER_ADDRESS, address));
        }
        if let Some(port) = self.server_port {
            a.push(kv(
                sc::SERVER_PORT,
                any_value::Value::IntValue(i64::from(port)),
            ));
        }
        if let Some((k, v)) = &self.extra {
            a.push(kv_str(k, v));
        }
        a
    }
}

/// One instrument's data points by attribute set, at most `limit` of them; measurements of
/// further attribute sets go to the overflow point (`otel.metric.overflow = true`), as the
/// OpenTelemetry metrics SDK does. Cumulative series are never evicted, so this is what bounds
/// memory and request size when clients choose the model names.
#[derive(Debug)]
struct Series<T> {
    points: HashMap<Key, T>,
    overflow: Option<T>,
    limit: usize,
    /// Measurements that went to the overflow point.
    folded: u64,
}

impl<T> Series<T> {
    fn new(limit: usize) -> Self {
        Series {
            points: HashMap::new(),
            overflow: None,
            limit,
            folded: 0,
        }
    }

    /// The point of `key`, or the overflow point when `key` is new and the limit is reached.
    fn slot(&mut self, key: Key, new: impl FnOnce() -> T) -> &mut T {
        if self.points.len() < self.limit || self.points.contains_key(&key) {
            return self.points.entry(key).or_insert_with(new);
        }
        self.folded += 1;
        self.overflow.get_or_insert_with(new)
    }

    fn is_empty(&self) -> bool {
        self.points.is_empty() && self.overflow.is_none()
    }

    /// Every point with its attributes, the overflow point last.
    fn attributed(&self) -> impl Iterator<Item = (Vec<KeyValue>, &T)> {
        self.points
            .iter()
            .map(|(k, v)| (k.attributes(), v))
            .chain(self.overflow.iter().map(|v| (overflow_attributes(), v)))
    }
}

fn overflow_attributes() -> Vec<KeyValue> {
    vec![kv(
        sc::OTEL_METRIC_OVERFLOW,
        any_value::Value::BoolValue(true),
    )]
}

/// An explicit-bucket histogram: bucket `i` counts values in `(bounds[i-1], bounds[i]]`, the
/// last one values above every bound.
#[derive(Debug, Clone)]
struct Buckets {
    bounds: &'static [f64],
    counts: Vec<u64>,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Buckets {
    fn new(bounds: &'static [f64]) -> Self {
        Buckets {
            bounds,
            counts: vec![0; bounds.len() + 1],
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    /// Adds `n` observations of `value`; non-finite or negative values are ignored.
    fn observe_n(&mut self, value: f64, n: u64) {
        if !value.is_finite() || value < 0.0 || n == 0 {
            return;
        }
        let i = self.bounds.partition_point(|b| *b < value);
        self.counts[i] += n;
        self.count += n;
        self.sum += value * n as f64;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    fn point(&self, attributes: Vec<KeyValue>, start: u64, time: u64) -> HistogramDataPoint {
        HistogramDataPoint {
            attributes,
            start_time_unix_nano: start,
            time_unix_nano: time,
            count: self.count,
            sum: Some(self.sum),
            bucket_counts: self.counts.clone(),
            explicit_bounds: self.bounds.to_vec(),
            min: (self.count > 0).then_some(self.min),
            max: (self.count > 0).then_some(self.max),
            ..Default::default()
        }
    }
}

/// One histogram instrument: a name, a unit, its bounds and a histogram per attribute set.
#[derive(Debug)]
struct HistogramInstrument {
    name: &'static str,
    description: &'static str,
    unit: &'static str,
    bounds: &'static [f64],
    series: Series<Buckets>,
}

impl HistogramInstrument {
    fn new(
        name: &'static str,
        description: &'static str,
        unit: &'static str,
        bounds: &'static [f64],
        limit: usize,
    ) -> Self {
        HistogramInstrument {
            name,
            description,
            unit,
            bounds,
            series: Series::new(limit),
        }
    }

    fn observe_n(&mut self, key: Key, value: f64, n: u64) {
        let bounds = self.bounds;
        self.series
            .slot(key, || Buckets::new(bounds))
            .observe_n(value, n);
    }

    fn metric(&self, start: u64, time: u64) -> Option<Metric> {
        if self.series.is_empty() {
            return None;
        }
        let data_points = self
            .series
            .attributed()
            .map(|(a, b)| b.point(a, start, time))
            .collect();
        Some(Metric {
            name: self.name.to_owned(),
            description: self.description.to_owned(),
            unit: self.unit.to_owned(),
            data: Some(metric::Data::Histogram(Histogram {
                data_points,
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            })),
            ..Default::default()
        })
    }
}

/// A monotonic, cumulative sum of doubles per attribute set.
#[derive(Debug)]
struct CounterInstrument {
    name: &'static str,
    description: &'static str,
    unit: &'static str,
    series: Series<f64>,
}

impl CounterInstrument {
    fn add(&mut self, key: Key, value: f64) {
        if value.is_finite() && value >= 0.0 {
            *self.series.slot(key, || 0.0) += value;
        }
    }

    fn metric(&self, start: u64, time: u64) -> Option<Metric> {
        if self.series.is_empty() {
            return None;
        }
        let data_points = self
            .series
            .attributed()
            .map(|(attributes, v)| NumberDataPoint {
                attributes,
                start_time_unix_nano: start,
                time_unix_nano: time,
                value: Some(number_data_point::Value::AsDouble(*v)),
                ..Default::default()
            })
            .collect();
        crate::device::sum(self.name, self.description, self.unit, data_points, true)
    }
}

/// Every instrument, fed one record at a time.
#[derive(Debug)]
pub(crate) struct MetricsState {
    start_ns: u64,
    duration: HistogramInstrument,
    tokens: HistogramInstrument,
    ttfc: HistogramInstrument,
    tpoc: HistogramInstrument,
    energy: HistogramInstrument,
    energy_total: CounterInstrument,
    cost_total: CounterInstrument,
    /// The newest reading of each device (live export only).
    devices: Devices,
    /// Records or device readings observed since the last metrics export the collector
    /// acknowledged: the totals are resent (cumulative, so nothing is counted twice) at every
    /// export until one succeeds, the last one at shutdown included.
    pub(crate) unsent: bool,
    /// Calls at least one of whose measurements went to an overflow series.
    pub(crate) calls_folded: u64,
}

impl MetricsState {
    /// Cumulative series starting at `start_ns` (unix nanoseconds), at most `limit` attribute
    /// sets per instrument.
    pub(crate) fn new(start_ns: u64, limit: usize) -> Self {
        MetricsState {
            start_ns,
            duration: HistogramInstrument::new(
                sc::GEN_AI_CLIENT_OPERATION_DURATION,
                "GenAI operation duration.",
                "s",
                &sc::DURATION_BUCKETS,
                limit,
            ),
            tokens: HistogramInstrument::new(
                sc::GEN_AI_CLIENT_TOKEN_USAGE,
                "Number of input and output tokens used.",
                "{token}",
                &sc::TOKEN_BUCKETS,
                limit,
            ),
            ttfc: HistogramInstrument::new(
                sc::GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK,
                "Time to receive the first chunk of a stream.",
                "s",
                &sc::CHUNK_BUCKETS,
                limit,
            ),
            tpoc: HistogramInstrument::new(
                sc::GEN_AI_CLIENT_OPERATION_TIME_PER_OUTPUT_CHUNK,
                "Time between output chunks after the first (each call's mean gap, once per chunk).",
                "s",
                &sc::CHUNK_BUCKETS,
                limit,
            ),
            energy: HistogramInstrument::new(
                sc::TELEMETRY_CLIENT_OPERATION_ENERGY,
                "GPU energy attributed to each call.",
                "J",
                &sc::ENERGY_BUCKETS,
                limit,
            ),
            energy_total: CounterInstrument {
                name: sc::TELEMETRY_CLIENT_ENERGY,
                description: "GPU energy attributed to calls.",
                unit: "J",
                series: Series::new(limit),
            },
            cost_total: CounterInstrument {
                name: sc::TELEMETRY_CLIENT_COST,
                description: "Cost of calls in US dollars.",
                unit: "{USD}",
                series: Series::new(limit),
            },
            devices: Devices::default(),
            unsent: false,
            calls_folded: 0,
        }
    }

    /// Moves the start of every cumulative series (a backfill starts at its first record).
    pub(crate) fn set_start(&mut self, start_ns: u64) {
        self.start_ns = start_ns;
    }

    /// Adds one call to every instrument it concerns.
    pub(crate) fn observe(&mut self, r: &TelemetryRecord) {
        let folded_before = self.folded();
        self.observe_measurements(r);
        if self.folded() != folded_before {
            self.calls_folded += 1;
        }
    }

    /// Measurements folded into an overflow series so far, over every instrument.
    fn folded(&self) -> u64 {
        [
            &self.duration,
            &self.tokens,
            &self.ttfc,
            &self.tpoc,
            &self.energy,
        ]
        .iter()
        .map(|h| h.series.folded)
        .sum::<u64>()
            + self.energy_total.series.folded
            + self.cost_total.series.folded
    }

    fn observe_measurements(&mut self, r: &TelemetryRecord) {
        self.unsent = true;
        let key = Key::of(r);
        let duration_key = match error_type(r) {
            Some(kind) => key.with(sc::ERROR_TYPE, kind),
            None => key.clone(),
        };
        self.duration.observe_n(duration_key, r.latency_seconds, 1);
        if r.outcome != Outcome::Error {
            let input = key.with(sc::GEN_AI_TOKEN_TYPE, sc::TOKEN_TYPE_INPUT);
            self.tokens.observe_n(input, r.prompt_tokens as f64, 1);
            let output = key.with(sc::GEN_AI_TOKEN_TYPE, sc::TOKEN_TYPE_OUTPUT);
            self.tokens.observe_n(output, r.completion_tokens as f64, 1);
        }
        if r.is_streaming {
            if let Some(ttft) = r.ttft {
                self.ttfc.observe_n(key.clone(), ttft, 1);
            }
            // The record keeps the gaps' statistics, not each gap: their mean stands for every
            // output chunk after the first (a chunk may hold many tokens, so chunks, not
            // tokens), so count and sum are exact and the buckets approximate. A record that
            // does not count its chunks (written before they were counted) adds nothing.
            if let Some(itl_ms) = r.mean_itl_ms {
                let chunks_after_first = r.output_chunks.saturating_sub(1);
                self.tpoc
                    .observe_n(key.clone(), itl_ms / 1000.0, chunks_after_first);
            }
        }
        if let Some(joules) = r.energy_joules {
            self.energy.observe_n(key.clone(), joules, 1);
            self.energy_total.add(key.clone(), joules);
        }
        if r.cost_usd > 0.0 {
            self.cost_total.add(key, r.cost_usd);
        }
    }

    /// Keeps a device's reading for the device-level series (when it is the device's newest).
    pub(crate) fn observe_device(&mut self, reading: DeviceReading) {
        if self.devices.observe(reading) {
            self.unsent = true;
        }
    }

    /// Every series, cumulative from the start, as of `time_ns` (device series as of their newest
    /// reading); `None` before any record or device reading.
    pub(crate) fn request(
        &self,
        resource: &Resource,
        time_ns: u64,
    ) -> Option<ExportMetricsServiceRequest> {
        let start = self.start_ns.min(time_ns);
        let mut metrics: Vec<Metric> = [
            self.duration.metric(start, time_ns),
            self.tokens.metric(start, time_ns),
            self.ttfc.metric(start, time_ns),
            self.tpoc.metric(start, time_ns),
            self.energy.metric(start, time_ns),
            self.energy_total.metric(start, time_ns),
            self.cost_total.metric(start, time_ns),
        ]
        .into_iter()
        .flatten()
        .collect();
        self.devices.metrics(&mut metrics);
        if metrics.is_empty() {
            return None;
        }
        Some(ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(resource.clone()),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(scope()),
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_upper_bounds_are_inclusive() {
        let mut b = Buckets::new(&sc::DURATION_BUCKETS);
        b.observe_n(0.01, 1); // on the first bound: first bucket
        b.observe_n(0.010001, 1); // just above: second
        b.observe_n(100.0, 2); // above every bound: overflow bucket
        b.observe_n(f64::NAN, 1);
        b.observe_n(-1.0, 1);
        assert_eq!(b.counts[0], 1);
        assert_eq!(b.counts[1], 1);
        assert_eq!(b.counts[14], 2);
        assert_eq!(b.count, 4);
        assert!((b.sum - 200.020001).abs() < 1e-9);
        assert_eq!((b.min, b.max), (0.01, 100.0));
    }

    #[test]
    fn no_records_no_request() {
        let m = MetricsState::new(1, 10);
        assert!(m.request(&Resource::default(), 2).is_none());
    }
}
