//! What a caller sends: [`Message`]s and [`GenerateParams`].

use serde_json::{Map, Value};

/// Who wrote a [`Message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions for the model.
    System,
    /// The user.
    User,
    /// The model.
    Assistant,
    /// A tool's output.
    Tool,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// The text.
    pub content: String,
}

impl Message {
    /// A message from `role`.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Message {
            role,
            content: content.into(),
        }
    }

    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new(Role::System, content)
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(Role::Assistant, content)
    }
}

/// How to generate: model, sampling settings, and engine-specific extras.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct GenerateParams {
    /// Model identifier, as the engine knows it; also the record's `model_id`.
    pub model: String,
    /// Sampling temperature; `None` leaves the engine's default.
    pub temperature: Option<f64>,
    /// Upper bound on completion tokens; `None` leaves the engine's default.
    pub max_tokens: Option<u64>,
    /// Engine-specific parameters (`top_p`, `stop`, ...), passed through untouched.
    pub extra: Map<String, Value>,
}

impl GenerateParams {
    /// Parameters for `model` with engine defaults.
    pub fn new(model: impl Into<String>) -> Self {
        GenerateParams {
            model: model.into(),
            ..Self::default()
        }
    }

    /// Sets the temperature.
    #[must_use]
    pub fn with_temperature(mut self, temperature: f64) -> Self {
        self.temperature = Some(temperature);
        self
    }

    /// Sets the completion token limit.
    #[must_use]
    pub fn with_max_tokens(mut self, max_tokens: u64) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }

    /// Adds an engine-specific parameter.
    #[must_use]
    pub fn with_extra(mut self, key: impl Into<String>, value: Value) -> Self {
        self.extra.insert(key.into(), value);
        self
    }
}
