//! [`OtlpConfig`]: where to send, with which headers and resource, and the batching limits —
//! from the standard `OTEL_*` variables or a builder.

use std::time::Duration;

use crate::error::ConfigError;
use crate::semconv::SERVICE_NAME;

/// The collector address when none is configured (OTLP/HTTP's default port).
pub const DEFAULT_ENDPOINT: &str = "http://localhost:4318";

/// The collector address for [`Protocol::Grpc`] when none is configured (OTLP/gRPC's port).
pub const DEFAULT_GRPC_ENDPOINT: &str = "http://localhost:4317";

/// Series per metric instrument before the overflow series takes the rest (the OpenTelemetry
/// metrics SDK's default cardinality limit).
pub const DEFAULT_CARDINALITY_LIMIT: usize = 2000;

/// The longest timeout, delay or interval the exporter takes: a longer one, given to a setter
/// or in an `OTEL_*` variable, is taken as this.
pub use telemetry_core::LONGEST_WAIT;

/// How requests reach the collector. Both send the same protobuf messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Protocol {
    /// `http/protobuf`: a POST per request to `/v1/traces` and `/v1/metrics` (the default).
    #[default]
    HttpProtobuf,
    /// `grpc`: unary calls of the OTLP trace and metrics services over plain-text HTTP/2 (h2c).
    /// Needs the `grpc` feature.
    Grpc,
}

impl Protocol {
    /// The paths under a base endpoint of the traces and metrics requests.
    fn paths(self) -> (&'static str, &'static str) {
        match self {
            Protocol::HttpProtobuf => ("v1/traces", "v1/metrics"),
            Protocol::Grpc => (
                "opentelemetry.proto.collector.trace.v1.TraceService/Export",
                "opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
            ),
        }
    }

    /// The `OTEL_EXPORTER_OTLP_PROTOCOL` value this build can use.
    fn parse(setting: &str, value: &str) -> Result<Protocol, ConfigError> {
        const SUPPORTED: &str = if cfg!(feature = "grpc") {
            "http/protobuf or grpc"
        } else {
            "only http/protobuf; grpc needs telemetry-otel's `grpc` feature"
        };
        match value.trim() {
            "http/protobuf" => Ok(Protocol::HttpProtobuf),
            "grpc" if cfg!(feature = "grpc") => Ok(Protocol::Grpc),
            other => Err(ConfigError::UnsupportedProtocol {
                setting: setting.to_owned(),
                value: other.to_owned(),
                supported: SUPPORTED,
            }),
        }
    }
}

/// Where and how to export. Build one with [`OtlpConfig::new`] or [`OtlpConfig::from_env`], then
/// adjust it with the `with_*` methods.
///
/// ```
/// use std::time::Duration;
/// use telemetry_otel::OtlpConfig;
///
/// let config = OtlpConfig::new("http://collector:4318")?
///     .with_service_name("chat-backend")
///     .with_header("x-tenant", "blue")
///     .with_timeout(Duration::from_secs(2));
/// assert_eq!(config.traces_endpoint(), "http://collector:4318/v1/traces");
/// assert_eq!(config.metrics_endpoint(), "http://collector:4318/v1/metrics");
/// # Ok::<(), telemetry_otel::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpConfig {
    pub(crate) protocol: Protocol,
    pub(crate) traces_endpoint: String,
    pub(crate) metrics_endpoint: String,
    pub(crate) traces_headers: Vec<(String, String)>,
    pub(crate) metrics_headers: Vec<(String, String)>,
    pub(crate) traces_timeout: Duration,
    pub(crate) metrics_timeout: Duration,
    /// Resource attributes, `service.name` first.
    pub(crate) resource: Vec<(String, String)>,
    pub(crate) queue_capacity: usize,
    pub(crate) max_batch: usize,
    pub(crate) schedule_delay: Duration,
    pub(crate) metric_interval: Duration,
    pub(crate) cardinality_limit: usize,
}

impl OtlpConfig {
    /// Sends to the collector at `endpoint` (`http://host:port`, optionally with a path prefix):
    /// spans to `{endpoint}/v1/traces`, metrics to `{endpoint}/v1/metrics`.
    ///
    /// The defaults are the OpenTelemetry SDK's: a 10 s timeout, a queue of 2048 records, batches
    /// of at most 512 sent at least every 5 s, metrics every 60 s, and `service.name`
    /// `unknown_service:<executable>`.
    pub fn new(endpoint: &str) -> Result<Self, ConfigError> {
        let traces_endpoint = signal_url("endpoint", endpoint, "v1/traces")?;
        let metrics_endpoint = signal_url("endpoint", endpoint, "v1/metrics")?;
        Ok(OtlpConfig {
            protocol: Protocol::HttpProtobuf,
            traces_endpoint,
            metrics_endpoint,
            traces_headers: Vec::new(),
            metrics_headers: Vec::new(),
            traces_timeout: Duration::from_secs(10),
            metrics_timeout: Duration::from_secs(10),
            resource: vec![(SERVICE_NAME.to_owned(), default_service_name())],
            queue_capacity: 2048,
            max_batch: 512,
            schedule_delay: Duration::from_secs(5),
            metric_interval: Duration::from_secs(60),
            cardinality_limit: DEFAULT_CARDINALITY_LIMIT,
        })
    }

    /// Sends to the OTLP/gRPC collector at `endpoint` (`http://host:port`; plain-text HTTP/2):
    /// unary calls of `TraceService/Export` and `MetricsService/Export`. Other defaults as
    /// [`OtlpConfig::new`].
    ///
    /// ```
    /// use telemetry_otel::{OtlpConfig, Protocol};
    ///
    /// let config = OtlpConfig::grpc("http://collector:4317")?;
    /// assert_eq!(config.protocol(), Protocol::Grpc);
    /// assert_eq!(
    ///     config.traces_endpoint(),
    ///     "http://collector:4317/opentelemetry.proto.collector.trace.v1.TraceService/Export"
    /// );
    /// # Ok::<(), telemetry_otel::ConfigError>(())
    /// ```
    #[cfg(feature = "grpc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
    pub fn grpc(endpoint: &str) -> Result<Self, ConfigError> {
        let mut config = Self::new(DEFAULT_ENDPOINT)?;
        config.protocol = Protocol::Grpc;
        config.with_endpoint(endpoint)
    }

    /// The configuration the standard variables describe, over [`OtlpConfig::new`]`(`
    /// [`DEFAULT_ENDPOINT`]`)`:
    ///
    /// | variable | meaning |
    /// |---|---|
    /// | `OTEL_EXPORTER_OTLP_ENDPOINT` | base URL; `/v1/traces` and `/v1/metrics` are appended |
    /// | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `..._METRICS_ENDPOINT` | full URL of one signal, used as is |
    /// | `OTEL_EXPORTER_OTLP_HEADERS`, `..._TRACES_HEADERS`, `..._METRICS_HEADERS` | `k=v,k2=v2`, values percent-decoded; per-signal entries win |
    /// | `OTEL_EXPORTER_OTLP_TIMEOUT`, `..._TRACES_TIMEOUT`, `..._METRICS_TIMEOUT` | milliseconds |
    /// | `OTEL_EXPORTER_OTLP_PROTOCOL`, `..._TRACES_PROTOCOL`, `..._METRICS_PROTOCOL` | must be `http/protobuf` when set |
    /// | `OTEL_SERVICE_NAME` | `service.name` (wins over the one in the list below) |
    /// | `OTEL_RESOURCE_ATTRIBUTES` | `k=v,k2=v2` resource attributes, values percent-decoded |
    /// | `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, `OTEL_BSP_SCHEDULE_DELAY` | queue, batch, delay (ms) |
    /// | `OTEL_METRIC_EXPORT_INTERVAL` | milliseconds between metric exports |
    ///
    /// Empty variables count as unset. A malformed one is an error naming it.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`OtlpConfig::from_env`] reading variables through `lookup` (for tests and embedding).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut protocol = Protocol::HttpProtobuf;
        let mut chosen: Option<Protocol> = None;
        for var in [
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
        ] {
            if let Some(p) = get(var) {
                let this = Protocol::parse(var, &p)?;
                if chosen.is_some_and(|earlier| earlier != this) {
                    return Err(ConfigError::UnsupportedProtocol {
                        setting: var.to_owned(),
                        value: p,
                        supported: "one protocol for traces and metrics, and an earlier \
                                    OTEL_EXPORTER_OTLP_*PROTOCOL names another",
                    });
                }
                chosen = Some(this);
                protocol = this;
            }
        }
        let (traces_path, metrics_path) = protocol.paths();
        let default = match protocol {
            Protocol::HttpProtobuf => DEFAULT_ENDPOINT,
            Protocol::Grpc => DEFAULT_GRPC_ENDPOINT,
        };
        let mut config = Self::new(DEFAULT_ENDPOINT)?;
        config.protocol = protocol;
        let base_var = "OTEL_EXPORTER_OTLP_ENDPOINT";
        let base = get(base_var);
        let base = base.as_deref().unwrap_or(default);
        config.traces_endpoint = signal_url(base_var, base, traces_path)?;
        config.metrics_endpoint = signal_url(base_var, base, metrics_path)?;
        // A per-signal endpoint is the whole URL over HTTP; over gRPC it names the server and
        // the method path is added, as the SDKs do.
        for (var, path, slot) in [
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                traces_path,
                &mut config.traces_endpoint,
            ),
            (
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                metrics_path,
                &mut config.metrics_endpoint,
            ),
        ] {
            if let Some(url) = get(var) {
                *slot = match protocol {
                    Protocol::HttpProtobuf => exact_url(var, &url)?,
                    Protocol::Grpc => signal_url(var, &url, path)?,
                };
            }
        }
        let common = match get("OTEL_EXPORTER_OTLP_HEADERS") {
            Some(v) => parse_list("OTEL_EXPORTER_OTLP_HEADERS", &v)?,
            None => Vec::new(),
        };
        config.traces_headers = common.clone();
        config.metrics_headers = common;
        if let Some(v) = get("OTEL_EXPORTER_OTLP_TRACES_HEADERS") {
            for (k, v) in parse_list("OTEL_EXPORTER_OTLP_TRACES_HEADERS", &v)? {
                set_pair(&mut config.traces_headers, k, v, true);
            }
        }
        if let Some(v) = get("OTEL_EXPORTER_OTLP_METRICS_HEADERS") {
            for (k, v) in parse_list("OTEL_EXPORTER_OTLP_METRICS_HEADERS", &v)? {
                set_pair(&mut config.metrics_headers, k, v, true);
            }
        }
        if let Some(v) = get("OTEL_EXPORTER_OTLP_TIMEOUT") {
            let t = millis("OTEL_EXPORTER_OTLP_TIMEOUT", &v)?;
            config.traces_timeout = t;
            config.metrics_timeout = t;
        }
        if let Some(v) = get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") {
            config.traces_timeout = millis("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", &v)?;
        }
        if let Some(v) = get("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT") {
            config.metrics_timeout = millis("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", &v)?;
        }
        if let Some(v) = get("OTEL_RESOURCE_ATTRIBUTES") {
            for (k, v) in parse_list("OTEL_RESOURCE_ATTRIBUTES", &v)? {
                set_pair(&mut config.resource, k, v, false);
            }
        }
        if let Some(name) = get("OTEL_SERVICE_NAME") {
            set_pair(&mut config.resource, SERVICE_NAME.to_owned(), name, false);
        }
        if let Some(v) = get("OTEL_BSP_MAX_QUEUE_SIZE") {
            config.queue_capacity = count("OTEL_BSP_MAX_QUEUE_SIZE", &v)?;
        }
        if let Some(v) = get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE") {
            config.max_batch = count("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", &v)?;
        }
        if let Some(v) = get("OTEL_BSP_SCHEDULE_DELAY") {
            config.schedule_delay = millis("OTEL_BSP_SCHEDULE_DELAY", &v)?;
        }
        if let Some(v) = get("OTEL_METRIC_EXPORT_INTERVAL") {
            config.metric_interval = millis("OTEL_METRIC_EXPORT_INTERVAL", &v)?;
        }
        Ok(config)
    }

    /// Sends both signals under the base URL `endpoint` (as [`OtlpConfig::new`] does), keeping
    /// the other settings.
    pub fn with_endpoint(mut self, endpoint: &str) -> Result<Self, ConfigError> {
        let (traces, metrics) = self.protocol.paths();
        self.traces_endpoint = signal_url("endpoint", endpoint, traces)?;
        self.metrics_endpoint = signal_url("endpoint", endpoint, metrics)?;
        Ok(self)
    }

    /// How requests are sent.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Sends spans to exactly `url`.
    pub fn with_traces_endpoint(mut self, url: &str) -> Result<Self, ConfigError> {
        self.traces_endpoint = exact_url("traces endpoint", url)?;
        Ok(self)
    }

    /// Sends metrics to exactly `url`.
    pub fn with_metrics_endpoint(mut self, url: &str) -> Result<Self, ConfigError> {
        self.metrics_endpoint = exact_url("metrics endpoint", url)?;
        Ok(self)
    }

    /// Adds (or replaces) a header sent with both signals.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let (name, value) = (name.into(), value.into());
        set_pair(&mut self.traces_headers, name.clone(), value.clone(), true);
        set_pair(&mut self.metrics_headers, name, value, true);
        self
    }

    /// Sets `service.name`.
    pub fn with_service_name(self, name: impl Into<String>) -> Self {
        self.with_resource_attribute(SERVICE_NAME, name)
    }

    /// Adds (or replaces) a resource attribute.
    pub fn with_resource_attribute(
        mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        set_pair(&mut self.resource, key.into(), value.into(), false);
        self
    }

    /// Time allowed for each export request (both signals).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        let timeout = timeout.min(LONGEST_WAIT);
        self.traces_timeout = timeout;
        self.metrics_timeout = timeout;
        self
    }

    /// Records the exporter holds at most before dropping new ones (at least 1).
    pub fn with_queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity.max(1);
        self
    }

    /// Spans per export request at most (at least 1).
    pub fn with_max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }

    /// Longest time a span waits in the queue before it is sent.
    pub fn with_schedule_delay(mut self, delay: Duration) -> Self {
        self.schedule_delay = delay.min(LONGEST_WAIT);
        self
    }

    /// Time between metric exports.
    pub fn with_metric_interval(mut self, interval: Duration) -> Self {
        self.metric_interval = interval.min(LONGEST_WAIT);
        self
    }

    /// Attribute sets (series) each metric instrument keeps at most (at least 1; default
    /// [`DEFAULT_CARDINALITY_LIMIT`], the OpenTelemetry SDK's). Measurements of further attribute
    /// sets are folded into one overflow series per instrument, whose only attribute is
    /// `otel.metric.overflow = true`; [`ExporterStats::calls_folded`](crate::ExporterStats)
    /// counts the calls concerned. Series are never evicted (cumulative temporality), so this
    /// bounds the exporter's memory and each request's size whatever model names clients send.
    pub fn with_cardinality_limit(mut self, limit: usize) -> Self {
        self.cardinality_limit = limit.max(1);
        self
    }

    /// Attribute sets each metric instrument keeps before folding into its overflow series.
    pub fn cardinality_limit(&self) -> usize {
        self.cardinality_limit
    }

    /// The URL spans are posted to.
    pub fn traces_endpoint(&self) -> &str {
        &self.traces_endpoint
    }

    /// The URL metrics are posted to.
    pub fn metrics_endpoint(&self) -> &str {
        &self.metrics_endpoint
    }

    /// The resource attributes, `service.name` included.
    pub fn resource(&self) -> &[(String, String)] {
        &self.resource
    }

    /// The headers sent with spans.
    pub fn traces_headers(&self) -> &[(String, String)] {
        &self.traces_headers
    }

    /// The headers sent with metrics.
    pub fn metrics_headers(&self) -> &[(String, String)] {
        &self.metrics_headers
    }

    /// The queue capacity.
    pub fn queue_capacity(&self) -> usize {
        self.queue_capacity
    }

    /// Time between metric exports (`OTEL_METRIC_EXPORT_INTERVAL`, default 60 s).
    pub fn metric_interval(&self) -> Duration {
        self.metric_interval
    }
}

/// `unknown_service:<executable name>`, as the resource SDK specification says.
fn default_service_name() -> String {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    match exe {
        Some(name) => format!("unknown_service:{name}"),
        None => "unknown_service".to_owned(),
    }
}

/// Replaces the value of `key` (ASCII case-insensitively for headers) or appends the pair.
fn set_pair(list: &mut Vec<(String, String)>, key: String, value: String, fold_case: bool) {
    let same = |k: &String| {
        if fold_case {
            k.eq_ignore_ascii_case(&key)
        } else {
            *k == key
        }
    };
    match list.iter_mut().find(|(k, _)| same(k)) {
        Some(pair) => pair.1 = value,
        None => list.push((key, value)),
    }
}

/// Checks a full signal URL: `http://host[:port]/...`.
fn exact_url(setting: &str, url: &str) -> Result<String, ConfigError> {
    let url = url.trim();
    let bad = |reason| ConfigError::InvalidEndpoint {
        setting: setting.to_owned(),
        value: url.to_owned(),
        reason,
    };
    let rest = if let Some(rest) = url.strip_prefix("http://") {
        rest
    } else if url.starts_with("https://") {
        return Err(bad(
            "https needs a TLS stack, which this build does not have",
        ));
    } else {
        return Err(bad("it must start with http://"));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() {
        return Err(bad("it has no host"));
    }
    if authority.contains('@') {
        return Err(bad("credentials in the URL are not supported; use headers"));
    }
    if let Some((host, port)) = authority.rsplit_once(':')
        && !host.ends_with(']')
        && !host.is_empty()
        && port.parse::<u16>().is_err()
    {
        return Err(bad("its port is not a number from 0 to 65535"));
    }
    Ok(url.to_owned())
}

/// The URL of one signal under a base URL: `base` + `/` + `path`, without doubling the slash.
fn signal_url(setting: &str, base: &str, path: &str) -> Result<String, ConfigError> {
    let base = exact_url(setting, base)?;
    if base.contains(['?', '#']) {
        return Err(ConfigError::InvalidEndpoint {
            setting: setting.to_owned(),
            value: base,
            reason: "a base endpoint cannot have a query or fragment",
        });
    }
    Ok(format!("{}/{path}", base.trim_end_matches('/')))
}

/// Parses `k=v,k2=v2` (W3C Baggage-like: values percent-decoded, blanks around entries ignored).
pub(crate) fn parse_list(setting: &str, text: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for entry in text.split(',') {
        if entry.trim().is_empty() {
            continue;
        }
        let bad = || ConfigError::InvalidList {
            setting: setting.to_owned(),
            entry: entry.to_owned(),
        };
        let (k, v) = entry.split_once('=').ok_or_else(bad)?;
        let k = percent_decode(k.trim()).ok_or_else(bad)?;
        let v = percent_decode(v.trim()).ok_or_else(bad)?;
        if k.is_empty() {
            return Err(bad());
        }
        out.push((k, v));
    }
    Ok(out)
}

/// `%XX` decoding; `None` for a malformed escape or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn millis(setting: &str, v: &str) -> Result<Duration, ConfigError> {
    v.trim()
        .parse::<u64>()
        .map(|ms| Duration::from_millis(ms).min(LONGEST_WAIT))
        .map_err(|_| ConfigError::InvalidNumber {
            setting: setting.to_owned(),
            value: v.to_owned(),
            expected: "a whole number of milliseconds",
        })
}

fn count(setting: &str, v: &str) -> Result<usize, ConfigError> {
    match v.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(ConfigError::InvalidNumber {
            setting: setting.to_owned(),
            value: v.to_owned(),
            expected: "a whole number above 0",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_accepts_escapes_and_refuses_broken_ones() {
        assert_eq!(percent_decode("a%20b%2Cc").as_deref(), Some("a b,c"));
        assert_eq!(percent_decode("%2"), None);
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%ff"), None);
    }

    #[test]
    fn base_urls_get_one_slash_before_the_signal_path() {
        for base in ["http://h:4318", "http://h:4318/"] {
            assert_eq!(
                signal_url("x", base, "v1/traces").unwrap(),
                "http://h:4318/v1/traces"
            );
        }
        assert_eq!(
            signal_url("x", "http://h/otlp", "v1/metrics").unwrap(),
            "http://h/otlp/v1/metrics"
        );
    }

    #[test]
    fn endpoints_that_cannot_work_are_refused_with_the_reason() {
        for (url, reason) in [
            ("https://h:4318", "TLS"),
            ("h:4318", "http://"),
            ("http://", "no host"),
            ("http://h:99999", "port"),
            ("http://u:p@h", "credentials"),
        ] {
            let err = exact_url("OTEL_X", url).unwrap_err().to_string();
            assert!(err.contains(reason), "{url}: {err}");
            assert!(err.contains("OTEL_X"), "{err}");
        }
        assert!(exact_url("x", "http://[::1]:4318/v1/traces").is_ok());
    }
}
