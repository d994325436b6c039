//! One [`TelemetryRecord`] → one OTLP span (kind CLIENT, GenAI attributes), and the request
//! that carries a batch of them.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use telemetry_core::{EnergyMethod, Outcome, TelemetryRecord};

use crate::semconv as sc;

/// The name of the instrumentation scope on every span and metric.
pub const SCOPE_NAME: &str = "telemetry-otel";

pub(crate) fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

pub(crate) fn kv_str(key: &str, value: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.to_owned()))
}

fn kv_int(key: &str, value: u64) -> KeyValue {
    kv(
        key,
        any_value::Value::IntValue(i64::try_from(value).unwrap_or(i64::MAX)),
    )
}

fn kv_f64(key: &str, value: f64) -> KeyValue {
    kv(key, any_value::Value::DoubleValue(value))
}

fn kv_bool(key: &str, value: bool) -> KeyValue {
    kv(key, any_value::Value::BoolValue(value))
}

/// The resource of every request: the configured attributes as strings.
pub(crate) fn resource(attributes: &[(String, String)]) -> Resource {
    Resource {
        attributes: attributes.iter().map(|(k, v)| kv_str(k, v)).collect(),
        ..Default::default()
    }
}

pub(crate) fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: SCOPE_NAME.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        ..Default::default()
    }
}

/// A request carrying `spans` under `resource`.
pub(crate) fn request(resource: &Resource, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource.clone()),
            scope_spans: vec![ScopeSpans {
                scope: Some(scope()),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The `gen_ai.operation.name` of a record: the record's own `operation` when it is one of the
/// conventions' values (`chat`, `text_completion`, `embeddings`, `generate_content`); else, for
/// records written before they named it, the metadata's `gen_ai.operation.name` when it is
/// `chat` or `text_completion`, else `chat`.
pub fn operation_name(record: &TelemetryRecord) -> &'static str {
    use telemetry_core::operation;
    match record.operation.as_str() {
        operation::CHAT => return operation::CHAT,
        operation::TEXT_COMPLETION => return operation::TEXT_COMPLETION,
        operation::EMBEDDINGS => return operation::EMBEDDINGS,
        operation::GENERATE_CONTENT => return operation::GENERATE_CONTENT,
        _ => {}
    }
    match record
        .metadata
        .get(sc::GEN_AI_OPERATION_NAME)
        .and_then(|v| v.as_str())
    {
        Some(sc::OPERATION_TEXT_COMPLETION) => sc::OPERATION_TEXT_COMPLETION,
        _ => sc::OPERATION_CHAT,
    }
}

/// `server.address` and `server.port` from the record's metadata, when the caller put them there.
pub fn server(record: &TelemetryRecord) -> (Option<&str>, Option<u16>) {
    let address = record
        .metadata
        .get(sc::SERVER_ADDRESS)
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty());
    let port = record
        .metadata
        .get(sc::SERVER_PORT)
        .and_then(|v| v.as_u64())
        .and_then(|p| u16::try_from(p).ok());
    (address, port)
}

/// `error.type` of a failed record: its `error_kind`, else `_OTHER`; `None` unless it failed.
pub fn error_type(record: &TelemetryRecord) -> Option<&str> {
    let kind = if record.error_kind.is_empty() {
        sc::ERROR_TYPE_OTHER
    } else {
        record.error_kind.as_str()
    };
    (record.outcome == Outcome::Error).then_some(kind)
}

/// Unix seconds → nanoseconds, clamped to the representable range.
pub(crate) fn nanos(seconds: f64) -> u64 {
    if seconds.is_finite() && seconds > 0.0 {
        // Saturating float-to-int conversion: values past u64::MAX become u64::MAX.
        (seconds * 1e9) as u64
    } else {
        0
    }
}

/// Start and end of the call, unix nanoseconds.
pub(crate) fn span_times(record: &TelemetryRecord) -> (u64, u64) {
    let start = nanos(record.timestamp);
    let latency = if record.latency_seconds.is_finite() && record.latency_seconds > 0.0 {
        (record.latency_seconds * 1e9) as u64
    } else {
        0
    };
    (start, start.saturating_add(latency))
}

/// The span of one call.
pub fn span(record: &TelemetryRecord, trace_id: [u8; 16], span_id: [u8; 8]) -> Span {
    let operation = operation_name(record);
    let name = if record.model_id.is_empty() {
        operation.to_owned()
    } else {
        format!("{operation} {}", record.model_id)
    };
    let (start, end) = span_times(record);
    let mut attrs = Vec::with_capacity(40);
    attrs.push(kv_str(sc::GEN_AI_OPERATION_NAME, operation));
    if !record.engine.is_empty() {
        attrs.push(kv_str(sc::GEN_AI_PROVIDER_NAME, &record.engine));
    }
    attrs.push(kv_str(sc::GEN_AI_REQUEST_MODEL, &record.model_id));
    attrs.push(kv_str(sc::GEN_AI_RESPONSE_MODEL, &record.model_id));
    attrs.push(kv_int(sc::GEN_AI_USAGE_INPUT_TOKENS, record.prompt_tokens));
    attrs.push(kv_int(
        sc::GEN_AI_USAGE_OUTPUT_TOKENS,
        record.completion_tokens,
    ));
    if record.prompt_tokens_cached > 0 {
        attrs.push(kv_int(
            sc::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
            record.prompt_tokens_cached,
        ));
    }
    let (address, port) = server(record);
    if let Some(address) = address {
        attrs.push(kv_str(sc::SERVER_ADDRESS, address));
        if let Some(port) = port {
            attrs.push(kv_int(sc::SERVER_PORT, u64::from(port)));
        }
    }
    let error = error_type(record);
    if let Some(kind) = error {
        attrs.push(kv_str(sc::ERROR_TYPE, kind));
    }
    push_project_attributes(record, &mut attrs);
    let status = match error {
        Some(_) => Status {
            message: record.error_message.clone(),
            code: StatusCode::Error as i32,
        },
        None => Status::default(),
    };
    Span {
        trace_id: trace_id.to_vec(),
        span_id: span_id.to_vec(),
        name,
        kind: SpanKind::Client as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes: attrs,
        status: Some(status),
        ..Default::default()
    }
}

/// The `telemetry.*` attributes: every measured field the conventions have no name for.
fn push_project_attributes(r: &TelemetryRecord, attrs: &mut Vec<KeyValue>) {
    if !r.agent.is_empty() {
        attrs.push(kv_str(sc::TELEMETRY_AGENT, &r.agent));
    }
    attrs.push(kv_str(sc::TELEMETRY_OUTCOME, r.outcome.as_str()));
    attrs.push(kv_bool(sc::TELEMETRY_STREAMING, r.is_streaming));
    let optional = [
        (sc::TELEMETRY_TTFT, r.ttft),
        (sc::TELEMETRY_ITL_MEAN, r.mean_itl_ms),
        (sc::TELEMETRY_ITL_MEDIAN, r.median_itl_ms),
        (sc::TELEMETRY_ITL_P90, r.p90_itl_ms),
        (sc::TELEMETRY_ITL_P95, r.p95_itl_ms),
        (sc::TELEMETRY_ITL_P99, r.p99_itl_ms),
        (sc::TELEMETRY_ITL_STD, r.std_itl_ms),
        (sc::TELEMETRY_THROUGHPUT, r.throughput_tok_per_sec),
        (sc::TELEMETRY_PREFILL, r.prefill_latency_seconds),
        (sc::TELEMETRY_DECODE, r.decode_latency_seconds),
        (sc::TELEMETRY_SERVER_PREFILL, r.server_prefill_ms),
        (sc::TELEMETRY_SERVER_DECODE, r.server_decode_ms),
        (sc::TELEMETRY_ENERGY, r.energy_joules),
        (sc::TELEMETRY_ENERGY_PREFILL, r.prefill_energy_joules),
        (sc::TELEMETRY_ENERGY_DECODE, r.decode_energy_joules),
        (sc::TELEMETRY_POWER, r.power_watts),
        (sc::TELEMETRY_GPU_UTILIZATION, r.gpu_utilization_pct),
        (sc::TELEMETRY_GPU_MEMORY, r.gpu_memory_used_gb),
        (sc::TELEMETRY_GPU_TEMPERATURE, r.gpu_temperature_c),
    ];
    for (key, value) in optional {
        if let Some(v) = value {
            attrs.push(kv_f64(key, v));
        }
    }
    if r.energy_method != EnergyMethod::None {
        attrs.push(kv_str(
            sc::TELEMETRY_ENERGY_METHOD,
            r.energy_method.as_str(),
        ));
    }
    if !r.energy_vendor.is_empty() {
        attrs.push(kv_str(sc::TELEMETRY_ENERGY_VENDOR, &r.energy_vendor));
    }
    attrs.push(kv_f64(sc::TELEMETRY_COST, r.cost_usd));
    if r.cost_unknown {
        attrs.push(kv_bool(sc::TELEMETRY_COST_UNKNOWN, true));
    }
    if r.tokens_counted {
        attrs.push(kv_bool(sc::TELEMETRY_TOKENS_COUNTED, true));
    }
    if !r.batch_id.is_empty() {
        attrs.push(kv_str(sc::TELEMETRY_BATCH_ID, &r.batch_id));
    }
    if r.is_warmup {
        attrs.push(kv_bool(sc::TELEMETRY_WARMUP, true));
    }
    if r.metadata.as_object().is_some_and(|m| !m.is_empty()) {
        attrs.push(kv_str(sc::TELEMETRY_METADATA, &r.metadata.to_string()));
    }
}

/// Random-looking, never-zero trace and span ids (splitmix64 over a seeded counter): ids only
/// need to be unique, not secret.
#[derive(Debug)]
pub(crate) struct IdGenerator {
    state: u64,
}

impl IdGenerator {
    pub(crate) fn new() -> Self {
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let local = 0u8;
        let address = std::ptr::addr_of!(local) as usize as u64;
        IdGenerator {
            state: time ^ u64::from(std::process::id()).rotate_left(32) ^ address,
        }
    }

    fn next(&mut self) -> u64 {
        loop {
            self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            if z != 0 {
                return z;
            }
        }
    }

    pub(crate) fn trace_id(&mut self) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.next().to_be_bytes());
        id[8..].copy_from_slice(&self.next().to_be_bytes());
        id
    }

    pub(crate) fn span_id(&mut self) -> [u8; 8] {
        self.next().to_be_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a any_value::Value> {
        span.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.as_ref())
    }

    #[test]
    fn a_failed_call_has_error_type_and_error_status() {
        let r = TelemetryRecord::builder("m", 1_764_300_000.5)
            .engine("vllm")
            .latency_seconds(0.25)
            .error("timeout", "no answer in 30 s")
            .build();
        let s = span(&r, [1; 16], [2; 8]);
        assert_eq!(s.name, "chat m");
        assert_eq!(s.kind, SpanKind::Client as i32);
        assert_eq!(s.start_time_unix_nano, 1_764_300_000_500_000_000);
        assert_eq!(s.end_time_unix_nano - s.start_time_unix_nano, 250_000_000);
        assert_eq!(
            attr(&s, sc::ERROR_TYPE),
            Some(&any_value::Value::StringValue("timeout".into()))
        );
        let status = s.status.unwrap();
        assert_eq!(status.code, StatusCode::Error as i32);
        assert_eq!(status.message, "no answer in 30 s");
    }

    #[test]
    fn an_error_without_kind_is_other_and_cancelled_is_not_an_error() {
        let mut r = TelemetryRecord::builder("m", 1.7e9)
            .error("", "boom")
            .build();
        assert_eq!(error_type(&r), Some("_OTHER"));
        r.outcome = Outcome::Cancelled;
        assert_eq!(error_type(&r), None);
        let s = span(&r, [1; 16], [2; 8]);
        assert_eq!(s.status.as_ref().unwrap().code, StatusCode::Unset as i32);
        assert!(attr(&s, sc::ERROR_TYPE).is_none());
    }

    #[test]
    fn metadata_chooses_the_operation_and_the_server() {
        let r = TelemetryRecord::builder("m", 1.7e9)
            .metadata(json!({"gen_ai.operation.name": "text_completion",
                "server.address": "gpu-7", "server.port": 8080}))
            .build();
        let s = span(&r, [1; 16], [2; 8]);
        assert_eq!(s.name, "text_completion m");
        assert_eq!(
            attr(&s, sc::SERVER_ADDRESS),
            Some(&any_value::Value::StringValue("gpu-7".into()))
        );
        assert_eq!(
            attr(&s, sc::SERVER_PORT),
            Some(&any_value::Value::IntValue(8080))
        );
        let plain = TelemetryRecord::builder("m", 1.7e9)
            .metadata(json!({"gen_ai.operation.name": "embeddings"}))
            .build();
        assert_eq!(operation_name(&plain), "chat");
        assert_eq!(server(&plain), (None, None));
    }

    #[test]
    fn the_records_operation_names_the_span_and_wins_over_metadata() {
        for op in ["text_completion", "embeddings", "chat"] {
            let mut r = TelemetryRecord::builder("m", 1.7e9)
                .metadata(json!({"gen_ai.operation.name": "chat"}))
                .build();
            r.operation = op.to_owned();
            assert_eq!(operation_name(&r), op);
            let s = span(&r, [1; 16], [2; 8]);
            assert_eq!(s.name, format!("{op} m"));
            assert_eq!(
                attr(&s, sc::GEN_AI_OPERATION_NAME),
                Some(&any_value::Value::StringValue(op.into()))
            );
        }
    }

    #[test]
    fn ids_are_never_zero_and_differ() {
        let mut ids = IdGenerator::new();
        let a = ids.trace_id();
        let b = ids.trace_id();
        assert_ne!(a, [0; 16]);
        assert_ne!(a, b);
        assert_ne!(ids.span_id(), ids.span_id());
    }

    #[test]
    fn bad_times_clamp_instead_of_wrapping() {
        assert_eq!(nanos(f64::NAN), 0);
        assert_eq!(nanos(-5.0), 0);
        assert_eq!(nanos(1e30), u64::MAX);
    }
}
