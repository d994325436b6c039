//! [`CallOptions`]: what the caller adds to every record (agent, metadata, prices).

use std::sync::Arc;

use serde_json::Value;
use telemetry_core::{MAX_LABEL_BYTES, Metadata, TelemetryRecord};

use crate::error::ConfigError;
use crate::price::PriceTable;

/// Caller-side settings applied to every record of an instrumented call.
///
/// Cheap to clone: the agent and the price table are shared.
#[derive(Debug, Clone)]
pub struct CallOptions {
    pub(crate) agent: Arc<str>,
    pub(crate) metadata: Metadata,
    pub(crate) prices: Option<Arc<PriceTable>>,
}

impl Default for CallOptions {
    fn default() -> Self {
        CallOptions {
            agent: Arc::from(""),
            metadata: Metadata::new(),
            prices: None,
        }
    }
}

impl CallOptions {
    /// No agent, no metadata, no price table (every cost unknown unless the engine reports it).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the agent name; cut to [`MAX_LABEL_BYTES`] at a character boundary.
    #[must_use]
    pub fn with_agent(mut self, agent: impl AsRef<str>) -> Self {
        self.agent = Arc::from(truncate(agent.as_ref(), MAX_LABEL_BYTES));
        self
    }

    /// Sets the metadata of every record. It must be a JSON object small enough for
    /// [`TelemetryRecord::validate`], else it is refused here rather than every record later.
    /// It is built and checked once: the records share it ([`Metadata`]), none copies it.
    pub fn with_metadata(mut self, metadata: Value) -> Result<Self, ConfigError> {
        let probe = TelemetryRecord {
            model_id: "probe".into(),
            timestamp: telemetry_core::MIN_TIMESTAMP,
            metadata: metadata.into(),
            ..TelemetryRecord::default()
        };
        if let Err(e) = probe.validate() {
            return Err(ConfigError::InvalidMetadata(e));
        }
        self.metadata = probe.metadata;
        Ok(self)
    }

    /// Sets the price table used when the engine reports no cost.
    #[must_use]
    pub fn with_price_table(mut self, prices: impl Into<Arc<PriceTable>>) -> Self {
        self.prices = Some(prices.into());
        self
    }

    /// The agent name (empty when not set).
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// The metadata (a JSON object).
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The price table, when set.
    pub fn price_table(&self) -> Option<&PriceTable> {
        self.prices.as_deref()
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }

    #[test]
    fn metadata_must_be_an_object() {
        assert!(CallOptions::new().with_metadata(json!([1])).is_err());
        let big = json!({ "x": "y".repeat(telemetry_core::MAX_METADATA_BYTES) });
        assert!(matches!(
            CallOptions::new().with_metadata(big),
            Err(ConfigError::InvalidMetadata(_))
        ));
        let ok = CallOptions::new()
            .with_metadata(json!({"user": "u1"}))
            .unwrap();
        assert_eq!(ok.metadata()["user"], "u1");
    }

    #[test]
    fn long_agent_is_cut() {
        let o = CallOptions::new().with_agent("a".repeat(MAX_LABEL_BYTES + 10));
        assert_eq!(o.agent().len(), MAX_LABEL_BYTES);
    }
}
