//! Price table maths: loaded prices (per token or per 1M tokens, TOML or JSON) give the cost
//! formula `(prompt − cached)·input + cached·cached_input + completion·output`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use telemetry_wrap::{Price, PriceTable, Usage};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-12)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn loaded_prices_follow_the_formula(
        input in 0.0f64..100.0,
        cached in 0.0f64..100.0,
        output in 0.0f64..100.0,
        prompt in 0u64..1_000_000,
        cached_frac in 0.0f64..=1.0,
        completion in 0u64..100_000,
    ) {
        let cached_tokens = (prompt as f64 * cached_frac) as u64;
        let usage = Usage::new(prompt, completion).with_cached(cached_tokens);
        let toml = format!(
            "[models.\"m/x\"]\ninput_per_mtok = {input:?}\ncached_input_per_mtok = {cached:?}\noutput_per_mtok = {output:?}\n"
        );
        let json = format!(
            r#"{{"models": {{"m/x": {{"input": {:e}, "cached_input": {:e}, "output": {:e}}}}}}}"#,
            input * 1e-6, cached * 1e-6, output * 1e-6
        );
        let expected = ((prompt - cached_tokens) as f64 * input
            + cached_tokens as f64 * cached
            + completion as f64 * output) * 1e-6;
        for table in [PriceTable::from_toml_str(&toml).unwrap(), PriceTable::from_json_str(&json).unwrap()] {
            let cost = table.cost("m/x", &usage, 1.0).unwrap();
            prop_assert!(close(cost, expected), "{cost} vs {expected}");
            prop_assert!(cost >= 0.0);
            prop_assert_eq!(table.cost("other", &usage, 1.0), None);
        }
    }

    #[test]
    fn cost_grows_with_every_token_kind(
        prompt in 0u64..10_000,
        completion in 0u64..10_000,
        extra in 1u64..1000,
    ) {
        let price = Price::PerToken { input: 3e-6, cached_input: 1e-6, output: 9e-6 };
        let base = price.cost(&Usage::new(prompt, completion), 0.0);
        prop_assert!(price.cost(&Usage::new(prompt + extra, completion), 0.0) > base);
        prop_assert!(price.cost(&Usage::new(prompt, completion + extra), 0.0) > base);
        // Caching some of the prompt makes it cheaper, never more expensive.
        let cached = price.cost(&Usage::new(prompt, completion).with_cached(prompt / 2), 0.0);
        prop_assert!(cached <= base);
    }
}
