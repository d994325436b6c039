//! One request: answered locally (`/telemetry/health`) or forwarded to its upstream, with the
//! response passed back as it arrives.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header;
use http::{Method, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Body;
use telemetry_openai::protocol::IncludeUsageFilter;

use tokio::time::Instant;

use crate::body::{ClientBodyError, ForwardBody, Relay, ResponseBody};
use crate::decode::Decoder;
use crate::fields::{Incoming, Reply};
use crate::h1::{ConnError, RequestHead};
use crate::h1_server::RequestBody;
use crate::health::{self, HEALTH_PATH};
use crate::hop::{self, AGENT_HEADER};
use crate::inject::{self, UsagePlan};
use crate::intake::{self, Refusal};
use crate::metrics::METRICS_PATH;
use crate::pool::{Pool, UpstreamBody, UpstreamError};
use crate::record::Exchange;
use crate::reply::{chain, error_response};
use crate::request::Endpoint;
use crate::secrets::Secrets;
use crate::shared::Shared;
use crate::stats::Counters;
use crate::tls::{Connector, Io};
use crate::upstream::Upstream;

/// Answers one request. Never fails: what cannot be forwarded gets an error response.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    request: Incoming<RequestBody>,
) -> Reply<ResponseBody> {
    Counters::bump(&shared.counters.requests);
    if request.method == Method::CONNECT {
        return connect_refused().into();
    }
    if request.uri.path() == HEALTH_PATH {
        return health::respond(&shared, &request.method).await.into();
    }
    if let Some(metrics) = &shared.config.metrics
        && request.uri.path() == METRICS_PATH
    {
        return metrics
            .respond(&request.method, &request.fields)
            .await
            .into();
    }
    forward(&shared, request).await
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
    request: Incoming<RequestBody>,
) -> Reply<ResponseBody> {
    Counters::bump(&shared.counters.requests);
    if request.uri.path() == HEALTH_PATH {
        return health::respond(&shared, &request.method).await.into();
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
    response.into()
}

async fn forward(shared: &Shared, request: Incoming<RequestBody>) -> Reply<ResponseBody> {
    let config = &shared.config;
    let deadline = Instant::now() + config.body_timeout;
    let Incoming {
        method,
        uri,
        mut fields,
        body,
        ..
    } = request;
    let agent = fields
        .get(AGENT_HEADER)
        .and_then(crate::fields::to_str)
        .map(str::to_owned);
    // `Host` is set from the upstream's URL.
    hop::strip(&mut fields, &[AGENT_HEADER, "host"]);

    let endpoint = Endpoint::of(&method, uri.path());
    let (mut body, info) = match endpoint {
        Some(endpoint) => {
            match intake::read_ahead(shared, endpoint, &fields, body, deadline).await {
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
    let uri = match upstream.target_for(uri) {
        Ok(uri) => uri,
        Err(e) => {
            return error_response::<ResponseBody>(
                StatusCode::BAD_REQUEST,
                "invalid_request_target",
                &format!("cannot forward this request target: {e}"),
            )
            .into();
        }
    };
    let Some(pool) = shared.pools.of(upstream) else {
        // Every upstream the routes pick has its pool, made from the same routes.
        return error_response::<ResponseBody>(
            StatusCode::INTERNAL_SERVER_ERROR,
            "proxy_error",
            &format!("no connection pool for upstream {upstream}"),
        )
        .into();
    };
    let mut head = RequestHead {
        method,
        uri,
        host: Some(pool.host().clone()),
        fields,
        length: None,
        identity: false,
    };

    // Ask for the stream's usage on the client's behalf (see crate::inject).
    let mut original = None;
    if let Some(info) = &info
        && let UsagePlan::Ask(edit) = &info.usage
        && !shared.refusals.refuses(upstream, info.endpoint.0)
        && let Some(len) = body.whole_len()
    {
        let mut charge = shared.counters.budget.charge();
        if charge.take(len as usize)
            && let Some(first) = body.inject(edit, charge)
        {
            Counters::bump(&shared.counters.usage_asked);
            let as_sent = head.clone();
            if let Some(new_len) = body.whole_len()
                && head.fields.remove("content-length")
            {
                head.length = Some(new_len);
            }
            // The stream is filtered as it passes: it must come uncompressed.
            head.fields.remove("accept-encoding");
            head.identity = true;
            original = Some((as_sent, first));
        }
    }

    let mut exchange = info.map(|info| {
        let mut ex = shared.recorder.begin(info, agent.as_deref(), upstream);
        ex.keep_out(Secrets::of(&head.fields));
        ex
    });
    let mut response = match send(shared, pool, &head, body).await {
        Sent::Response(response) => response,
        Sent::Failed(e) => return failed(shared, upstream, exchange, &e),
        Sent::TimedOut(late) => return upstream_timeout(shared, upstream, exchange, late),
    };
    // Sent: not kept across the awaits below.
    drop(head);
    let mut head = None;
    let mut asked = original.is_some();
    let response = match original {
        Some((as_sent, first)) if inject::may_refuse(response.status) => {
            let (read, whole) = read_head(&mut response.body, config.chunk_timeout).await;
            if whole && inject::names_the_option(&read) {
                // Perhaps the upstream refuses the option: the client's request as it was.
                Counters::bump(&shared.counters.usage_refused);
                asked = false;
                // The refusal was read to its end: its connection is back in the pool.
                let response = match send(shared, pool, &as_sent, first).await {
                    Sent::Response(response) => response,
                    Sent::Failed(e) => return failed(shared, upstream, exchange, &e),
                    Sent::TimedOut(late) => {
                        return upstream_timeout(shared, upstream, exchange, late);
                    }
                };
                let api = exchange.as_ref().map(Exchange::api);
                if !inject::may_refuse(response.status)
                    && let Some(api) = api
                    && shared.refusals.remember(upstream, api)
                {
                    tracing::warn!(
                        %upstream,
                        "the upstream refuses stream_options.include_usage: its streams are forwarded as sent, and recorded without the server's usage"
                    );
                }
                response
            } else {
                head = Some(read);
                response
            }
        }
        _ => response,
    };
    // The head comes without its hop-by-hop headers (h1.rs).
    let Reply {
        status,
        mut fields,
        body: inner,
    } = response;
    let mut decoder = None;
    let mut charge = None;
    let mut filter = None;
    if let Some(ex) = exchange.as_mut() {
        let content_type = fields.get("content-type");
        ex.response(status, content_type);
        let limit = config.capture_limit;
        match Decoder::for_encoding(fields.get("content-encoding"), limit as u64) {
            Ok(d) => decoder = d,
            Err(e) => ex.unreadable(&e.to_string()),
        }
        let streaming = content_type.is_some_and(|v| {
            v.trim_ascii_start().starts_with(b"text/event-stream") && crate::fields::is_text(v)
        });
        if !streaming {
            charge = Some(shared.counters.budget.charge());
        } else if asked && status.is_success() && decoder.is_none() {
            // The client gets the stream as it would have come without the option.
            fields.remove("content-length");
            filter = Some(Box::new(IncludeUsageFilter::new()));
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
        filter,
        head,
        ended: false,
    };
    Reply {
        status,
        fields,
        body: ResponseBody::Upstream(Box::new(relay)),
    }
}

/// How sending a request to the upstream went.
enum Sent {
    /// The response head came (its body holds the connection).
    Response(Reply<UpstreamBody<Io>>),
    /// The request failed (the client's body, or the upstream).
    Failed(UpstreamError),
    /// The first-byte timeout ran out.
    TimedOut(Late),
}

/// What the first-byte timeout ran out on.
#[derive(Clone, Copy)]
enum Late {
    /// No response head that long after the whole request had gone.
    Answer,
    /// The upstream took none of the request for that long.
    Reading,
}

/// Sends a request to the upstream; its response head is due within the first-byte timeout of
/// the whole body having gone. The head is borrowed: it stays in the caller's future rather
/// than being moved into this one and the pool's.
async fn send(
    shared: &Shared,
    pool: &Pool<Connector>,
    head: &RequestHead,
    body: Box<ForwardBody>,
) -> Sent {
    match pool
        .send(head, body, shared.config.first_byte_timeout)
        .await
    {
        Ok(response) => Sent::Response(response),
        Err(UpstreamError::Request(ConnError::FirstByteTimeout(_))) => Sent::TimedOut(Late::Answer),
        Err(UpstreamError::Request(ConnError::WriteStalled(_))) => Sent::TimedOut(Late::Reading),
        Err(e) => Sent::Failed(e),
    }
}

/// The upstream did not begin its response in time, or stopped reading the request: a 504.
fn upstream_timeout(
    shared: &Shared,
    upstream: &Upstream,
    exchange: Option<Exchange>,
    late: Late,
) -> Reply<ResponseBody> {
    Counters::bump(&shared.counters.upstream_timeouts);
    let limit = shared.config.first_byte_timeout;
    let message = match late {
        Late::Answer => {
            format!(
                "upstream {upstream} did not begin its response within {limit:?} of the request"
            )
        }
        Late::Reading => format!(
            "upstream {upstream} stopped reading the request: it took none of it for {limit:?}"
        ),
    };
    if let Some(ex) = exchange {
        ex.fail("upstream_timeout", message.clone());
    }
    error_response::<ResponseBody>(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout", &message).into()
}

/// Reads the start of an error answer (up to [`inject::REJECTION_BODY_LIMIT`] bytes, each piece
/// within `timeout`); `true` with it when that is the whole body.
async fn read_head(body: &mut UpstreamBody<Io>, timeout: Duration) -> (Bytes, bool) {
    let mut read = BytesMut::new();
    while !body.is_end_stream() && read.len() <= inject::REJECTION_BODY_LIMIT {
        match tokio::time::timeout(timeout, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    read.extend_from_slice(&data);
                }
            }
            Ok(None) => return (read.freeze(), true),
            // A broken or stalled body: what came goes on, the rest is the relay's to see.
            Ok(Some(Err(_))) | Err(_) => return (read.freeze(), false),
        }
    }
    let whole = body.is_end_stream();
    (read.freeze(), whole)
}

/// The upstream request failed: the client's body broke off or timed out (its fault, not the
/// upstream's), or the upstream could not be reached.
fn failed(
    shared: &Shared,
    upstream: &Upstream,
    exchange: Option<Exchange>,
    e: &UpstreamError,
) -> Reply<ResponseBody> {
    let response: Response<ResponseBody> = match ClientBodyError::find(e) {
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
    };
    response.into()
}

/// Answers a request the proxy would not forward, and records its call with the reason.
fn refuse(shared: &Shared, refusal: Refusal, agent: Option<&str>) -> Reply<ResponseBody> {
    let exchange = shared.recorder.begin_unrouted(refusal.info, agent);
    if refusal.client_gone {
        // Dropped unended: recorded as cancelled.
        drop(exchange);
    } else {
        Counters::bump(&shared.counters.requests_refused);
        exchange.fail(refusal.kind, refusal.message.clone());
    }
    let mut reply = Reply::from(error_response::<ResponseBody>(
        refusal.status,
        refusal.kind,
        &refusal.message,
    ));
    // The rest of a refused body is not read: the connection closes after the answer.
    reply.fields.append("connection", b"close");
    reply
}
