//! One request: answered locally (`/telemetry/health`) or forwarded to its upstream, with the
//! response passed back as it arrives.

use std::convert::Infallible;
use std::sync::Arc;

use http::header;
use http::{Method, Request, Response, StatusCode, Version};
use hyper::body::Incoming;

use tokio::time::Instant;

use crate::body::{ClientBodyError, ForwardBody, Relay, ResponseBody};
use crate::decode::Decoder;
use crate::health::{self, HEALTH_PATH};
use crate::hop::{self, AGENT_HEADER};
use crate::intake::{self, Refusal};
use crate::metrics::METRICS_PATH;
use crate::record::Exchange;
use crate::reply::{chain, error_response};
use crate::request::Endpoint;
use crate::secrets::Secrets;
use crate::shared::Shared;
use crate::stats::Counters;
use crate::upstream::Upstream;

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

/// Answers a request on a connection taken while every connection slot was busy: the health
/// endpoint as usual, anything else a 503 (the connection is closed after it).
pub(crate) async fn handle_over_limit(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    Counters::bump(&shared.counters.requests);
    if request.uri().path() == HEALTH_PATH {
        return Ok(health::respond(&shared, request.method()).await);
    }
    let mut response = error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "proxy_busy",
        &format!(
            "every connection slot of the proxy ({}) is taken; try again",
            shared.config.max_connections
        ),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    Ok(response)
}

async fn forward(shared: &Shared, request: Request<Incoming>) -> Response<ResponseBody> {
    let config = &shared.config;
    let deadline = Instant::now() + config.body_timeout;
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
        Some(endpoint) => {
            match intake::read_ahead(shared, endpoint, &parts.headers, body, deadline).await {
                Ok((body, info)) => (body, Some(info)),
                Err(refusal) => return refuse(shared, *refusal, agent.as_deref()),
            }
        }
        None => (
            ForwardBody::new(
                Default::default(),
                None,
                Some(body),
                deadline,
                config.body_timeout,
            ),
            None,
        ),
    };

    let upstream = config
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

    let mut exchange = info.map(|info| {
        let mut ex = shared.recorder.begin(&info, agent.as_deref(), upstream);
        ex.keep_out(Secrets::of(&parts.headers));
        ex
    });
    let sent = body.sent();
    let first_byte = config.first_byte_timeout;
    let responded = tokio::select! {
        biased;
        response = shared.client.request(Request::from_parts(parts, body)) => Some(response),
        () = async {
            sent.notified().await;
            tokio::time::sleep(first_byte).await;
        } => None,
    };
    let response = match responded {
        Some(Ok(response)) => response,
        Some(Err(e)) => return failed(shared, upstream, exchange, &e),
        None => {
            Counters::bump(&shared.counters.upstream_timeouts);
            let message = format!(
                "upstream {upstream} did not begin its response within {first_byte:?} of the request"
            );
            if let Some(ex) = exchange {
                ex.fail("upstream_timeout", message.clone());
            }
            return error_response(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout", &message);
        }
    };
    let (mut parts, inner) = response.into_parts();
    hop::strip(&mut parts.headers);
    let mut decoder = None;
    let mut charge = None;
    if let Some(ex) = exchange.as_mut() {
        ex.response(parts.status, &parts.headers);
        let limit = config.capture_limit;
        match Decoder::for_encoding(parts.headers.get(header::CONTENT_ENCODING), limit as u64) {
            Ok(d) => decoder = d,
            Err(e) => ex.unreadable(&e.to_string()),
        }
        let streaming = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
        if !streaming {
            charge = Some(shared.counters.budget.charge());
        }
    }
    let relay = Relay {
        inner,
        exchange,
        decoder,
        charge,
        keep: config.capture_limit,
        chunk_timeout: config.chunk_timeout,
        last: Instant::now(),
        timer: None,
        counters: Arc::clone(&shared.counters),
    };
    Response::from_parts(parts, ResponseBody::Upstream(Box::new(relay)))
}

/// The upstream request failed: the client's body broke off or timed out (its fault, not the
/// upstream's), or the upstream could not be reached.
fn failed(
    shared: &Shared,
    upstream: &Upstream,
    exchange: Option<Exchange>,
    e: &hyper_util::client::legacy::Error,
) -> Response<ResponseBody> {
    match ClientBodyError::find(e) {
        Some(ClientBodyError::Aborted(_)) => {
            // The client has gone: its call is cancelled (dropping the exchange says so).
            drop(exchange);
            error_response(
                StatusCode::BAD_REQUEST,
                "request_body_error",
                "the request body broke off",
            )
        }
        Some(timeout @ ClientBodyError::Timeout(_)) => {
            Counters::bump(&shared.counters.requests_refused);
            let message = timeout.to_string();
            if let Some(ex) = exchange {
                ex.fail("request_timeout", message.clone());
            }
            error_response(StatusCode::REQUEST_TIMEOUT, "request_timeout", &message)
        }
        None => {
            Counters::bump(&shared.counters.upstream_unreachable);
            let message = format!("upstream {upstream} unreachable: {}", chain(e));
            if let Some(ex) = exchange {
                let kind = if e.is_connect() { "connect" } else { "io" };
                ex.fail(kind, message.clone());
            }
            error_response(StatusCode::BAD_GATEWAY, "upstream_unreachable", &message)
        }
    }
}

/// Answers a request the proxy would not forward, and records its call with the reason.
fn refuse(shared: &Shared, refusal: Refusal, agent: Option<&str>) -> Response<ResponseBody> {
    let exchange = shared.recorder.begin_unrouted(&refusal.info, agent);
    if refusal.client_gone {
        // Dropped unended: recorded as cancelled.
        drop(exchange);
    } else {
        Counters::bump(&shared.counters.requests_refused);
        exchange.fail(refusal.kind, refusal.message.clone());
    }
    let mut response = error_response(refusal.status, refusal.kind, &refusal.message);
    // The rest of a refused body is not read: the connection closes after the answer.
    response.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    response
}
