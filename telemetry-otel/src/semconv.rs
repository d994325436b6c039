//! The names this crate emits: OpenTelemetry GenAI semantic conventions (from the
//! `open-telemetry/semantic-conventions-genai` repository), the general `error.type` and
//! `server.*` attributes, and this project's own `telemetry.*` namespace.
//!
//! The strings are defined here rather than taken from `opentelemetry-semantic-conventions`,
//! whose GenAI constants are `#[deprecated]` since the conventions moved to their own repository.

// --- GenAI attributes -------------------------------------------------------------------------

/// The operation: `chat` or `text_completion` (see [`crate`] docs for how it is chosen).
pub const GEN_AI_OPERATION_NAME: &str = "gen_ai.operation.name";
/// The provider: the record's engine (`llama.cpp`, `vllm`, `openai`, ...).
pub const GEN_AI_PROVIDER_NAME: &str = "gen_ai.provider.name";
/// The model asked for.
pub const GEN_AI_REQUEST_MODEL: &str = "gen_ai.request.model";
/// The model that answered (the record keeps one model id: the same value).
pub const GEN_AI_RESPONSE_MODEL: &str = "gen_ai.response.model";
/// Input tokens of the call.
pub const GEN_AI_USAGE_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
/// Output tokens of the call.
pub const GEN_AI_USAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
/// Input tokens served from the provider's prompt cache.
pub const GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: &str = "gen_ai.usage.cache_read.input_tokens";
/// `input` or `output` on `gen_ai.client.token.usage`.
pub const GEN_AI_TOKEN_TYPE: &str = "gen_ai.token.type";
/// [`GEN_AI_TOKEN_TYPE`] of prompt tokens.
pub const TOKEN_TYPE_INPUT: &str = "input";
/// [`GEN_AI_TOKEN_TYPE`] of completion tokens.
pub const TOKEN_TYPE_OUTPUT: &str = "output";
/// [`GEN_AI_OPERATION_NAME`] of chat completions (the default).
pub const OPERATION_CHAT: &str = "chat";
/// [`GEN_AI_OPERATION_NAME`] of legacy text completions.
pub const OPERATION_TEXT_COMPLETION: &str = "text_completion";

// --- General attributes -----------------------------------------------------------------------

/// The failure class of a call that ended in error (the record's `error_kind`, else `_OTHER`).
pub const ERROR_TYPE: &str = "error.type";
/// [`ERROR_TYPE`] when the record names no kind.
pub const ERROR_TYPE_OTHER: &str = "_OTHER";
/// Host name or address of the inference server.
pub const SERVER_ADDRESS: &str = "server.address";
/// Port of the inference server.
pub const SERVER_PORT: &str = "server.port";
/// Resource attribute naming the service.
pub const SERVICE_NAME: &str = "service.name";
/// The only attribute of a metric's overflow series (boolean `true`): the measurements whose own
/// attribute set did not fit under the cardinality limit, as the OpenTelemetry metrics SDK
/// specifies.
pub const OTEL_METRIC_OVERFLOW: &str = "otel.metric.overflow";

// --- GenAI metrics ----------------------------------------------------------------------------

/// Histogram, seconds: duration of each call.
pub const GEN_AI_CLIENT_OPERATION_DURATION: &str = "gen_ai.client.operation.duration";
/// Histogram, `{token}`: input and output tokens of each call.
pub const GEN_AI_CLIENT_TOKEN_USAGE: &str = "gen_ai.client.token.usage";
/// Histogram, seconds: time to the first chunk of a stream.
pub const GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK: &str =
    "gen_ai.client.operation.time_to_first_chunk";
/// Histogram, seconds: time between output chunks of a stream.
pub const GEN_AI_CLIENT_OPERATION_TIME_PER_OUTPUT_CHUNK: &str =
    "gen_ai.client.operation.time_per_output_chunk";

/// Bucket boundaries of [`GEN_AI_CLIENT_OPERATION_DURATION`], as the conventions advise.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
/// Bucket boundaries of [`GEN_AI_CLIENT_TOKEN_USAGE`], as the conventions advise.
pub const TOKEN_BUCKETS: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];
/// Bucket boundaries of the two chunk-timing histograms, as the conventions advise.
pub const CHUNK_BUCKETS: [f64; 13] = [
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
];

// --- Project metrics (`telemetry.*`) ----------------------------------------------------------

/// Histogram, joules: GPU energy attributed to each call (calls with measured energy only).
pub const TELEMETRY_CLIENT_OPERATION_ENERGY: &str = "telemetry.client.operation.energy";
/// Cumulative counter, joules: GPU energy attributed to calls.
pub const TELEMETRY_CLIENT_ENERGY: &str = "telemetry.client.energy";
/// Cumulative counter, US dollars: cost of calls.
pub const TELEMETRY_CLIENT_COST: &str = "telemetry.client.cost";
/// Bucket boundaries of [`TELEMETRY_CLIENT_OPERATION_ENERGY`] (1-2-5 steps, 0.1 J to 10 kJ).
pub const ENERGY_BUCKETS: [f64; 16] = [
    0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0,
    10000.0,
];

// --- Project span attributes (`telemetry.*`) --------------------------------------------------

/// The agent (application component) that made the call.
pub const TELEMETRY_AGENT: &str = "telemetry.agent";
/// `ok`, `error` or `cancelled`.
pub const TELEMETRY_OUTCOME: &str = "telemetry.outcome";
/// Whether the call streamed.
pub const TELEMETRY_STREAMING: &str = "telemetry.streaming";
/// Time to first token, seconds.
pub const TELEMETRY_TTFT: &str = "telemetry.ttft_s";
/// Mean inter-token latency, milliseconds.
pub const TELEMETRY_ITL_MEAN: &str = "telemetry.itl.mean_ms";
/// Median inter-token latency, milliseconds.
pub const TELEMETRY_ITL_MEDIAN: &str = "telemetry.itl.median_ms";
/// 90th percentile inter-token latency, milliseconds.
pub const TELEMETRY_ITL_P90: &str = "telemetry.itl.p90_ms";
/// 95th percentile inter-token latency, milliseconds.
pub const TELEMETRY_ITL_P95: &str = "telemetry.itl.p95_ms";
/// 99th percentile inter-token latency, milliseconds.
pub const TELEMETRY_ITL_P99: &str = "telemetry.itl.p99_ms";
/// Standard deviation of inter-token latency, milliseconds.
pub const TELEMETRY_ITL_STD: &str = "telemetry.itl.std_ms";
/// Completion tokens per second of decode time.
pub const TELEMETRY_THROUGHPUT: &str = "telemetry.throughput_tok_per_s";
/// Prefill time, seconds.
pub const TELEMETRY_PREFILL: &str = "telemetry.prefill_s";
/// Decode time, seconds.
pub const TELEMETRY_DECODE: &str = "telemetry.decode_s";
/// The server's own prefill time, milliseconds.
pub const TELEMETRY_SERVER_PREFILL: &str = "telemetry.server.prefill_ms";
/// The server's own decode time, milliseconds.
pub const TELEMETRY_SERVER_DECODE: &str = "telemetry.server.decode_ms";
/// GPU energy attributed to the call, joules.
pub const TELEMETRY_ENERGY: &str = "telemetry.energy_j";
/// GPU energy of the prefill phase, joules.
pub const TELEMETRY_ENERGY_PREFILL: &str = "telemetry.energy.prefill_j";
/// GPU energy of the decode phase, joules.
pub const TELEMETRY_ENERGY_DECODE: &str = "telemetry.energy.decode_j";
/// How the energy was measured: `counter` or `power-integration`.
pub const TELEMETRY_ENERGY_METHOD: &str = "telemetry.energy.method";
/// GPU vendor whose energy was measured.
pub const TELEMETRY_ENERGY_VENDOR: &str = "telemetry.energy.vendor";
/// Mean GPU power over the call, watts.
pub const TELEMETRY_POWER: &str = "telemetry.gpu.power_w";
/// Mean GPU utilization over the call, percent.
pub const TELEMETRY_GPU_UTILIZATION: &str = "telemetry.gpu.utilization_pct";
/// Peak GPU memory used during the call, GB.
pub const TELEMETRY_GPU_MEMORY: &str = "telemetry.gpu.memory_used_gb";
/// Mean GPU temperature over the call, degrees Celsius.
pub const TELEMETRY_GPU_TEMPERATURE: &str = "telemetry.gpu.temperature_c";
/// Cost of the call, US dollars.
pub const TELEMETRY_COST: &str = "telemetry.cost_usd";
/// The model's price was unknown, so the cost is 0 rather than a guess.
pub const TELEMETRY_COST_UNKNOWN: &str = "telemetry.cost_unknown";
/// Token counts were counted from stream chunks rather than reported by the engine.
pub const TELEMETRY_TOKENS_COUNTED: &str = "telemetry.tokens_counted";
/// The batch the call belonged to.
pub const TELEMETRY_BATCH_ID: &str = "telemetry.batch_id";
/// Whether this was a warm-up call.
pub const TELEMETRY_WARMUP: &str = "telemetry.warmup";
/// The caller's metadata object, as JSON text (only when not empty).
pub const TELEMETRY_METADATA: &str = "telemetry.metadata";

// --- Hardware metrics (`hw.*`, OpenTelemetry's hardware conventions) --------------------------

/// Counter (cumulative, monotonic), joules: energy the device consumed (its own counter).
pub const HW_ENERGY: &str = "hw.energy";
/// Gauge, watts: power the device draws now.
pub const HW_POWER: &str = "hw.power";
/// Gauge, `1` (a fraction, 0 to 1): the fraction of time the GPU was busy, with
/// [`HW_GPU_TASK`] = [`HW_GPU_TASK_GENERAL`].
pub const HW_GPU_UTILIZATION: &str = "hw.gpu.utilization";
/// UpDownCounter (cumulative, not monotonic), bytes: GPU memory in use.
pub const HW_GPU_MEMORY_USAGE: &str = "hw.gpu.memory.usage";
/// UpDownCounter (cumulative, not monotonic), bytes: size of the GPU memory.
pub const HW_GPU_MEMORY_LIMIT: &str = "hw.gpu.memory.limit";
/// Identifier of the device, unique on its host (required on every `hw.*` series).
pub const HW_ID: &str = "hw.id";
/// Kind of device: [`HW_TYPE_GPU`] here.
pub const HW_TYPE: &str = "hw.type";
/// The device's easily recognizable name (for a GPU, its product name).
pub const HW_NAME: &str = "hw.name";
/// The task [`HW_GPU_UTILIZATION`] measures.
pub const HW_GPU_TASK: &str = "hw.gpu.task";
/// [`HW_TYPE`] of a GPU.
pub const HW_TYPE_GPU: &str = "gpu";
/// [`HW_GPU_TASK`] of general (compute) work.
pub const HW_GPU_TASK_GENERAL: &str = "general";
