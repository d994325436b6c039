//! `GET /telemetry/health`: whether each upstream accepts connections, how the telemetry store
//! is doing, and the proxy's counters. Answered by the proxy, never forwarded.

use std::time::{Duration, Instant};

use http::{Method, Response, StatusCode};
use serde_json::json;
use tokio::net::TcpStream;

use crate::body::ResponseBody;
use crate::reply::{error_response, json_response};
use crate::shared::Shared;
use crate::upstream::Upstream;

/// The proxy's own endpoint, answered and never forwarded.
pub const HEALTH_PATH: &str = "/telemetry/health";

/// How long a reachability probe waits for a TCP connection.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Answers the health endpoint: 200 when every upstream is reachable and telemetry is healthy,
/// else 503, with the same JSON body either way.
pub(crate) async fn respond(shared: &Shared, method: &Method) -> Response<ResponseBody> {
    if method != Method::GET && method != Method::HEAD {
        return error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "/telemetry/health answers GET only",
        );
    }
    let routes = shared.config.routes.all();
    let probes: Vec<_> = routes
        .iter()
        .map(|(_, u)| {
            let upstream = Upstream::clone(u);
            tokio::spawn(async move { probe(&upstream).await })
        })
        .collect();
    let mut upstreams = Vec::with_capacity(probes.len());
    let mut all_reachable = true;
    for ((model, upstream), probe) in routes.iter().zip(probes) {
        let result = probe
            .await
            .unwrap_or_else(|e| Err(format!("probe failed: {e}")));
        all_reachable &= result.is_ok();
        upstreams.push(json!({
            "url": upstream.url(),
            "model": model,
            "reachable": result.is_ok(),
            "connect_ms": result.as_ref().ok(),
            "error": result.as_ref().err(),
        }));
    }
    let (telemetry, telemetry_ok) = shared.recorder.health();
    let s = shared.totals.snapshot();
    let healthy = all_reachable && telemetry_ok;
    let body = json!({
        "status": if healthy { "ok" } else { "degraded" },
        "upstreams": upstreams,
        "telemetry": telemetry,
        "proxy": {
            "requests": s.requests,
            "connections": s.connections,
            "upstream_unreachable": s.upstream_unreachable,
            "calls_recorded": s.calls_recorded,
            "calls_cancelled": s.calls_cancelled,
            "calls_failed": s.calls_failed,
            "requests_unparsed": s.requests_unparsed,
            "usage_asked": s.usage_asked,
            "usage_refused": s.usage_refused,
        },
    });
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut response = json_response(status, &body);
    if method == Method::HEAD {
        *response.body_mut() = ResponseBody::Local(None);
    }
    response
}

/// Milliseconds a TCP connection took, or why it failed.
async fn probe(upstream: &Upstream) -> Result<f64, String> {
    let (host, port) = upstream.host_port();
    let start = Instant::now();
    match tokio::time::timeout(PROBE_TIMEOUT, TcpStream::connect((host, port))).await {
        Ok(Ok(_)) => Ok(round3(start.elapsed().as_secs_f64() * 1e3)),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no connection within {PROBE_TIMEOUT:?}")),
    }
}

fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}
