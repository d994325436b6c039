//! [`render`]: the `/metrics` text of a telemetry database.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use telemetry_agg::{RollupGroup, TelemetryAggregator};
use telemetry_core::{QuantileSketch, Rollup, TimeRange};

use crate::buckets::{LATENCY_SECONDS, TIME_PER_OUTPUT_TOKEN_SECONDS};
use crate::error::RenderError;
use crate::format::Format;

/// The default metric name prefix: `inference_calls_total`, `inference_latency_seconds`, ...
pub const DEFAULT_NAMESPACE: &str = "inference";

/// Label sets (model, engine, agent) exposed per metric by default before the overflow series
/// takes the rest (the OpenTelemetry metrics SDK's default cardinality limit).
pub const DEFAULT_SERIES_LIMIT: usize = 2000;

/// The label of the series that holds the calls of the label sets beyond the series limit
/// (`otel.metric.overflow` in OpenTelemetry, spelled as a Prometheus label).
pub const OVERFLOW_LABEL: &str = "otel_metric_overflow";

/// What [`render`] exposes: the metric name prefix, the time range of the records counted, the
/// text format and the series limit.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderOptions {
    namespace: String,
    range: TimeRange,
    format: Format,
    series_limit: usize,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            namespace: DEFAULT_NAMESPACE.to_owned(),
            range: TimeRange::all(),
            format: Format::default(),
            series_limit: DEFAULT_SERIES_LIMIT,
        }
    }
}

impl RenderOptions {
    /// Every record, names prefixed with [`DEFAULT_NAMESPACE`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Prefixes the metric names with `namespace` (checked by [`render`]).
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Counts only the records in `range` (counters then restart when the range moves, so keep
    /// the default, every record, for a scraped endpoint).
    pub fn with_range(mut self, range: TimeRange) -> Self {
        self.range = range;
        self
    }

    /// Writes `format` (the Prometheus text format by default; see [`Format::negotiate`] to
    /// answer a scraper's `Accept` header).
    pub fn with_format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    /// Exposes at most `limit` label sets (model, engine, agent) per metric (at least 1; default
    /// [`DEFAULT_SERIES_LIMIT`]): the first met (earliest day, then by name) keep their series,
    /// the calls of the others are merged into one series labelled
    /// `otel_metric_overflow="true"`, and `{namespace}_folded_series` says how many were merged.
    /// Model names come from clients: this bounds the scrape's size and the memory it takes.
    pub fn with_series_limit(mut self, limit: usize) -> Self {
        self.series_limit = limit.max(1);
        self
    }

    /// Label sets exposed per metric at most.
    pub fn series_limit(&self) -> usize {
        self.series_limit
    }

    /// The text format written.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The metric name prefix.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The time range counted.
    pub fn range(&self) -> &TimeRange {
        &self.range
    }
}

/// The text exposition (Prometheus 0.0.4 by default, or OpenMetrics: [`RenderOptions::with_format`];
/// its `Content-Type` is [`Format::content_type`]) of every record in the database that `agg` reads, computed read-only from the stored rollups at each call, so a scrape
/// over ten million records reads a few thousand summary rows. See the [crate docs](crate) for
/// the metrics.
pub fn render(agg: &TelemetryAggregator, options: &RenderOptions) -> Result<String, RenderError> {
    check_namespace(&options.namespace)?;
    let limited = agg.rollups_by_group_limited(&options.range, options.series_limit)?;
    encode(
        Exposition {
            namespace: options.namespace.clone(),
            groups: limited.groups,
            overflow: limited.overflow,
            folded: limited.folded_groups,
        },
        options,
    )
}

/// Renders already-read groups (what [`render`] does after its query); for callers that keep
/// their own rollups, e.g. live in a proxy. Groups beyond the series limit, in the order given,
/// are merged into the overflow series.
pub fn render_groups(
    mut groups: Vec<RollupGroup>,
    options: &RenderOptions,
) -> Result<String, RenderError> {
    check_namespace(&options.namespace)?;
    let rest = groups.split_off(groups.len().min(options.series_limit));
    let folded = rest.len() as u64;
    let overflow = rest.into_iter().fold(None, |acc: Option<Rollup>, g| {
        let mut r = acc.unwrap_or_default();
        r.merge(&g.rollup);
        Some(r)
    });
    encode(
        Exposition {
            namespace: options.namespace.clone(),
            groups,
            overflow,
            folded,
        },
        options,
    )
}

fn encode(exposition: Exposition, options: &RenderOptions) -> Result<String, RenderError> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(exposition));
    let mut out = String::new();
    match options.format {
        Format::Prometheus => {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
        }
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry)?,
    }
    Ok(out)
}

fn check_namespace(ns: &str) -> Result<(), RenderError> {
    let mut chars = ns.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    if ok {
        Ok(())
    } else {
        Err(RenderError::BadNamespace(ns.to_owned()))
    }
}

/// The groups of one scrape, encoded as metric families by [`Collector::encode`].
#[derive(Debug)]
struct Exposition {
    namespace: String,
    groups: Vec<RollupGroup>,
    /// The merged calls of the groups beyond the series limit.
    overflow: Option<Rollup>,
    /// How many groups `overflow` merged.
    folded: u64,
}

/// One series' labels and rollup: a group's, or the overflow series'.
struct Series<'a> {
    labels: Vec<(&'static str, &'a str)>,
    rollup: &'a Rollup,
}

impl Exposition {
    /// Every series, the overflow one last.
    fn series(&self) -> impl Iterator<Item = Series<'_>> {
        self.groups
            .iter()
            .map(|g| Series {
                labels: vec![
                    ("model", g.model_id.as_str()),
                    ("engine", g.engine.as_str()),
                    ("agent", g.agent.as_str()),
                ],
                rollup: &g.rollup,
            })
            .chain(self.overflow.iter().map(|rollup| Series {
                labels: vec![(OVERFLOW_LABEL, "true")],
                rollup,
            }))
    }
}

impl Exposition {
    fn counter<V>(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
        name: &str,
        help: &str,
        unit: Option<Unit>,
        value: impl Fn(&Rollup) -> V,
    ) -> Result<(), std::fmt::Error>
    where
        V: prometheus_client::encoding::EncodeCounterValue,
    {
        let name = format!("{}_{name}", self.namespace);
        let mut family =
            encoder.encode_descriptor(&name, help, unit.as_ref(), MetricType::Counter)?;
        for g in self.series() {
            family
                .encode_family(&g.labels)?
                .encode_counter::<NoLabelSet, V, f64>(&value(g.rollup), None)?;
        }
        Ok(())
    }

    fn histogram(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
        name: &str,
        help: &str,
        bounds: &[f64],
        data: impl Fn(&Rollup) -> Option<Histo<'_>>,
    ) -> Result<(), std::fmt::Error> {
        let name = format!("{}_{name}", self.namespace);
        let mut family =
            encoder.encode_descriptor(&name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
        for g in self.series() {
            let Some(h) = data(g.rollup) else { continue };
            encode_histogram(family.encode_family(&g.labels)?, &h, bounds)?;
        }
        Ok(())
    }
}

/// One histogram series: a sketch (in `scale` units per second) and its exact sum when known.
struct Histo<'a> {
    sketch: &'a QuantileSketch,
    /// Multiply sketch values by this to get seconds.
    scale: f64,
    /// Exact sum in seconds, where the rollup keeps one.
    sum: Option<f64>,
}

fn encode_histogram(
    mut encoder: MetricEncoder<'_>,
    h: &Histo<'_>,
    bounds: &[f64],
) -> Result<(), std::fmt::Error> {
    // Bounds are in seconds; the sketch may hold milliseconds.
    let scaled: Vec<f64> = bounds.iter().map(|b| b / h.scale).collect();
    let counts = h.sketch.bucket_counts(&scaled);
    let buckets: Vec<(f64, u64)> = bounds
        .iter()
        .copied()
        .chain(std::iter::once(f64::INFINITY))
        .zip(counts)
        .collect();
    let sum = h.sum.unwrap_or_else(|| h.sketch.estimated_sum() * h.scale);
    encoder.encode_histogram::<NoLabelSet>(sum, h.sketch.count(), &buckets, None)
}

impl Collector for Exposition {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        {
            let name = format!("{}_calls", self.namespace);
            let mut family = e.encode_descriptor(
                &name,
                "Inference calls recorded, by outcome (error: the call failed; ok: every other call, cancelled ones included)",
                None,
                MetricType::Counter,
            )?;
            for g in self.series() {
                let r = g.rollup;
                for (outcome, n) in [
                    ("ok", r.call_count.saturating_sub(r.error_count)),
                    ("error", r.error_count),
                ] {
                    let mut l = g.labels.clone();
                    l.push(("outcome", outcome));
                    family
                        .encode_family(&l)?
                        .encode_counter::<NoLabelSet, u64, f64>(&n, None)?;
                }
            }
        }
        {
            let name = format!("{}_folded_series", self.namespace);
            let mut family = e.encode_descriptor(
                &name,
                "Label sets (model, engine, agent) beyond the series limit, whose calls are in the series labelled otel_metric_overflow=\"true\"",
                None,
                MetricType::Gauge,
            )?;
            family.encode_gauge(&(self.folded as i64))?;
        }
        self.counter(
            e,
            "input_tokens",
            "Input (prompt) tokens of the recorded calls",
            None,
            |r| r.prompt_tokens,
        )?;
        self.counter(
            e,
            "output_tokens",
            "Output (completion) tokens of the recorded calls",
            None,
            |r| r.completion_tokens,
        )?;
        self.counter(
            e,
            "cost",
            "Cost of the recorded calls, US dollars (engine-reported or from a price table)",
            Some(Unit::Other("usd".to_owned())),
            |r| r.total_cost,
        )?;
        self.counter(
            e,
            "energy",
            "GPU energy attributed to the recorded calls that have a measurement",
            Some(Unit::Joules),
            |r| r.energy_sum,
        )?;
        self.histogram(
            e,
            "latency",
            "Wall time of each call (buckets re-binned from the stored 0.5 % quantile sketches)",
            &LATENCY_SECONDS,
            |r| {
                Some(Histo {
                    sketch: &r.latency,
                    scale: 1.0,
                    sum: Some(r.total_latency),
                })
            },
        )?;
        self.histogram(
            e,
            "time_to_first_token",
            "Time to first token of the calls that measured one (buckets re-binned from the stored sketches)",
            &LATENCY_SECONDS,
            |r| {
                (r.ttft.count() > 0).then_some(Histo {
                    sketch: &r.ttft,
                    scale: 1.0,
                    sum: Some(r.ttft_sum),
                })
            },
        )?;
        self.histogram(
            e,
            "time_per_output_token",
            "Mean inter-token latency of each streamed call (buckets re-binned from the stored sketches; the sum is estimated from them)",
            &TIME_PER_OUTPUT_TOKEN_SECONDS,
            |r| {
                (r.itl.count() > 0).then_some(Histo {
                    sketch: &r.itl,
                    scale: 1e-3,
                    sum: None,
                })
            },
        )?;
        Ok(())
    }
}
