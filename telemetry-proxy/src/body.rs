//! The bodies the proxy sends: [`ForwardBody`] (a request to the upstream: the part read ahead,
//! then the rest as it arrives, within the body timeout; a whole one can be edited to ask for
//! usage, keeping the original for a retry) and [`ResponseBody`] (a response to the client: the
//! upstream's frames passed on as they arrive, each shown to the call's [`Exchange`] on the way —
//! decoded on the side when compressed — within the between-chunks timeout, and given to the
//! client through an [`IncludeUsageFilter`] when the proxy asked for usage; or a response of the
//! proxy's own).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use telemetry_openai::protocol::{Filtered, IncludeUsageFilter};
use tokio::time::{Instant, Sleep};

use crate::budget::Charge;
use crate::decode::Decoder;
use crate::h1::ConnError;
use crate::h1_server::{BodyError, RequestBody};
use crate::inject::{Edit, edit_frames};
use crate::pool::UpstreamBody;
use crate::record::Exchange;
use crate::stats::Counters;
use crate::tls::Io;

/// Why a client's request body did not reach the upstream whole.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientBodyError {
    /// The client's upload broke off (it closed the connection, or sent a malformed body).
    #[error("the client's request body broke off: {0}")]
    Aborted(#[source] BodyError),
    /// The client did not send its whole body in time.
    #[error("the client did not send its whole request body within {0:?}")]
    Timeout(Duration),
}

impl ClientBodyError {
    /// The client body error somewhere in `error`'s sources, if that is why it failed.
    pub fn find<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a ClientBodyError> {
        let mut source = Some(error);
        while let Some(e) = source {
            if let Some(found) = e.downcast_ref::<ClientBodyError>() {
                return Some(found);
            }
            source = e.source();
        }
        None
    }
}

/// A request body on its way to the upstream.
#[derive(Debug)]
pub(crate) struct ForwardBody {
    /// Frames read ahead (to find the request's model), sent first.
    read_ahead: VecDeque<Frame<Bytes>>,
    read_ahead_len: u64,
    /// The budget held by the frames read ahead, given back as they leave.
    charge: Option<Charge>,
    /// The rest, passed on as it arrives.
    rest: Option<RequestBody>,
    /// When the whole body must have arrived (the client's body timeout).
    deadline: Instant,
    /// Fires at `deadline`: armed the first time the rest of the body is awaited (a body read
    /// ahead whole never needs it).
    timer: Option<Pin<Box<Sleep>>>,
    timeout: Duration,
}

impl ForwardBody {
    /// The body to forward: `read_ahead` (holding `charge` of the budget) first, then `rest`
    /// (if the body goes on), which must end by `deadline`. Boxed: it passes by value through
    /// several futures (the intake's, the handler's, the send's and the pool's) on its way to
    /// the upstream, and a pointer moves for less than its ~140 bytes.
    pub fn new(
        read_ahead: VecDeque<Frame<Bytes>>,
        charge: Option<Charge>,
        rest: Option<RequestBody>,
        deadline: Instant,
        timeout: Duration,
    ) -> Box<ForwardBody> {
        let read_ahead_len = read_ahead
            .iter()
            .filter_map(Frame::data_ref)
            .map(|d| d.len() as u64)
            .sum();
        Box::new(ForwardBody {
            read_ahead,
            read_ahead_len,
            charge,
            rest,
            deadline,
            timer: None,
            timeout,
        })
    }

    /// Bytes read ahead (not yet sent), when they are the whole body.
    pub fn whole_len(&self) -> Option<u64> {
        self.rest.is_none().then_some(self.read_ahead_len)
    }

    /// Applies `edit` to a whole body not yet sent; returns the body as it was (holding
    /// `charge`, which the caller took for its bytes), to send again if the edited one is
    /// refused. `None`, and the body unchanged, when it is not whole or the edit does not fit.
    pub fn inject(&mut self, edit: &Edit, charge: Charge) -> Option<Box<ForwardBody>> {
        if self.rest.is_some() {
            return None;
        }
        let (edited, len) = edit_frames(&self.read_ahead, edit)?;
        let original = std::mem::replace(&mut self.read_ahead, edited);
        self.read_ahead_len = len;
        Some(ForwardBody::new(
            original,
            Some(charge),
            None,
            self.deadline,
            self.timeout,
        ))
    }
}

impl Body for ForwardBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        let this = &mut *self;
        if let Some(frame) = this.read_ahead.pop_front() {
            if let Some(d) = frame.data_ref() {
                this.read_ahead_len -= d.len() as u64;
                if let Some(charge) = &mut this.charge {
                    charge.release(d.len());
                }
            }
            return Poll::Ready(Some(Ok(frame)));
        }
        let Some(rest) = &mut this.rest else {
            return Poll::Ready(None);
        };
        match Pin::new(rest).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(ClientBodyError::Aborted(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let deadline = this.deadline;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.as_mut().poll(cx).is_ready() {
                    // The rest is dropped: the client's connection is closed with it.
                    this.rest = None;
                    return Poll::Ready(Some(Err(ClientBodyError::Timeout(this.timeout))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.read_ahead.is_empty() && self.rest.as_ref().is_none_or(RequestBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self
            .rest
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), RequestBody::size_hint);
        let lower = hint.lower() + self.read_ahead_len;
        match hint.upper() {
            Some(upper) if upper == hint.lower() => hint.set_exact(lower),
            Some(upper) => {
                hint.set_upper(upper + self.read_ahead_len);
                hint.set_lower(lower);
            }
            None => hint.set_lower(lower),
        }
        hint
    }
}

/// Why a response body sent to the client ended early.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ResponseError {
    /// The upstream's body broke off.
    #[error("the upstream's response broke off: {0}")]
    Upstream(#[source] ConnError),
    /// The upstream paused longer than the between-chunks timeout.
    #[error("the upstream sent nothing for {0:?}")]
    Stalled(Duration),
}

/// What a response from the upstream needs on its way to the client.
#[derive(Debug)]
pub(crate) struct Relay {
    /// The upstream's body (holding its connection until it ends).
    pub inner: UpstreamBody<Io>,
    /// The call being recorded, until its body ends.
    pub exchange: Option<Exchange>,
    /// Decodes a compressed body for the exchange (the client gets it as it came).
    pub decoder: Option<Box<Decoder>>,
    /// Budget held for what the exchange keeps of a whole (not streamed) body, up to `keep`
    /// bytes; `None` for a stream, which keeps nothing.
    pub charge: Option<Charge>,
    /// Bytes of a whole body the exchange keeps at most.
    pub keep: usize,
    /// Longest pause between two frames.
    pub chunk_timeout: Duration,
    /// When the last frame arrived.
    pub last: Instant,
    /// Fires at `last + chunk_timeout` (or earlier: then it is pushed back).
    pub timer: Option<Pin<Box<Sleep>>>,
    /// Counters of the proxy.
    pub counters: Arc<Counters>,
    /// What the client gets of a stream the proxy asked usage for (the exchange sees it all).
    pub filter: Option<Box<IncludeUsageFilter>>,
    /// The start of the body, read before the response went on: sent first.
    pub head: Option<Bytes>,
    /// The upstream's body has ended and everything has been passed on.
    pub ended: bool,
}

/// A response body on its way to the client.
#[derive(Debug)]
pub(crate) enum ResponseBody {
    /// The proxy's own response (health, 502).
    Local(Option<Bytes>),
    /// The upstream's body; each data frame is shown to the exchange on its way through.
    Upstream(Box<Relay>),
}

impl ResponseBody {
    /// A complete body of the proxy's own.
    pub fn local(bytes: impl Into<Bytes>) -> ResponseBody {
        ResponseBody::Local(Some(bytes.into()))
    }
}

impl From<Bytes> for ResponseBody {
    fn from(bytes: Bytes) -> Self {
        ResponseBody::local(bytes)
    }
}

impl Relay {
    /// Shows a data frame to the exchange (decoded, when the body is compressed).
    fn show(&mut self, data: &Bytes) {
        let Relay {
            exchange,
            decoder,
            charge,
            keep,
            ..
        } = self;
        let Some(ex) = exchange.as_mut() else {
            return;
        };
        let mut give_up = false;
        // What a whole body's watch keeps comes out of the budget.
        let mut charged = |ex: &mut Exchange, piece: &Bytes| {
            if let Some(c) = charge.as_mut()
                && c.bytes() < *keep
                && !c.take(piece.len().min(*keep - c.bytes()))
            {
                give_up = true;
            }
            if !give_up {
                ex.data(piece);
            }
        };
        match decoder {
            None => charged(ex, data),
            Some(d) => {
                let decoded = d.decode(data, &mut |piece| {
                    charged(ex, &Bytes::copy_from_slice(piece));
                });
                if let Err(e) = decoded {
                    ex.unreadable(&e.to_string());
                }
            }
        }
        if give_up {
            ex.unreadable("the proxy's buffer budget was exhausted");
            *charge = None;
        }
    }

    /// What the client gets of a data frame (through the filter, if any); at the `end` of the
    /// body, with what the filter held.
    fn for_client(&mut self, data: Bytes, end: bool) -> Bytes {
        let Some(filter) = self.filter.as_mut() else {
            return data;
        };
        let out = match filter.feed(&data) {
            Filtered::Input(range) => data.slice(range),
            Filtered::Output(bytes) => Bytes::copy_from_slice(bytes),
        };
        if !end {
            return out;
        }
        let held = filter.finish();
        if held.is_empty() {
            return out;
        }
        let mut all = Vec::with_capacity(out.len() + held.len());
        all.extend_from_slice(&out);
        all.extend_from_slice(held);
        Bytes::from(all)
    }

    /// The body ended (its connection went back to its pool at once): the decoder's last
    /// output, then the exchange completes.
    fn finish(&mut self) {
        if let (Some(d), Some(ex)) = (self.decoder.as_mut(), self.exchange.as_mut()) {
            let finished = d.finish(&mut |piece| ex.data(&Bytes::copy_from_slice(piece)));
            if let Err(e) = finished {
                ex.unreadable(&e.to_string());
            }
        }
        if let Some(ex) = self.exchange.take() {
            ex.complete();
        }
    }

    /// Whether the between-chunks timeout has passed; arms (or pushes back) the timer.
    fn stalled(&mut self, cx: &mut Context<'_>) -> bool {
        let due = self.last + self.chunk_timeout;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        if timer.deadline() != due {
            if Instant::now() < due {
                timer.as_mut().reset(due);
            } else {
                return true;
            }
        }
        timer.as_mut().poll(cx).is_ready()
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = ResponseError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ResponseError>>> {
        let relay = match &mut *self {
            ResponseBody::Local(bytes) => {
                return Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b))));
            }
            ResponseBody::Upstream(relay) => &mut **relay,
        };
        if let Some(head) = relay.head.take() {
            relay.show(&head);
            let end = relay.inner.is_end_stream();
            let head = relay.for_client(head, end);
            if end {
                relay.finish();
                relay.ended = true;
            }
            return Poll::Ready(Some(Ok(Frame::data(head))));
        }
        if relay.ended {
            return Poll::Ready(None);
        }
        loop {
            let polled = match Pin::new(&mut relay.inner).poll_frame(cx) {
                Poll::Ready(polled) => polled,
                Poll::Pending => {
                    if relay.stalled(cx) {
                        let timeout = relay.chunk_timeout;
                        Counters::bump(&relay.counters.upstream_timeouts);
                        if let Some(ex) = relay.exchange.take() {
                            ex.fail(
                                "upstream_timeout",
                                format!("the upstream sent nothing for {timeout:?} mid-response"),
                            );
                        }
                        return Poll::Ready(Some(Err(ResponseError::Stalled(timeout))));
                    }
                    return Poll::Pending;
                }
            };
            relay.last = Instant::now();
            return match polled {
                Some(Ok(frame)) => {
                    // hyper stops polling a body that says it has ended: finish now.
                    let end = relay.inner.is_end_stream();
                    let frame = match frame.into_data() {
                        Ok(data) => {
                            relay.show(&data);
                            let filtered = relay.filter.is_some();
                            let data = relay.for_client(data, end);
                            if filtered && data.is_empty() && !end {
                                // Held back (an event not yet whole, or taken out).
                                continue;
                            }
                            Frame::data(data)
                        }
                        Err(other) => other,
                    };
                    if end {
                        relay.finish();
                        relay.ended = true;
                    }
                    Poll::Ready(Some(Ok(frame)))
                }
                Some(Err(e)) => {
                    if let Some(ex) = relay.exchange.take() {
                        ex.upstream_body_failed(&e);
                    }
                    Poll::Ready(Some(Err(ResponseError::Upstream(e))))
                }
                None => {
                    relay.finish();
                    relay.ended = true;
                    let held = relay.for_client(Bytes::new(), true);
                    Poll::Ready((!held.is_empty()).then(|| Ok(Frame::data(held))))
                }
            };
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Local(bytes) => bytes.is_none(),
            ResponseBody::Upstream(relay) => {
                relay.ended
                    || (relay.head.is_none()
                        && relay.filter.is_none()
                        && relay.inner.is_end_stream())
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Local(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            ResponseBody::Upstream(relay) if relay.filter.is_some() => SizeHint::default(),
            ResponseBody::Upstream(relay) => {
                let head = relay.head.as_ref().map_or(0, |h| h.len() as u64);
                let inner = relay.inner.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower() + head);
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper + head);
                }
                hint
            }
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let ResponseBody::Upstream(relay) = self {
            // Dropped before its end: the client went away (dropping `inner` closes the
            // upstream connection), unless everything had already arrived (an empty body is
            // never polled).
            if relay.inner.is_end_stream() && relay.head.is_none() {
                relay.finish();
            } else if let Some(ex) = relay.exchange.take() {
                ex.client_gone();
            }
        }
    }
}
