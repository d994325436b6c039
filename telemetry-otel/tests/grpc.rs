//! OTLP over gRPC: an in-process HTTP/2 gRPC server (hyper) decodes the unary calls the exporter
//! makes, and answers them with a chosen `grpc-status`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use telemetry_core::TelemetryRecord;
use telemetry_otel::{Backfill, ExportError, OtlpConfig, OtlpExporter, Protocol};

#[derive(Default)]
struct Seen {
    /// (path, content-type, te) of each call.
    calls: Vec<(String, String, String)>,
    spans: Vec<String>,
    metrics: Vec<String>,
}

/// Serves gRPC on a free port until the test ends; every call is answered with `status`.
fn server(status: u32) -> (SocketAddr, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let shared = Arc::clone(&seen);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let seen = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let seen = Arc::clone(&seen);
                        async move {
                            let path = req.uri().path().to_owned();
                            let header = |n: &str| {
                                req.headers()
                                    .get(n)
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or("")
                                    .to_owned()
                            };
                            let (ct, te) = (header("content-type"), header("te"));
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            // One uncompressed message with its big-endian length.
                            assert_eq!(body[0], 0);
                            let len = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
                            assert_eq!(len, body.len() - 5);
                            let message = &body[5..];
                            let mut s = seen.lock().unwrap();
                            if path.ends_with("TraceService/Export") {
                                let r = ExportTraceServiceRequest::decode(message).unwrap();
                                for rs in r.resource_spans {
                                    for ss in rs.scope_spans {
                                        s.spans.extend(ss.spans.into_iter().map(|sp| sp.name));
                                    }
                                }
                            } else {
                                let r = ExportMetricsServiceRequest::decode(message).unwrap();
                                for rm in r.resource_metrics {
                                    for sm in rm.scope_metrics {
                                        s.metrics.extend(sm.metrics.into_iter().map(|m| m.name));
                                    }
                                }
                            }
                            s.calls.push((path, ct, te));
                            // Trailers-only answer: the status rides in the headers.
                            let mut response = Response::new(Full::new(Bytes::new()));
                            let h = response.headers_mut();
                            h.insert("content-type", "application/grpc".parse().unwrap());
                            h.insert("grpc-status", status.to_string().parse().unwrap());
                            if status != 0 {
                                h.insert("grpc-message", "collector is full".parse().unwrap());
                            }
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    (addr, seen)
}

fn record(i: u64) -> TelemetryRecord {
    TelemetryRecord::builder(format!("model-{}", i % 2), 1_764_300_000.0 + i as f64)
        .engine("vllm")
        .tokens(10, 5)
        .latency_seconds(0.2)
        .build()
}

#[test]
fn spans_and_metrics_go_out_as_grpc_calls_on_one_connection() {
    let (addr, seen) = server(0);
    let config = OtlpConfig::grpc(&format!("http://{addr}"))
        .unwrap()
        .with_max_batch(4);
    assert_eq!(config.protocol(), Protocol::Grpc);
    let exporter = OtlpExporter::start(config).unwrap();
    for i in 0..10 {
        assert!(exporter.record(Arc::new(record(i))));
    }
    exporter.shutdown(Duration::from_secs(10)).unwrap();
    let stats = exporter.stats();
    assert_eq!(exporter.last_error(), None, "{stats:?}");
    let s = seen.lock().unwrap();
    assert_eq!(s.spans.len(), 10, "{:?}", s.calls);
    assert!(
        s.spans.iter().all(|n| n.starts_with("chat model-")),
        "{:?}",
        s.spans
    );
    assert!(
        s.metrics
            .iter()
            .any(|m| m == "gen_ai.client.operation.duration"),
        "{:?}",
        s.metrics
    );
    // Batches of four: three trace calls, then the metrics call.
    let traces = s
        .calls
        .iter()
        .filter(|c| c.0 == "/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        .count();
    assert_eq!(traces, 3, "{:?}", s.calls);
    assert!(
        s.calls
            .iter()
            .any(|c| c.0 == "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export")
    );
    for (_, ct, te) in &s.calls {
        assert_eq!(ct, "application/grpc");
        assert_eq!(te, "trailers");
    }
}

#[test]
fn a_non_zero_grpc_status_is_an_error_with_its_code_and_message() {
    let (addr, _seen) = server(8);
    let config = OtlpConfig::grpc(&format!("http://{addr}")).unwrap();
    let mut backfill = Backfill::new(config);
    let _ = backfill.push(record(1));
    match backfill.finish() {
        Err(ExportError::GrpcStatus { code, message, .. }) => {
            assert_eq!(code, 8);
            assert_eq!(message, "collector is full");
        }
        other => panic!("expected a gRPC status error, got {other:?}"),
    }
}

#[test]
fn a_collector_that_is_down_is_a_connect_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = OtlpConfig::grpc(&format!("http://127.0.0.1:{port}")).unwrap();
    let mut backfill = Backfill::new(config);
    let _ = backfill.push(record(1));
    assert!(matches!(
        backfill.finish(),
        Err(ExportError::Connect { .. })
    ));
}

#[test]
fn the_environment_selects_grpc_and_its_default_port() {
    let env = |vars: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    };
    let c = OtlpConfig::from_lookup(env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")])).unwrap();
    assert_eq!(c.protocol(), Protocol::Grpc);
    assert_eq!(
        c.traces_endpoint(),
        "http://localhost:4317/opentelemetry.proto.collector.trace.v1.TraceService/Export"
    );
    let c = OtlpConfig::from_lookup(env(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m:9999"),
    ]))
    .unwrap();
    assert_eq!(
        c.metrics_endpoint(),
        "http://m:9999/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
    );
    let mixed = OtlpConfig::from_lookup(env(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
    ]));
    assert!(mixed.is_err());
}
