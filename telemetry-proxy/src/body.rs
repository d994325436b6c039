//! The bodies the proxy sends: [`ForwardBody`] (a request to the upstream: the part read ahead,
//! then the rest as it arrives) and [`ResponseBody`] (a response to the client: the upstream's
//! frames passed on as they arrive, each shown to the call's [`Exchange`] on the way, or a
//! response of the proxy's own).

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::record::Exchange;

/// A request body on its way to the upstream.
#[derive(Debug)]
pub(crate) struct ForwardBody {
    /// Frames read ahead (to learn the request's model), sent first.
    read_ahead: VecDeque<Frame<Bytes>>,
    read_ahead_len: u64,
    /// The rest, passed on as it arrives.
    rest: Option<Incoming>,
}

impl ForwardBody {
    /// The client's body, passed on as it arrives.
    pub fn streaming(body: Incoming) -> ForwardBody {
        ForwardBody {
            read_ahead: VecDeque::new(),
            read_ahead_len: 0,
            rest: Some(body),
        }
    }

    /// Reads up to `limit` bytes of `body` ahead. Returns the body to forward (all of it, in
    /// its original frames) and, when the whole body fitted in `limit`, its bytes in one piece.
    pub async fn read_ahead(
        mut body: Incoming,
        limit: usize,
    ) -> Result<(ForwardBody, Option<Bytes>), hyper::Error> {
        let mut frames = VecDeque::new();
        let mut len = 0usize;
        let mut over = false;
        let mut rest = None;
        loop {
            if body.is_end_stream() {
                break;
            }
            let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
            else {
                break;
            };
            let frame = frame?;
            if let Some(data) = frame.data_ref() {
                len += data.len();
            }
            frames.push_back(frame);
            if len > limit {
                over = true;
                rest = Some(body);
                break;
            }
        }
        let whole = (!over).then(|| concat(&frames, len));
        let forward = ForwardBody {
            read_ahead: frames,
            read_ahead_len: len as u64,
            rest,
        };
        Ok((forward, whole))
    }
}

/// The data frames in one `Bytes` (without copying when there is one frame).
fn concat(frames: &VecDeque<Frame<Bytes>>, len: usize) -> Bytes {
    let mut data = frames.iter().filter_map(Frame::data_ref);
    match (data.next(), data.next()) {
        (None, _) => Bytes::new(),
        (Some(one), None) => one.clone(),
        _ => {
            let mut all = BytesMut::with_capacity(len);
            for d in frames.iter().filter_map(Frame::data_ref) {
                all.extend_from_slice(d);
            }
            all.freeze()
        }
    }
}

impl Body for ForwardBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        if let Some(frame) = this.read_ahead.pop_front() {
            if let Some(d) = frame.data_ref() {
                this.read_ahead_len -= d.len() as u64;
            }
            return Poll::Ready(Some(Ok(frame)));
        }
        match &mut this.rest {
            Some(rest) => Pin::new(rest).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.read_ahead.is_empty() && self.rest.as_ref().is_none_or(Incoming::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self
            .rest
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Incoming::size_hint);
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

/// A response body on its way to the client.
#[derive(Debug)]
pub(crate) enum ResponseBody {
    /// The proxy's own response (health, 502).
    Local(Option<Bytes>),
    /// The upstream's body; each data frame is shown to the exchange on its way through.
    Upstream {
        /// The upstream's body.
        inner: Incoming,
        /// The call being recorded, until its body ends.
        exchange: Option<Exchange>,
    },
}

impl ResponseBody {
    /// A complete body of the proxy's own.
    pub fn local(bytes: impl Into<Bytes>) -> ResponseBody {
        ResponseBody::Local(Some(bytes.into()))
    }
}

impl From<Bytes> for ResponseBody {
    fn from(bytes: Bytes) -> ResponseBody {
        ResponseBody::Local(Some(bytes))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match &mut *self {
            ResponseBody::Local(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            ResponseBody::Upstream { inner, exchange } => {
                let polled = ready!(Pin::new(&mut *inner).poll_frame(cx));
                match &polled {
                    Some(Ok(frame)) => {
                        if let (Some(data), Some(ex)) = (frame.data_ref(), exchange.as_mut()) {
                            ex.data(data);
                        }
                        // hyper stops polling a body that says it has ended: finish now.
                        if inner.is_end_stream()
                            && let Some(ex) = exchange.take()
                        {
                            ex.complete();
                        }
                    }
                    Some(Err(e)) => {
                        if let Some(ex) = exchange.take() {
                            ex.upstream_body_failed(e);
                        }
                    }
                    None => {
                        if let Some(ex) = exchange.take() {
                            ex.complete();
                        }
                    }
                }
                Poll::Ready(polled)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Local(bytes) => bytes.is_none(),
            ResponseBody::Upstream { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Local(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            ResponseBody::Upstream { inner, .. } => inner.size_hint(),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let ResponseBody::Upstream { inner, exchange } = self
            && let Some(ex) = exchange.take()
        {
            // Dropped before its end: the client went away (dropping `inner` aborts the
            // upstream request), unless everything had already arrived.
            if inner.is_end_stream() {
                ex.complete();
            } else {
                ex.client_gone();
            }
        }
    }
}
