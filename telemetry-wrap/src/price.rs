//! [`PriceTable`]: what a call costs, per model.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::error::PriceTableError;
use crate::response::Usage;

const PER_MTOK: f64 = 1e-6;

/// The price of one model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Price {
    /// US dollars per token.
    PerToken {
        /// Per uncached input token.
        input: f64,
        /// Per cached input token.
        cached_input: f64,
        /// Per output token.
        output: f64,
    },
    /// US dollars per second of call latency (self-hosted models).
    PerSecond {
        /// Dollars per second.
        usd_per_second: f64,
    },
}

impl Price {
    /// Cost of a call with `usage` that took `latency_seconds`. Cached tokens above the prompt
    /// tokens are treated as all cached.
    pub fn cost(&self, usage: &Usage, latency_seconds: f64) -> f64 {
        match *self {
            Price::PerToken {
                input,
                cached_input,
                output,
            } => {
                let cached = usage.cached_tokens.min(usage.prompt_tokens);
                let uncached = usage.prompt_tokens - cached;
                uncached as f64 * input
                    + cached as f64 * cached_input
                    + usage.completion_tokens as f64 * output
            }
            Price::PerSecond { usd_per_second } => latency_seconds.max(0.0) * usd_per_second,
        }
    }

    /// Whether the cost depends on token counts (a price per token), so that counts the server
    /// did not report make it unknown.
    pub fn per_token(&self) -> bool {
        matches!(self, Price::PerToken { .. })
    }
}

/// Prices per model id.
///
/// A table maps model ids to a [`Price`]: per token (input, cached input and output, in US
/// dollars per token) or per second of wall time (self-hosted models priced by the GPU hour).
/// Cost of a call = `(prompt − cached)·input + cached·cached_input + completion·output`, or
/// `latency·usd_per_second`. A model that is not in the table costs 0 and the record says
/// `cost_unknown`; the wrapper never guesses.
///
/// ## File format
///
/// TOML (or the same shape in JSON), one table per model under `models`. Prices per token use
/// `input`, `cached_input` and `output`; the same prices per million tokens use
/// `input_per_mtok`, `cached_input_per_mtok` and `output_per_mtok`. `cached_input` defaults to
/// `input`. Per-second pricing uses `usd_per_second` (or `usd_per_hour`). Unknown fields are
/// errors, so a typo cannot silently price a model at zero.
///
/// ```
/// # #[cfg(feature = "toml")] {
/// use telemetry_wrap::{Price, PriceTable, Usage};
///
/// // Feature `toml`; JSON needs none.
/// let table = PriceTable::from_toml_str(r#"
///     [models."gpt-4o"]
///     input_per_mtok = 2.50
///     cached_input_per_mtok = 1.25
///     output_per_mtok = 10.0
///
///     [models."llama-3.1-8b"]
///     usd_per_hour = 3.60
/// "#).unwrap();
///
/// let usage = Usage::new(1_000, 200).with_cached(400);
/// let cost = table.cost("gpt-4o", &usage, 1.5).unwrap();
/// assert!((cost - (600.0 * 2.5e-6 + 400.0 * 1.25e-6 + 200.0 * 1e-5)).abs() < 1e-12);
/// assert!((table.cost("llama-3.1-8b", &usage, 2.0).unwrap() - 0.002).abs() < 1e-12);
/// assert_eq!(table.cost("unknown", &usage, 1.0), None);
///
/// let json = PriceTable::from_json_str(r#"{"models": {"m": {"input": 1e-6, "output": 2e-6}}}"#).unwrap();
/// assert_eq!(json.get("m"), Some(&Price::PerToken { input: 1e-6, cached_input: 1e-6, output: 2e-6 }));
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PriceTable {
    prices: HashMap<String, Price>,
}

impl PriceTable {
    /// An empty table (every model unknown).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces the price of `model`.
    #[must_use]
    pub fn with(mut self, model: impl Into<String>, price: Price) -> Self {
        self.insert(model, price);
        self
    }

    /// Adds or replaces the price of `model`; returns the previous one.
    pub fn insert(&mut self, model: impl Into<String>, price: Price) -> Option<Price> {
        self.prices.insert(model.into(), price)
    }

    /// The price of `model`.
    pub fn get(&self, model: &str) -> Option<&Price> {
        self.prices.get(model)
    }

    /// Cost of a call to `model`; `None` when the model is not in the table.
    pub fn cost(&self, model: &str, usage: &Usage, latency_seconds: f64) -> Option<f64> {
        self.get(model).map(|p| p.cost(usage, latency_seconds))
    }

    /// Number of models.
    pub fn len(&self) -> usize {
        self.prices.len()
    }

    /// Whether the table has no model.
    pub fn is_empty(&self) -> bool {
        self.prices.is_empty()
    }

    /// Model ids, in no particular order.
    pub fn models(&self) -> impl Iterator<Item = &str> {
        self.prices.keys().map(String::as_str)
    }

    /// Parses the TOML format.
    #[cfg(feature = "toml")]
    #[cfg_attr(docsrs, doc(cfg(feature = "toml")))]
    pub fn from_toml_str(text: &str) -> Result<Self, PriceTableError> {
        let file: PriceFile = toml::from_str(text).map_err(|e| PriceTableError::Toml {
            line: e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
                .unwrap_or(0),
            message: e.message().to_owned(),
        })?;
        file.into_table()
    }

    /// Parses the JSON format.
    pub fn from_json_str(text: &str) -> Result<Self, PriceTableError> {
        let file: PriceFile = serde_json::from_str(text).map_err(|e| PriceTableError::Json {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        file.into_table()
    }

    /// Reads a `.json` file, or a `.toml` one with feature `toml` (without it such a file is a
    /// [`PriceTableError::FeatureDisabled`] error).
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, PriceTableError> {
        let path = path.as_ref();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let parse: fn(&str) -> Result<Self, PriceTableError> = match ext.as_deref() {
            #[cfg(feature = "toml")]
            Some("toml") => Self::from_toml_str,
            #[cfg(not(feature = "toml"))]
            Some("toml") => {
                return Err(PriceTableError::FeatureDisabled {
                    path: path.to_owned(),
                    feature: "toml",
                });
            }
            Some("json") => Self::from_json_str,
            _ => {
                return Err(PriceTableError::UnknownFormat {
                    path: path.to_owned(),
                });
            }
        };
        let text = std::fs::read_to_string(path).map_err(|source| PriceTableError::Io {
            path: path.to_owned(),
            source,
        })?;
        parse(&text)
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceFile {
    #[serde(default)]
    models: BTreeMap<String, RawPrice>,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPrice {
    input: Option<f64>,
    cached_input: Option<f64>,
    output: Option<f64>,
    input_per_mtok: Option<f64>,
    cached_input_per_mtok: Option<f64>,
    output_per_mtok: Option<f64>,
    usd_per_second: Option<f64>,
    usd_per_hour: Option<f64>,
}

impl PriceFile {
    fn into_table(self) -> Result<PriceTable, PriceTableError> {
        let mut table = PriceTable::new();
        for (model, raw) in self.models {
            let price = raw.into_price(&model)?;
            table.insert(model, price);
        }
        Ok(table)
    }
}

impl RawPrice {
    fn into_price(self, model: &str) -> Result<Price, PriceTableError> {
        let per_second = pick(
            model,
            ("usd_per_second", self.usd_per_second, 1.0),
            ("usd_per_hour", self.usd_per_hour, 1.0 / 3600.0),
        )?;
        let input = pick(
            model,
            ("input", self.input, 1.0),
            ("input_per_mtok", self.input_per_mtok, PER_MTOK),
        )?;
        let cached = pick(
            model,
            ("cached_input", self.cached_input, 1.0),
            (
                "cached_input_per_mtok",
                self.cached_input_per_mtok,
                PER_MTOK,
            ),
        )?;
        let output = pick(
            model,
            ("output", self.output, 1.0),
            ("output_per_mtok", self.output_per_mtok, PER_MTOK),
        )?;
        if let Some(usd_per_second) = per_second {
            if input.is_some() || cached.is_some() || output.is_some() {
                return Err(PriceTableError::Conflicting {
                    model: model.to_owned(),
                    first: "usd_per_second",
                    second: "input/output",
                });
            }
            return Ok(Price::PerSecond { usd_per_second });
        }
        let missing = |field| PriceTableError::Missing {
            model: model.to_owned(),
            field,
        };
        let input = input.ok_or_else(|| missing("input"))?;
        let output = output.ok_or_else(|| missing("output"))?;
        Ok(Price::PerToken {
            input,
            cached_input: cached.unwrap_or(input),
            output,
        })
    }
}

/// One of two spellings of a price (with its scale to USD per unit), checked.
fn pick(
    model: &str,
    a: (&'static str, Option<f64>, f64),
    b: (&'static str, Option<f64>, f64),
) -> Result<Option<f64>, PriceTableError> {
    let check = |(field, value, scale): (&'static str, Option<f64>, f64)| match value {
        Some(v) if !v.is_finite() || v < 0.0 => Err(PriceTableError::InvalidPrice {
            model: model.to_owned(),
            field,
            value: v,
        }),
        Some(v) => Ok(Some(v * scale)),
        None => Ok(None),
    };
    match (check(a)?, check(b)?) {
        (Some(_), Some(_)) => Err(PriceTableError::Conflicting {
            model: model.to_owned(),
            first: a.0,
            second: b.0,
        }),
        (x, y) => Ok(x.or(y)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_token_cost_splits_cached_input() {
        let p = Price::PerToken {
            input: 2.0,
            cached_input: 1.0,
            output: 10.0,
        };
        let u = Usage::new(100, 7).with_cached(30);
        assert_eq!(p.cost(&u, 9.0), 70.0 * 2.0 + 30.0 + 70.0);
        // More cached than prompt: all cached, never negative.
        let u = Usage::new(10, 0).with_cached(50);
        assert_eq!(p.cost(&u, 0.0), 10.0);
    }

    #[test]
    fn per_second_cost_uses_latency() {
        let p = Price::PerSecond {
            usd_per_second: 0.5,
        };
        assert_eq!(p.cost(&Usage::new(1000, 1000), 3.0), 1.5);
        assert_eq!(p.cost(&Usage::default(), -1.0), 0.0);
    }

    #[cfg(feature = "toml")]
    #[test]
    fn toml_errors_say_where() {
        let err = PriceTable::from_toml_str("[models.a]\ninput = 1.0\noutptu = 2.0\n").unwrap_err();
        match err {
            PriceTableError::Toml { line, message } => {
                assert_eq!(line, 3, "{message}");
                assert!(message.contains("outptu"), "{message}");
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[cfg(feature = "toml")]
    #[test]
    fn invalid_and_conflicting_prices_are_refused() {
        let err =
            PriceTable::from_toml_str("[models.a]\ninput = -1.0\noutput = 1.0\n").unwrap_err();
        assert!(
            matches!(err, PriceTableError::InvalidPrice { field: "input", .. }),
            "{err}"
        );
        assert!(err.to_string().contains("-1"));
        let err = PriceTable::from_toml_str(
            "[models.a]\ninput = 1.0\ninput_per_mtok = 1.0\noutput = 1.0",
        )
        .unwrap_err();
        assert!(matches!(err, PriceTableError::Conflicting { .. }), "{err}");
        let err = PriceTable::from_toml_str("[models.a]\nusd_per_second = 1.0\noutput = 1.0")
            .unwrap_err();
        assert!(matches!(err, PriceTableError::Conflicting { .. }), "{err}");
        let err = PriceTable::from_toml_str("[models.a]\ninput = 1.0").unwrap_err();
        assert!(
            matches!(
                err,
                PriceTableError::Missing {
                    field: "output",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn json_errors_have_line_and_column() {
        let err = PriceTable::from_json_str("{\"models\": {\n \"a\": {\"input\": }}}").unwrap_err();
        assert!(
            matches!(err, PriceTableError::Json { line: 2, .. }),
            "{err}"
        );
    }

    #[cfg(not(feature = "toml"))]
    #[test]
    fn a_toml_file_without_the_feature_says_which_feature() {
        let err = PriceTable::from_path("prices.toml").unwrap_err();
        assert!(
            matches!(
                err,
                PriceTableError::FeatureDisabled {
                    feature: "toml",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("prices.toml"), "{err}");
    }

    #[cfg(feature = "toml")]
    #[test]
    fn from_path_picks_the_format_by_extension() {
        let dir = std::env::temp_dir().join(format!("wrap-price-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let toml_path = dir.join("p.toml");
        std::fs::write(&toml_path, "[models.m]\nusd_per_hour = 36.0\n").unwrap();
        let t = PriceTable::from_path(&toml_path).unwrap();
        match t.get("m") {
            Some(Price::PerSecond { usd_per_second }) => {
                assert!((usd_per_second - 0.01).abs() < 1e-15)
            }
            other => panic!("unexpected {other:?}"),
        }
        let json_path = dir.join("p.json");
        std::fs::write(
            &json_path,
            r#"{"models":{"m":{"input_per_mtok":1,"output_per_mtok":2}}}"#,
        )
        .unwrap();
        assert_eq!(PriceTable::from_path(&json_path).unwrap().len(), 1);
        assert!(matches!(
            PriceTable::from_path(dir.join("p.yaml")),
            Err(PriceTableError::UnknownFormat { .. })
        ));
        assert!(matches!(
            PriceTable::from_path(dir.join("missing.toml")),
            Err(PriceTableError::Io { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
