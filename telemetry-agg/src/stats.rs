//! The stats types: [`ModelStats`], [`EngineStats`], [`AgentStats`] and [`AggregatedStats`],
//! all derived from merged [`Rollup`]s with the same rules, each field written once (in
//! `stats_fields!`).
//!
//! - `total_*` are sums over the calls in the range.
//! - `avg_*` are means over the calls that have the value (an unmeasured TTFT is not a zero),
//!   and `0.0` when no call has it; `avg_latency = total_latency / call_count`.
//! - Percentiles estimate `sorted[floor(q * (n - 1))]` within 1 % relative error and are `None`
//!   when no call has the value. Latency and TTFT are in seconds, ITL (per-call mean inter-token
//!   latency) in milliseconds.
//! - Ratios are ratios of sums over the calls that have an energy measurement, and `None` when the
//!   denominator is zero.

use telemetry_core::{QuantileSketch, Rollup};

fn mean(sum: f64, count: u64) -> f64 {
    if count == 0 { 0.0 } else { sum / count as f64 }
}

fn ratio(num: f64, den: f64) -> Option<f64> {
    (den > 0.0).then(|| num / den)
}

fn q(sketch: &QuantileSketch, quantile: f64) -> Option<f64> {
    sketch.quantile(quantile)
}

/// Calls `$m!` with the stats fields every stats type has (after its label and call count, which
/// each names itself), once each: its doc, type, and how it is derived from a merged rollup.
macro_rules! stats_fields {
    ($m:ident ! ($($args:tt)*)) => {
        $m! {
            ($($args)*)
            /// Calls whose outcome is `error`.
            error_count: u64 = |r| r.error_count;
            /// Σ total tokens.
            total_tokens: u64 = |r| r.total_tokens;
            /// Σ prompt (input) tokens.
            prompt_tokens: u64 = |r| r.prompt_tokens;
            /// Σ completion (output) tokens.
            completion_tokens: u64 = |r| r.completion_tokens;
            /// Σ latency, seconds.
            total_latency: f64 = |r| r.total_latency;
            /// `total_latency / call_count`, seconds.
            avg_latency: f64 = |r| mean(r.total_latency, r.call_count);
            /// Σ cost, USD.
            total_cost: f64 = |r| r.total_cost;
            /// Mean TTFT over calls that have one, seconds (0 when none has).
            avg_ttft: f64 = |r| mean(r.ttft_sum, r.ttft_count);
            /// Σ GPU energy, joules.
            total_energy_joules: f64 = |r| r.energy_sum;
            /// Σ prefill-phase GPU energy, joules.
            total_prefill_energy_joules: f64 = |r| r.prefill_energy_sum;
            /// Σ decode-phase GPU energy, joules.
            total_decode_energy_joules: f64 = |r| r.decode_energy_sum;
            /// Σ energy / Σ completion tokens, over calls with an energy measurement, joules per
            /// token; `None` when those calls produced no tokens.
            energy_per_output_token_joules: Option<f64> =
                |r| ratio(r.energy_sum, r.energy_completion_tokens as f64);
            /// Σ completion tokens / Σ energy, over calls with an energy measurement; `None` when
            /// their energy sums to zero.
            output_tokens_per_joule: Option<f64> =
                |r| ratio(r.energy_completion_tokens as f64, r.energy_sum);
            /// Mean GPU utilization over calls that have one, percent (0 when none has).
            avg_gpu_utilization_pct: f64 = |r| mean(r.gpu_util_sum, r.gpu_util_count);
            /// Mean of the per-call throughputs, tokens/s (peer-compatible; 0 when none has one).
            avg_throughput_tok_per_sec: f64 = |r| mean(r.throughput_sum, r.throughput_count);
            /// Median latency, seconds.
            latency_p50: Option<f64> = |r| q(&r.latency, 0.50);
            /// 90th percentile latency, seconds.
            latency_p90: Option<f64> = |r| q(&r.latency, 0.90);
            /// 95th percentile latency, seconds.
            latency_p95: Option<f64> = |r| q(&r.latency, 0.95);
            /// 99th percentile latency, seconds.
            latency_p99: Option<f64> = |r| q(&r.latency, 0.99);
            /// Median TTFT, seconds.
            ttft_p50: Option<f64> = |r| q(&r.ttft, 0.50);
            /// 95th percentile TTFT, seconds.
            ttft_p95: Option<f64> = |r| q(&r.ttft, 0.95);
            /// 99th percentile TTFT, seconds.
            ttft_p99: Option<f64> = |r| q(&r.ttft, 0.99);
            /// Median of the per-call mean inter-token latencies, milliseconds.
            itl_p50: Option<f64> = |r| q(&r.itl, 0.50);
            /// 95th percentile of the per-call mean inter-token latencies, milliseconds.
            itl_p95: Option<f64> = |r| q(&r.itl, 0.95);
            /// 99th percentile of the per-call mean inter-token latencies, milliseconds.
            itl_p99: Option<f64> = |r| q(&r.itl, 0.99);
            /// Σ the server's own prefill time (llama.cpp `timings`), milliseconds, over the
            /// calls whose server reported it (0 when none did).
            total_server_prefill_ms: f64 = |r| r.server_prefill_ms_sum;
            /// Σ the server's own decode time, milliseconds, over the calls whose server
            /// reported it (0 when none did).
            total_server_decode_ms: f64 = |r| r.server_decode_ms_sum;
        }
    };
}

macro_rules! group_stats {
    (
        ($(#[$doc:meta])* $name:ident, $key:ident, $key_doc:literal)
        $( $(#[$fdoc:meta])* $field:ident : $ty:ty = |$r:ident| $e:expr ; )*
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Default)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        pub struct $name {
            #[doc = $key_doc]
            pub $key: String,
            /// Calls, failed ones included.
            pub call_count: u64,
            $( $(#[$fdoc])* pub $field: $ty, )*
        }

        impl $name {
            /// The stats of `r`, labelled `key`.
            pub(crate) fn from_rollup(key: String, r: &Rollup) -> Self {
                $name {
                    $key: key,
                    call_count: r.call_count,
                    $( $field: {
                        let $r = r;
                        $e
                    }, )*
                }
            }
        }
    };
}

stats_fields!(group_stats!(
    /// Stats of the calls to one model (all engines and agents), as in the seed's `ModelStats`.
    ModelStats,
    model_id,
    "The model, exactly as stored."
));
stats_fields!(group_stats!(
    /// Stats of the calls served by one engine (all models and agents).
    EngineStats,
    engine,
    "The engine, exactly as stored (`\"\"` when the records named none)."
));
stats_fields!(group_stats!(
    /// Stats of the calls made by one agent (all models and engines).
    AgentStats,
    agent,
    "The agent, exactly as stored (`\"\"` when the records named none)."
));

macro_rules! aggregated_stats {
    (() $( $(#[$fdoc:meta])* $field:ident : $ty:ty = |$r:ident| $e:expr ; )*) => {
        /// Totals of a range plus the per-model, per-engine and per-agent breakdowns (the seed's
        /// `AggregatedStats`, extended). An empty range gives [`Default`]: zeros, `None`
        /// percentiles and empty lists.
        #[derive(Debug, Clone, PartialEq, Default)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        pub struct AggregatedStats {
            /// Calls, failed ones included.
            pub total_calls: u64,
            $( $(#[$fdoc])* pub $field: $ty, )*
            /// Per model, by call count (descending), then name.
            pub per_model: Vec<ModelStats>,
            /// Per engine, by call count (descending), then name.
            pub per_engine: Vec<EngineStats>,
            /// Per agent, by call count (descending), then name.
            pub per_agent: Vec<AgentStats>,
        }

        impl AggregatedStats {
            /// Totals from the merged rollup of the whole range; the lists are filled by the
            /// caller.
            pub(crate) fn from_rollup(r: &Rollup) -> Self {
                AggregatedStats {
                    total_calls: r.call_count,
                    $( $field: {
                        let $r = r;
                        $e
                    }, )*
                    per_model: Vec::new(),
                    per_engine: Vec::new(),
                    per_agent: Vec::new(),
                }
            }
        }
    };
}

stats_fields!(aggregated_stats!());

#[cfg(test)]
mod tests {
    use super::*;
    use telemetry_core::{EnergyMethod, TelemetryRecord};

    #[test]
    fn empty_rollup_gives_zeros_and_nones() {
        let s = ModelStats::from_rollup("m".into(), &Rollup::default());
        assert_eq!(s.call_count, 0);
        assert_eq!(s.avg_latency, 0.0);
        assert_eq!(s.latency_p50, None);
        assert_eq!(s.energy_per_output_token_joules, None);
        assert_eq!(
            AggregatedStats::from_rollup(&Rollup::default()),
            AggregatedStats::default()
        );
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serialized_field_names_are_the_documented_ones() {
        let json = serde_json::to_value(AggregatedStats::default()).unwrap();
        for key in [
            "total_calls",
            "error_count",
            "total_tokens",
            "total_cost",
            "total_latency",
            "latency_p50",
            "latency_p90",
            "latency_p95",
            "latency_p99",
            "ttft_p50",
            "ttft_p95",
            "ttft_p99",
            "itl_p50",
            "itl_p95",
            "itl_p99",
            "energy_per_output_token_joules",
            "output_tokens_per_joule",
            "per_model",
            "per_engine",
            "per_agent",
        ] {
            assert!(json.get(key).is_some(), "{key} missing");
        }
        let model = serde_json::to_value(ModelStats::default()).unwrap();
        for key in [
            "model_id",
            "call_count",
            "avg_ttft",
            "avg_throughput_tok_per_sec",
        ] {
            assert!(model.get(key).is_some(), "{key} missing");
        }
    }

    #[test]
    fn ratios_are_ratios_of_sums() {
        let mut r = Rollup::default();
        for (tokens, joules) in [(10, 100.0), (990, 100.0)] {
            r.add(
                &TelemetryRecord::builder("m", 1.7e9)
                    .tokens(1, tokens)
                    .latency_seconds(1.0)
                    .energy(joules, EnergyMethod::Counter)
                    .build(),
            );
        }
        let s = EngineStats::from_rollup("e".into(), &r);
        assert_eq!(s.energy_per_output_token_joules, Some(0.2));
        assert_eq!(s.output_tokens_per_joule, Some(5.0));
        assert_eq!(s.avg_latency, 1.0);
    }
}
