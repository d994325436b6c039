//! [`OtlpReceiver`]: an in-process OTLP/HTTP receiver on a loopback port that decodes what it
//! is sent, for tests and measurements (feature `testing`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::Metric;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

/// The attribute `key` of `attributes` as text: strings as they are, integers in decimal,
/// anything else in its debug form; `None` when absent or valueless.
///
/// ```
/// use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
/// let attrs = [KeyValue {
///     key: "server.port".into(),
///     value: Some(AnyValue { value: Some(Value::IntValue(8080)) }),
///     ..KeyValue::default()
/// }];
/// assert_eq!(telemetry_otel::testing::attribute_text(&attrs, "server.port").as_deref(), Some("8080"));
/// assert_eq!(telemetry_otel::testing::attribute_text(&attrs, "server.address"), None);
/// ```
pub fn attribute_text(attributes: &[KeyValue], key: &str) -> Option<String> {
    match attributes
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()?
    {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        other => Some(format!("{other:?}")),
    }
}

/// Largest request body accepted (64 MiB).
const MAX_BODY: usize = 64 << 20;

/// What the receiver got so far.
#[derive(Debug, Clone, Default)]
pub struct Received {
    /// Decoded span requests, in arrival order (empty for a counting receiver).
    pub traces: Vec<ExportTraceServiceRequest>,
    /// Decoded metric requests, in arrival order.
    pub metrics: Vec<ExportMetricsServiceRequest>,
    /// Spans received.
    pub span_count: u64,
    /// Requests received on `/v1/traces`.
    pub trace_requests: u64,
    /// Requests received on `/v1/metrics`.
    pub metric_requests: u64,
    /// The headers of the last request, names lower-cased.
    pub last_headers: Vec<(String, String)>,
    /// Requests that were not OTLP protobuf on a known path.
    pub bad_requests: u64,
    /// Body size of the last metrics request, bytes.
    pub last_metrics_size: usize,
}

#[derive(Debug)]
struct Shared {
    received: Mutex<Received>,
    changed: Condvar,
    keep: bool,
    delay_ms: AtomicU64,
    status: AtomicU16,
    stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Received> {
        self.received.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An OTLP/HTTP (protobuf) receiver on `127.0.0.1:<free port>`, answering 200 (or the status
/// set with [`set_status`](Self::set_status)) after an optional delay. Stops when dropped.
///
/// ```
/// use telemetry_otel::testing::OtlpReceiver;
///
/// let receiver = OtlpReceiver::start()?;
/// assert!(receiver.endpoint().starts_with("http://127.0.0.1:"));
/// assert_eq!(receiver.received().span_count, 0);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct OtlpReceiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl OtlpReceiver {
    /// A receiver that keeps every decoded request.
    pub fn start() -> std::io::Result<Self> {
        Self::with_keep(true)
    }

    /// A receiver that decodes and counts spans but keeps only the metric requests (for
    /// throughput runs: a few metric requests, many spans).
    pub fn counting() -> std::io::Result<Self> {
        Self::with_keep(false)
    }

    fn with_keep(keep: bool) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            received: Mutex::new(Received::default()),
            changed: Condvar::new(),
            keep,
            delay_ms: AtomicU64::new(0),
            status: AtomicU16::new(200),
            stop: AtomicBool::new(false),
        });
        let accept_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("otlp-receiver".to_owned())
            .spawn(move || {
                for stream in listener.incoming() {
                    if accept_shared.stop.load(Ordering::Acquire) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let conn_shared = Arc::clone(&accept_shared);
                    let _ = std::thread::Builder::new()
                        .name("otlp-receiver-conn".to_owned())
                        .spawn(move || serve(stream, &conn_shared));
                }
            })?;
        Ok(OtlpReceiver { addr, shared })
    }

    /// `http://127.0.0.1:<port>`: the base endpoint to configure.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers every later request only after `delay` (a slow collector).
    pub fn set_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.shared.delay_ms.store(ms, Ordering::Relaxed);
    }

    /// Answers every later request with `status` (a refusing collector).
    pub fn set_status(&self, status: u16) {
        self.shared.status.store(status, Ordering::Relaxed);
    }

    /// A copy of what was received so far.
    pub fn received(&self) -> Received {
        self.shared.lock().clone()
    }

    /// Every span received, in order.
    pub fn spans(&self) -> Vec<Span> {
        self.shared
            .lock()
            .traces
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| s.spans.iter().cloned())
            .collect()
    }

    /// The size in bytes of the body of the last metrics request.
    pub fn last_metrics_size(&self) -> usize {
        self.shared.lock().last_metrics_size
    }

    /// The metrics of the last metrics request (cumulative: the latest totals).
    pub fn last_metrics(&self) -> Vec<Metric> {
        self.shared
            .lock()
            .metrics
            .last()
            .into_iter()
            .flat_map(|r| &r.resource_metrics)
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| s.metrics.iter().cloned())
            .collect()
    }

    /// Waits until `check` holds for what was received, or `timeout` passes; returns whether it
    /// held.
    pub fn wait_until(&self, timeout: Duration, check: impl Fn(&Received) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut r = self.shared.lock();
        loop {
            if check(&r) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            r = self
                .shared
                .changed
                .wait_timeout(r, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        // Unblock the accept loop so that it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

/// One connection: HTTP/1.1 requests with a Content-Length body, kept alive until the client
/// closes.
fn serve(stream: TcpStream, shared: &Shared) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let Some((path, headers, body)) = read_request(&mut reader) else {
            return;
        };
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        record(shared, &path, headers, &body);
        let delay = shared.delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
        let status = shared.status.load(Ordering::Relaxed);
        let answer = if status == 200 {
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n"
                .to_owned()
        } else {
            format!(
                "HTTP/1.1 {status} Refused\r\ncontent-type: text/plain\r\ncontent-length: 7\r\n\r\nrefused"
            )
        };
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

type Request = (String, Vec<(String, String)>, Vec<u8>);

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let path = line.split_whitespace().nth(1)?.to_owned();
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':')?;
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_owned());
        if name == "content-length" {
            length = value.parse().ok()?;
        }
        headers.push((name, value));
    }
    if length > MAX_BODY {
        return None;
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    Some((path, headers, body))
}

fn record(shared: &Shared, path: &str, headers: Vec<(String, String)>, body: &[u8]) {
    let protobuf = headers
        .iter()
        .any(|(n, v)| n == "content-type" && v == "application/x-protobuf");
    let mut r = shared.lock();
    r.last_headers = headers;
    match path {
        "/v1/traces" if protobuf => match ExportTraceServiceRequest::decode(body) {
            Ok(req) => {
                r.trace_requests += 1;
                r.span_count += req
                    .resource_spans
                    .iter()
                    .flat_map(|r| &r.scope_spans)
                    .map(|s| s.spans.len() as u64)
                    .sum::<u64>();
                if shared.keep {
                    r.traces.push(req);
                }
            }
            Err(_) => r.bad_requests += 1,
        },
        "/v1/metrics" if protobuf => match ExportMetricsServiceRequest::decode(body) {
            Ok(req) => {
                r.metric_requests += 1;
                r.last_metrics_size = body.len();
                r.metrics.push(req);
            }
            Err(_) => r.bad_requests += 1,
        },
        _ => r.bad_requests += 1,
    }
    drop(r);
    shared.changed.notify_all();
}
