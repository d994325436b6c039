//! Reading a completion request's body before it is forwarded, to find its `model` (which picks
//! the upstream) and `stream`: a streaming scan of the JSON top level ([`BodyScan`]), decoded on
//! the side when the body is compressed, with every byte held charged to the proxy's one
//! [`ByteBudget`](crate::budget::ByteBudget), and the whole body due within the body timeout.
//! A Chat Completions or Completions stream (uncompressed, with usage injection on) is read to
//! its end, within the same limits, and its [`UsagePlan`](crate::inject::UsagePlan) made
//! ([`crate::inject`]).
//!
//! Routing never guesses. With model routes, reading goes on until the top-level object has
//! been read (so a second, different `model` is caught); a body whose model cannot be known
//! within the limits is refused with a 4xx (or a 503 when the budget is spent) that says why,
//! and its call is recorded with that reason. Without model routes nothing depends on the model
//! but the record, so reading stops as soon as the scan is done or a limit is reached, and the
//! rest of the body is forwarded as it arrives.

use std::collections::VecDeque;
use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use hyper::body::{Body, Frame};
use tokio::time::Instant;

use crate::body::ForwardBody;
use crate::decode::Decoder;
use crate::fields::Fields;
use crate::h1_server::RequestBody;
use crate::inject;
use crate::request::{Endpoint, RequestInfo};
use crate::scan::BodyScan;
use crate::shared::Shared;
use telemetry_openai::protocol::Api;

/// Why a request was answered by the proxy instead of forwarded.
#[derive(Debug)]
pub(crate) struct Refusal {
    /// The status the client gets.
    pub status: StatusCode,
    /// The error type in the body, and the record's error kind.
    pub kind: &'static str,
    /// What was wrong.
    pub message: String,
    /// The client broke off its upload: its call is cancelled, not failed.
    pub client_gone: bool,
    /// What was learnt of the request before it was refused.
    pub info: RequestInfo,
}

/// Reads `body` ahead as far as needed; returns the body to forward and what it said.
pub(crate) async fn read_ahead(
    shared: &Shared,
    endpoint: Endpoint,
    headers: &Fields,
    mut body: RequestBody,
    deadline: Instant,
) -> Result<(Box<ForwardBody>, RequestInfo), Box<Refusal>> {
    let config = &shared.config;
    let must_route = config.routes.has_model_routes();
    let limit = config.capture_limit;
    let mut scan = BodyScan::default();
    let mut decoder = match Decoder::for_encoding(headers.get("content-encoding"), limit as u64) {
        Ok(d) => Some(d),
        Err(e) if must_route => {
            return Err(refusal(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unroutable_request",
                format!("cannot find the model to route this request: {e}"),
                &mut scan,
                endpoint,
            ));
        }
        // The body cannot be read; it is forwarded all the same.
        Err(_) => None,
    };
    // A stream whose usage may be asked for is read whole: it is edited, and kept for a retry.
    let may_ask = config.usage_injection
        && matches!(endpoint.0, Api::ChatCompletions | Api::Completions)
        && matches!(decoder, Some(None));
    let mut frames = Frames::default();
    let mut charge = shared.counters.budget.charge();
    let mut len = 0usize;
    let mut rest = None;
    let mut decode_error = None;
    loop {
        if body.is_end_stream() {
            break;
        }
        let next = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx));
        let frame = match tokio::time::timeout_at(deadline, next).await {
            Err(_) => {
                return Err(refusal(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    format!(
                        "the request body did not arrive within {:?}",
                        config.body_timeout
                    ),
                    &mut scan,
                    endpoint,
                ));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                let mut r = refusal(
                    StatusCode::BAD_REQUEST,
                    "request_body_error",
                    format!(
                        "reading the request body failed: {}",
                        crate::reply::chain(&e)
                    ),
                    &mut scan,
                    endpoint,
                );
                r.client_gone = true;
                return Err(r);
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let mut over_budget = false;
        if let Some(data) = frame.data_ref() {
            len += data.len();
            over_budget = !charge.take(data.len());
            match &mut decoder {
                Some(Some(d)) if decode_error.is_none() => {
                    if let Err(e) = d.decode(data, &mut |piece| scan.feed(piece)) {
                        decode_error = Some(e);
                    }
                }
                Some(None) => scan.feed(data),
                _ => {}
            }
        }
        frames.push(frame);
        let scanned = !scan.is_open() || decode_error.is_some();
        let whole_wanted = may_ask && scan.is_done() && scan.stream();
        // A model found is enough to route by once a limit is reached (a second `model` after
        // it, beyond the limits, cannot be seen).
        let routed = !must_route || scan.has_model();
        if over_budget || len > limit || (scanned && !whole_wanted) {
            if !routed && !scanned {
                return Err(if over_budget {
                    refusal(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "proxy_busy",
                        format!(
                            "the proxy's buffer budget ({} bytes, all requests together) is spent; the model of this request was not found in its first {len} bytes",
                            shared.counters.budget.limit()
                        ),
                        &mut scan,
                        endpoint,
                    )
                } else {
                    refusal(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "unroutable_request",
                        format!(
                            "the request's model was not found in its first {limit} bytes (the proxy's capture limit): cannot pick an upstream"
                        ),
                        &mut scan,
                        endpoint,
                    )
                });
            }
            rest = Some(body);
            break;
        }
    }
    if let Some(Some(d)) = &mut decoder
        && decode_error.is_none()
        && rest.is_none()
        && let Err(e) = d.finish(&mut |piece| scan.feed(piece))
    {
        decode_error = Some(e);
    }
    if must_route {
        let why = if let Some(e) = &decode_error {
            Some(e.to_string())
        } else if let Some(e) = scan.error() {
            Some(e.to_string())
        } else if scan.is_open() && rest.is_none() {
            Some("the body ended inside its JSON object".to_owned())
        } else {
            None
        };
        if let Some(why) = why {
            return Err(refusal(
                StatusCode::BAD_REQUEST,
                "unroutable_request",
                format!("cannot find the model to route this request: {why}"),
                &mut scan,
                endpoint,
            ));
        }
    }
    let parsed = scan.is_done() && decode_error.is_none();
    let mut info = RequestInfo::from_scan(endpoint, &mut scan, parsed);
    if may_ask && rest.is_none() {
        info.usage = inject::plan(endpoint.0, &scan);
    }
    let charge = (charge.bytes() > 0).then_some(charge);
    let forward = ForwardBody::new(frames.done(), charge, rest, deadline, config.body_timeout);
    Ok((forward, info))
}

/// Pieces of a body smaller than this are copied together: the server hands each piece of a
/// body as a slice of its read buffer, so a client that sends a byte at a time would otherwise make
/// every byte held pin a buffer of 8 KiB or more (the budget counts the bytes, not the buffers).
const COALESCE_BELOW: usize = 16 * 1024;

/// The frames read ahead, small data frames copied into one.
#[derive(Default)]
struct Frames {
    frames: VecDeque<Frame<Bytes>>,
    small: BytesMut,
}

impl Frames {
    fn push(&mut self, frame: Frame<Bytes>) {
        match frame.data_ref() {
            Some(data) if data.len() < COALESCE_BELOW => self.small.extend_from_slice(data),
            _ => {
                self.flush();
                self.frames.push_back(frame);
            }
        }
    }

    fn flush(&mut self) {
        if !self.small.is_empty() {
            let small = std::mem::take(&mut self.small);
            self.frames.push_back(Frame::data(small.freeze()));
        }
    }

    fn done(mut self) -> VecDeque<Frame<Bytes>> {
        self.flush();
        self.frames
    }
}

fn refusal(
    status: StatusCode,
    kind: &'static str,
    message: String,
    scan: &mut BodyScan,
    endpoint: Endpoint,
) -> Box<Refusal> {
    Box::new(Refusal {
        status,
        kind,
        message,
        client_gone: false,
        info: RequestInfo::from_scan(endpoint, scan, false),
    })
}
