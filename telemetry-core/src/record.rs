//! [`TelemetryRecord`]: one inference call, as stored.

use crate::metadata::Metadata;

/// How the energy of a call was measured.
///
/// Serialized as `""`, `"counter"` or `"power-integration"` (the strings the store keeps in the
/// `energy_method` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum EnergyMethod {
    /// No energy was measured for this call.
    #[default]
    #[cfg_attr(feature = "serde", serde(rename = ""))]
    None,
    /// Difference of the GPU's cumulative energy counter (NVML total energy, Volta and later).
    #[cfg_attr(feature = "serde", serde(rename = "counter"))]
    Counter,
    /// Trapezoid integration of sampled power, where no counter exists.
    #[cfg_attr(feature = "serde", serde(rename = "power-integration"))]
    PowerIntegration,
}

impl EnergyMethod {
    /// The stored string: `""`, `"counter"` or `"power-integration"`.
    pub fn as_str(self) -> &'static str {
        match self {
            EnergyMethod::None => "",
            EnergyMethod::Counter => "counter",
            EnergyMethod::PowerIntegration => "power-integration",
        }
    }

    /// Parses the stored string; `None` for an unknown one.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "" => Some(EnergyMethod::None),
            "counter" => Some(EnergyMethod::Counter),
            "power-integration" => Some(EnergyMethod::PowerIntegration),
            _ => None,
        }
    }
}

/// How an inference call ended.
///
/// Serialized as `"ok"`, `"error"` or `"cancelled"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Outcome {
    /// The call returned a result.
    #[default]
    Ok,
    /// The call failed; `error_kind` and `error_message` say how.
    Error,
    /// The caller stopped the call (e.g. dropped a stream) before it finished.
    Cancelled,
}

impl Outcome {
    /// The stored string: `"ok"`, `"error"` or `"cancelled"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Cancelled => "cancelled",
        }
    }

    /// Parses the stored string; `None` for an unknown one.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ok" => Some(Outcome::Ok),
            "error" => Some(Outcome::Error),
            "cancelled" => Some(Outcome::Cancelled),
            _ => None,
        }
    }
}

/// One inference call: timing, tokens, cost, energy and GPU state.
///
/// Field names follow the OpenJarvis telemetry schema where it has the field, so its databases
/// import one-to-one. Quantities that may be unknown are `Option`s: `None` means "not measured",
/// which is different from a measured zero (a peer storing `0.0` for "unknown" skews every mean).
///
/// Build one with struct update syntax over [`Default`] or with [`TelemetryRecord::builder`], then
/// check it with [`validate`](TelemetryRecord::validate):
///
/// ```
/// use telemetry_core::TelemetryRecord;
///
/// let record = TelemetryRecord::builder("llama-3.1-8b", 1_764_300_000.0)
///     .engine("vllm")
///     .tokens(120, 48)
///     .latency_seconds(0.84)
///     .ttft(0.12)
///     .build();
/// assert_eq!(record.total_tokens, 168);
/// assert!(record.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
pub struct TelemetryRecord {
    /// Wall-clock start of the call, unix seconds.
    pub timestamp: f64,
    /// Model identifier as the engine knows it; never empty.
    pub model_id: String,
    /// Engine or server that ran the call (`vllm`, `llama.cpp`, `ollama`, `openai`, ...).
    pub engine: String,
    /// Agent (application component) that made the call; empty when not set.
    pub agent: String,
    /// Input tokens.
    pub prompt_tokens: u64,
    /// Output tokens.
    pub completion_tokens: u64,
    /// `prompt_tokens + completion_tokens`; [`validate`](Self::validate) checks it.
    pub total_tokens: u64,
    /// Input tokens served from a prompt cache (a subset of `prompt_tokens`).
    pub prompt_tokens_cached: u64,
    /// Wall time of the call, seconds, from a monotonic clock.
    pub latency_seconds: f64,
    /// Time to first token, seconds (streams, or engines that report it).
    pub ttft: Option<f64>,
    /// Cost of the call in US dollars (engine-reported or from a price table).
    pub cost_usd: f64,
    /// GPU energy attributed to the call, joules.
    pub energy_joules: Option<f64>,
    /// Mean GPU power over the call, watts.
    pub power_watts: Option<f64>,
    /// Mean GPU utilization over the call, percent (0–100).
    pub gpu_utilization_pct: Option<f64>,
    /// Peak GPU memory used during the call, GB (10^9 bytes).
    pub gpu_memory_used_gb: Option<f64>,
    /// Mean GPU temperature over the call, degrees Celsius.
    pub gpu_temperature_c: Option<f64>,
    /// Completion tokens per second of decode time (`completion_tokens / decode_latency_seconds`).
    pub throughput_tok_per_sec: Option<f64>,
    /// Prefill time as the client sees it, seconds: by definition the TTFT (the wrapper sets it
    /// equal to [`ttft`](Self::ttft), the only client-side measure of prefill, and `None` when
    /// no TTFT was measured). The server's own prefill time, when it reports one, is
    /// [`server_prefill_ms`](Self::server_prefill_ms).
    pub prefill_latency_seconds: Option<f64>,
    /// Decode time, seconds (latency minus prefill).
    pub decode_latency_seconds: Option<f64>,
    /// Whether the call streamed its output.
    pub is_streaming: bool,
    /// Mean inter-token latency, milliseconds.
    pub mean_itl_ms: Option<f64>,
    /// Median inter-token latency, milliseconds.
    pub median_itl_ms: Option<f64>,
    /// 90th percentile inter-token latency, milliseconds.
    pub p90_itl_ms: Option<f64>,
    /// 95th percentile inter-token latency, milliseconds.
    pub p95_itl_ms: Option<f64>,
    /// 99th percentile inter-token latency, milliseconds.
    pub p99_itl_ms: Option<f64>,
    /// Standard deviation of inter-token latency, milliseconds.
    pub std_itl_ms: Option<f64>,
    /// GPU energy of the prefill phase (before the first token), joules.
    pub prefill_energy_joules: Option<f64>,
    /// GPU energy of the decode phase (after the first token), joules.
    pub decode_energy_joules: Option<f64>,
    /// How `energy_joules` was measured.
    pub energy_method: EnergyMethod,
    /// Vendor of the GPU that was measured (`nvidia`), empty when none.
    pub energy_vendor: String,
    /// Batch the call belonged to; empty when none.
    pub batch_id: String,
    /// Whether this was a warm-up call (excluded by most analyses).
    pub is_warmup: bool,
    /// How the call ended.
    pub outcome: Outcome,
    /// Short machine-readable kind of failure (`timeout`, `http_500`, ...); empty when ok.
    pub error_kind: String,
    /// Human-readable failure message; empty when ok.
    pub error_message: String,
    /// Token counts were counted from stream chunks rather than reported by the engine.
    pub tokens_counted: bool,
    /// The price of the model was unknown, so `cost_usd` is 0 rather than a guess.
    pub cost_unknown: bool,
    /// Caller metadata; must be a JSON object of at most [`MAX_METADATA_BYTES`](crate::MAX_METADATA_BYTES).
    pub metadata: Metadata,
    /// The server's own prefill (prompt processing) time, milliseconds, as the server reported it
    /// (llama.cpp's `timings.prompt_ms`); `None` when the server reports none. Compare it with
    /// `ttft`, which also holds the network and queueing the client saw.
    pub server_prefill_ms: Option<f64>,
    /// The server's own decode (generation) time, milliseconds, as the server reported it
    /// (llama.cpp's `timings.predicted_ms`); `None` when the server reports none.
    pub server_decode_ms: Option<f64>,
    /// The API the call spoke, as a name ([`api`](crate::api): `openai_chat`,
    /// `anthropic_messages`, ...); empty when not known (records written before it existed).
    pub api: String,
    /// What the call did, as OpenTelemetry's GenAI conventions name it in
    /// `gen_ai.operation.name` ([`operation`](crate::operation): `chat`, `text_completion`,
    /// `embeddings`, ...); empty when not known.
    pub operation: String,
    /// Output tokens spent on reasoning (OpenAI `completion_tokens_details.reasoning_tokens`,
    /// `output_tokens_details.reasoning_tokens`): a part of `completion_tokens`, 0 when the
    /// server reports none.
    pub reasoning_tokens: u64,
    /// Input tokens written to the prompt cache (Anthropic `cache_creation_input_tokens`): a part
    /// of `prompt_tokens`, as `prompt_tokens_cached` (the tokens read from it) is.
    pub prompt_tokens_cache_write: u64,
    /// Stream chunks that carried output of any kind (text, tool-call arguments, reasoning): the
    /// number of points TTFT and the inter-token gaps are measured at, so per-chunk figures are
    /// per chunk (one chunk may hold several tokens). 0 for a call that did not stream.
    pub output_chunks: u64,
}

impl Default for TelemetryRecord {
    fn default() -> Self {
        TelemetryRecord {
            timestamp: 0.0,
            model_id: String::new(),
            engine: String::new(),
            agent: String::new(),
            prompt_tokens: 0,
            completion_tokens: 0,
            total_tokens: 0,
            prompt_tokens_cached: 0,
            latency_seconds: 0.0,
            ttft: None,
            cost_usd: 0.0,
            energy_joules: None,
            power_watts: None,
            gpu_utilization_pct: None,
            gpu_memory_used_gb: None,
            gpu_temperature_c: None,
            throughput_tok_per_sec: None,
            prefill_latency_seconds: None,
            decode_latency_seconds: None,
            is_streaming: false,
            mean_itl_ms: None,
            median_itl_ms: None,
            p90_itl_ms: None,
            p95_itl_ms: None,
            p99_itl_ms: None,
            std_itl_ms: None,
            prefill_energy_joules: None,
            decode_energy_joules: None,
            energy_method: EnergyMethod::None,
            energy_vendor: String::new(),
            batch_id: String::new(),
            is_warmup: false,
            outcome: Outcome::Ok,
            error_kind: String::new(),
            error_message: String::new(),
            tokens_counted: false,
            cost_unknown: false,
            metadata: Metadata::new(),
            server_prefill_ms: None,
            server_decode_ms: None,
            api: String::new(),
            operation: String::new(),
            reasoning_tokens: 0,
            prompt_tokens_cache_write: 0,
            output_chunks: 0,
        }
    }
}

impl TelemetryRecord {
    /// Starts a builder for a call to `model_id` that started at `timestamp` (unix seconds).
    pub fn builder(model_id: impl Into<String>, timestamp: f64) -> TelemetryRecordBuilder {
        TelemetryRecordBuilder {
            record: TelemetryRecord {
                model_id: model_id.into(),
                timestamp,
                ..TelemetryRecord::default()
            },
        }
    }

    /// Whether the call failed (outcome `error`).
    pub fn is_error(&self) -> bool {
        self.outcome == Outcome::Error
    }
}

/// Builder for [`TelemetryRecord`]; see [`TelemetryRecord::builder`].
///
/// Setters cover the common fields; everything else can be set on the built record. The builder
/// does not validate: call [`TelemetryRecord::validate`].
#[derive(Debug, Clone)]
#[must_use]
pub struct TelemetryRecordBuilder {
    record: TelemetryRecord,
}

impl TelemetryRecordBuilder {
    /// Sets the engine.
    pub fn engine(mut self, engine: impl Into<String>) -> Self {
        self.record.engine = engine.into();
        self
    }

    /// Sets the agent.
    pub fn agent(mut self, agent: impl Into<String>) -> Self {
        self.record.agent = agent.into();
        self
    }

    /// Sets prompt and completion tokens, and `total_tokens` to their sum (saturating).
    pub fn tokens(mut self, prompt: u64, completion: u64) -> Self {
        self.record.prompt_tokens = prompt;
        self.record.completion_tokens = completion;
        self.record.total_tokens = prompt.saturating_add(completion);
        self
    }

    /// Sets the cached part of the prompt tokens.
    pub fn cached_tokens(mut self, cached: u64) -> Self {
        self.record.prompt_tokens_cached = cached;
        self
    }

    /// Sets the latency in seconds.
    pub fn latency_seconds(mut self, latency: f64) -> Self {
        self.record.latency_seconds = latency;
        self
    }

    /// Sets the time to first token in seconds.
    pub fn ttft(mut self, ttft: f64) -> Self {
        self.record.ttft = Some(ttft);
        self
    }

    /// Sets the cost in US dollars.
    pub fn cost_usd(mut self, cost: f64) -> Self {
        self.record.cost_usd = cost;
        self
    }

    /// Sets the energy in joules and how it was measured.
    pub fn energy(mut self, joules: f64, method: EnergyMethod) -> Self {
        self.record.energy_joules = Some(joules);
        self.record.energy_method = method;
        self
    }

    /// Marks the call as failed with an error kind and message.
    pub fn error(mut self, kind: impl Into<String>, message: impl Into<String>) -> Self {
        self.record.outcome = Outcome::Error;
        self.record.error_kind = kind.into();
        self.record.error_message = message.into();
        self
    }

    /// Sets the metadata (must be a JSON object to validate): a `serde_json::Value`, or a
    /// [`Metadata`] that records share.
    pub fn metadata(mut self, metadata: impl Into<Metadata>) -> Self {
        self.record.metadata = metadata.into();
        self
    }

    /// Sets the server's own prefill and decode times, milliseconds (e.g. llama.cpp's `timings`).
    pub fn server_timings(mut self, prefill_ms: f64, decode_ms: f64) -> Self {
        self.record.server_prefill_ms = Some(prefill_ms);
        self.record.server_decode_ms = Some(decode_ms);
        self
    }

    /// Finishes the record.
    pub fn build(self) -> TelemetryRecord {
        self.record
    }
}
