//! The stats types: [`ModelStats`], [`EngineStats`], [`AgentStats`] and [`AggregatedStats`],
//! all derived from merged [`Rollup`]s with the same rules.
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

macro_rules! group_stats {
    ($(#[$doc:meta])* $name:ident, $key:ident, $key_doc:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Default)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        pub struct $name {
            #[doc = $key_doc]
            pub $key: String,
            /// Calls, failed ones included.
            pub call_count: u64,
            /// Calls whose outcome is `error`.
            pub error_count: u64,
            /// Σ total tokens.
            pub total_tokens: u64,
            /// Σ prompt (input) tokens.
            pub prompt_tokens: u64,
            /// Σ completion (output) tokens.
            pub completion_tokens: u64,
            /// Σ latency, seconds.
            pub total_latency: f64,
            /// `total_latency / call_count`, seconds.
            pub avg_latency: f64,
            /// Σ cost, USD.
            pub total_cost: f64,
            /// Mean TTFT over calls that have one, seconds (0 when none has).
            pub avg_ttft: f64,
            /// Σ GPU energy, joules.
            pub total_energy_joules: f64,
            /// Σ prefill-phase GPU energy, joules.
            pub total_prefill_energy_joules: f64,
            /// Σ decode-phase GPU energy, joules.
            pub total_decode_energy_joules: f64,
            /// Σ energy / Σ completion tokens, over calls with an energy measurement, joules per
            /// token; `None` when those calls produced no tokens.
            pub energy_per_output_token_joules: Option<f64>,
            /// Σ completion tokens / Σ energy, over calls with an energy measurement; `None` when
            /// their energy sums to zero.
            pub output_tokens_per_joule: Option<f64>,
            /// Mean GPU utilization over calls that have one, percent (0 when none has).
            pub avg_gpu_utilization_pct: f64,
            /// Mean of the per-call throughputs, tokens/s (peer-compatible; 0 when none has one).
            pub avg_throughput_tok_per_sec: f64,
            /// Median latency, seconds.
            pub latency_p50: Option<f64>,
            /// 90th percentile latency, seconds.
            pub latency_p90: Option<f64>,
            /// 95th percentile latency, seconds.
            pub latency_p95: Option<f64>,
            /// 99th percentile latency, seconds.
            pub latency_p99: Option<f64>,
            /// Median TTFT, seconds.
            pub ttft_p50: Option<f64>,
            /// 95th percentile TTFT, seconds.
            pub ttft_p95: Option<f64>,
            /// 99th percentile TTFT, seconds.
            pub ttft_p99: Option<f64>,
            /// Median of the per-call mean inter-token latencies, milliseconds.
            pub itl_p50: Option<f64>,
            /// 95th percentile of the per-call mean inter-token latencies, milliseconds.
            pub itl_p95: Option<f64>,
            /// 99th percentile of the per-call mean inter-token latencies, milliseconds.
            pub itl_p99: Option<f64>,
        }

        impl $name {
            /// The stats of `r`, labelled `key`.
            pub(crate) fn from_rollup(key: String, r: &Rollup) -> Self {
                $name {
                    $key: key,
                    call_count: r.call_count,
                    error_count: r.error_count,
                    total_tokens: r.total_tokens,
                    prompt_tokens: r.prompt_tokens,
                    completion_tokens: r.completion_tokens,
                    total_latency: r.total_latency,
                    avg_latency: mean(r.total_latency, r.call_count),
                    total_cost: r.total_cost,
                    avg_ttft: mean(r.ttft_sum, r.ttft_count),
                    total_energy_joules: r.energy_sum,
                    total_prefill_energy_joules: r.prefill_energy_sum,
                    total_decode_energy_joules: r.decode_energy_sum,
                    energy_per_output_token_joules: ratio(
                        r.energy_sum,
                        r.energy_completion_tokens as f64,
                    ),
                    output_tokens_per_joule: ratio(r.energy_completion_tokens as f64, r.energy_sum),
                    avg_gpu_utilization_pct: mean(r.gpu_util_sum, r.gpu_util_count),
                    avg_throughput_tok_per_sec: mean(r.throughput_sum, r.throughput_count),
                    latency_p50: q(&r.latency, 0.50),
                    latency_p90: q(&r.latency, 0.90),
                    latency_p95: q(&r.latency, 0.95),
                    latency_p99: q(&r.latency, 0.99),
                    ttft_p50: q(&r.ttft, 0.50),
                    ttft_p95: q(&r.ttft, 0.95),
                    ttft_p99: q(&r.ttft, 0.99),
                    itl_p50: q(&r.itl, 0.50),
                    itl_p95: q(&r.itl, 0.95),
                    itl_p99: q(&r.itl, 0.99),
                }
            }
        }
    };
}

group_stats!(
    /// Stats of the calls to one model (all engines and agents), as in the seed's `ModelStats`.
    ModelStats,
    model_id,
    "The model, exactly as stored."
);
group_stats!(
    /// Stats of the calls served by one engine (all models and agents).
    EngineStats,
    engine,
    "The engine, exactly as stored (`\"\"` when the records named none)."
);
group_stats!(
    /// Stats of the calls made by one agent (all models and engines).
    AgentStats,
    agent,
    "The agent, exactly as stored (`\"\"` when the records named none)."
);

/// Totals of a range plus the per-model, per-engine and per-agent breakdowns (the seed's
/// `AggregatedStats`, extended). An empty range gives [`Default`]: zeros, `None` percentiles and
/// empty lists.
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AggregatedStats {
    /// Calls, failed ones included.
    pub total_calls: u64,
    /// Calls whose outcome is `error`.
    pub error_count: u64,
    /// Σ total tokens.
    pub total_tokens: u64,
    /// Σ prompt tokens.
    pub prompt_tokens: u64,
    /// Σ completion tokens.
    pub completion_tokens: u64,
    /// Σ cost, USD.
    pub total_cost: f64,
    /// Σ latency, seconds.
    pub total_latency: f64,
    /// `total_latency / total_calls`, seconds.
    pub avg_latency: f64,
    /// Mean TTFT over calls that have one, seconds.
    pub avg_ttft: f64,
    /// Σ GPU energy, joules.
    pub total_energy_joules: f64,
    /// Σ prefill-phase GPU energy, joules.
    pub total_prefill_energy_joules: f64,
    /// Σ decode-phase GPU energy, joules.
    pub total_decode_energy_joules: f64,
    /// Σ energy / Σ completion tokens over calls with an energy measurement (`None` if no tokens).
    pub energy_per_output_token_joules: Option<f64>,
    /// Σ completion tokens / Σ energy over calls with an energy measurement (`None` if no energy).
    pub output_tokens_per_joule: Option<f64>,
    /// Mean GPU utilization over calls that have one, percent.
    pub avg_gpu_utilization_pct: f64,
    /// Mean of the per-call throughputs, tokens/s.
    pub avg_throughput_tok_per_sec: f64,
    /// Median latency, seconds.
    pub latency_p50: Option<f64>,
    /// 90th percentile latency, seconds.
    pub latency_p90: Option<f64>,
    /// 95th percentile latency, seconds.
    pub latency_p95: Option<f64>,
    /// 99th percentile latency, seconds.
    pub latency_p99: Option<f64>,
    /// Median TTFT, seconds.
    pub ttft_p50: Option<f64>,
    /// 95th percentile TTFT, seconds.
    pub ttft_p95: Option<f64>,
    /// 99th percentile TTFT, seconds.
    pub ttft_p99: Option<f64>,
    /// Median per-call mean ITL, milliseconds.
    pub itl_p50: Option<f64>,
    /// 95th percentile per-call mean ITL, milliseconds.
    pub itl_p95: Option<f64>,
    /// 99th percentile per-call mean ITL, milliseconds.
    pub itl_p99: Option<f64>,
    /// Per model, by call count (descending), then name.
    pub per_model: Vec<ModelStats>,
    /// Per engine, by call count (descending), then name.
    pub per_engine: Vec<EngineStats>,
    /// Per agent, by call count (descending), then name.
    pub per_agent: Vec<AgentStats>,
}

impl AggregatedStats {
    /// Totals from the merged rollup of the whole range; the lists are filled by the caller.
    pub(crate) fn from_rollup(r: &Rollup) -> Self {
        // One derivation for every type: reuse the per-group one.
        let s = ModelStats::from_rollup(String::new(), r);
        AggregatedStats {
            total_calls: s.call_count,
            error_count: s.error_count,
            total_tokens: s.total_tokens,
            prompt_tokens: s.prompt_tokens,
            completion_tokens: s.completion_tokens,
            total_cost: s.total_cost,
            total_latency: s.total_latency,
            avg_latency: s.avg_latency,
            avg_ttft: s.avg_ttft,
            total_energy_joules: s.total_energy_joules,
            total_prefill_energy_joules: s.total_prefill_energy_joules,
            total_decode_energy_joules: s.total_decode_energy_joules,
            energy_per_output_token_joules: s.energy_per_output_token_joules,
            output_tokens_per_joule: s.output_tokens_per_joule,
            avg_gpu_utilization_pct: s.avg_gpu_utilization_pct,
            avg_throughput_tok_per_sec: s.avg_throughput_tok_per_sec,
            latency_p50: s.latency_p50,
            latency_p90: s.latency_p90,
            latency_p95: s.latency_p95,
            latency_p99: s.latency_p99,
            ttft_p50: s.ttft_p50,
            ttft_p95: s.ttft_p95,
            ttft_p99: s.ttft_p99,
            itl_p50: s.itl_p50,
            itl_p95: s.itl_p95,
            itl_p99: s.itl_p99,
            per_model: Vec::new(),
            per_engine: Vec::new(),
            per_agent: Vec::new(),
        }
    }
}

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
