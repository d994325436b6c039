//! One request: answered locally (`/telemetry/health`) or forwarded to its upstream, with the
//! response passed back as it arrives.

use std::convert::Infallible;
use std::sync::Arc;

use http::header;
use http::{Method, Request, Response, StatusCode, Version};
use hyper::body::Incoming;

use crate::body::{ForwardBody, ResponseBody};
use crate::health::{self, HEALTH_PATH};
use crate::hop::{self, AGENT_HEADER};
use crate::metrics::METRICS_PATH;
use crate::reply::{chain, error_response};
use crate::request::{Endpoint, RequestInfo};
use crate::shared::Shared;
use crate::stats::Counters;

/// Answers one request. Never fails: what cannot be forwarded gets an error response.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    Counters::bump(&shared.counters.requests);
    if request.method() == Method::CONNECT {
        return Ok(connect_refused());
    }
    if request.uri().path() == HEALTH_PATH {
        return Ok(health::respond(&shared, request.method()).await);
    }
    if let Some(metrics) = &shared.config.metrics
        && request.uri().path() == METRICS_PATH
    {
        return Ok(metrics.respond(request.method(), request.headers()).await);
    }
    Ok(forward(&shared, request).await)
}

/// `CONNECT` asks for a tunnel, which a reverse proxy does not give: it would relay any bytes to
/// any host the client names. 501 rather than 405: no resource here supports it.
fn connect_refused() -> Response<ResponseBody> {
    error_response(
        StatusCode::NOT_IMPLEMENTED,
        "connect_not_supported",
        "CONNECT is not supported: this is a reverse proxy for HTTP APIs (point the client's \
         base URL at it), not a forward proxy or tunnel",
    )
}

async fn forward(shared: &Shared, request: Request<Incoming>) -> Response<ResponseBody> {
    let (mut parts, body) = request.into_parts();
    let agent = parts
        .headers
        .remove(AGENT_HEADER)
        .and_then(|v| v.to_str().ok().map(str::to_owned));
    hop::strip(&mut parts.headers);
    // The client side sets Host from the upstream's URL.
    parts.headers.remove(header::HOST);

    let endpoint = Endpoint::of(&parts.method, parts.uri.path());
    let (body, info) = match endpoint {
        Some(endpoint) => match ForwardBody::read_ahead(body, shared.config.capture_limit).await {
            Ok((body, whole)) => (body, Some(RequestInfo::parse(endpoint, whole.as_ref()))),
            Err(e) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    "request_body_error",
                    &format!("reading the request body failed: {}", chain(&e)),
                );
            }
        },
        None => (ForwardBody::streaming(body), None),
    };

    let upstream = shared
        .config
        .routes
        .pick(info.as_ref().and_then(|i| i.model.as_deref()));
    parts.uri = match upstream.uri_for(parts.uri.path_and_query()) {
        Ok(uri) => uri,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "invalid_request_target",
                &format!("cannot forward this request target: {e}"),
            );
        }
    };
    parts.version = Version::HTTP_11;

    let mut exchange = info.map(|info| shared.recorder.begin(&info, agent.as_deref(), upstream));
    match shared
        .client
        .request(Request::from_parts(parts, body))
        .await
    {
        Ok(response) => {
            let (mut parts, inner) = response.into_parts();
            hop::strip(&mut parts.headers);
            if let Some(ex) = exchange.as_mut() {
                ex.response(parts.status, &parts.headers);
            }
            Response::from_parts(parts, ResponseBody::Upstream { inner, exchange })
        }
        Err(e) => {
            Counters::bump(&shared.counters.upstream_unreachable);
            let message = format!("upstream {upstream} unreachable: {}", chain(&e));
            if let Some(ex) = exchange {
                let kind = if e.is_connect() { "connect" } else { "io" };
                ex.unreachable(kind, message.clone());
            }
            error_response(StatusCode::BAD_GATEWAY, "upstream_unreachable", &message)
        }
    }
}
