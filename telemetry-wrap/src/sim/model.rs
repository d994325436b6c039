//! [`SimModel`]: the speeds and prices of the simulated models.

use crate::price::{Price, PriceTable};

/// One simulated model: how fast it is and what it costs.
///
/// TTFT = `ttft_base_ms + prefill_ms_per_token · prompt_tokens`, and each further token takes
/// `decode_ms_per_token`; both are multiplied by `1 ± jitter` (uniform) per call and per token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimModel {
    /// Model id to put in [`GenerateParams::model`](crate::GenerateParams::model).
    pub id: &'static str,
    /// Fixed part of the time to first token, milliseconds.
    pub ttft_base_ms: f64,
    /// Prefill time per prompt token, milliseconds.
    pub prefill_ms_per_token: f64,
    /// Decode time per output token, milliseconds.
    pub decode_ms_per_token: f64,
    /// Relative jitter of every delay (0.2 = ±20 %).
    pub jitter: f64,
    /// Completion tokens when the caller sets no `max_tokens` (the actual count varies below it).
    pub default_max_tokens: u64,
    /// Price, as [`SimulatedEngine::price_table`](crate::SimulatedEngine::price_table) lists it.
    pub price: Price,
}

const fn per_mtok(input: f64, cached_input: f64, output: f64) -> Price {
    Price::PerToken {
        input: input * 1e-6,
        cached_input: cached_input * 1e-6,
        output: output * 1e-6,
    }
}

/// The catalogue: small to large hosted models, and a self-hosted one priced per second.
pub(crate) const MODELS: &[SimModel] = &[
    SimModel {
        id: "sim-tiny-1b",
        ttft_base_ms: 15.0,
        prefill_ms_per_token: 0.02,
        decode_ms_per_token: 6.0,
        jitter: 0.15,
        default_max_tokens: 128,
        price: per_mtok(0.05, 0.025, 0.10),
    },
    SimModel {
        id: "sim-small-8b",
        ttft_base_ms: 40.0,
        prefill_ms_per_token: 0.08,
        decode_ms_per_token: 18.0,
        jitter: 0.2,
        default_max_tokens: 256,
        price: per_mtok(0.20, 0.10, 0.60),
    },
    SimModel {
        id: "sim-medium-32b",
        ttft_base_ms: 120.0,
        prefill_ms_per_token: 0.3,
        decode_ms_per_token: 35.0,
        jitter: 0.2,
        default_max_tokens: 256,
        price: per_mtok(0.80, 0.40, 2.40),
    },
    SimModel {
        id: "sim-large-70b",
        ttft_base_ms: 250.0,
        prefill_ms_per_token: 0.6,
        decode_ms_per_token: 55.0,
        jitter: 0.25,
        default_max_tokens: 512,
        price: per_mtok(2.50, 1.25, 10.0),
    },
    SimModel {
        id: "sim-local-8b",
        ttft_base_ms: 60.0,
        prefill_ms_per_token: 0.1,
        decode_ms_per_token: 22.0,
        jitter: 0.3,
        default_max_tokens: 256,
        price: Price::PerSecond {
            usd_per_second: 0.0004,
        },
    },
];

/// A table with the price of every simulated model.
pub(crate) fn price_table() -> PriceTable {
    let mut table = PriceTable::new();
    for m in MODELS {
        table.insert(m.id, m.price);
    }
    table
}
