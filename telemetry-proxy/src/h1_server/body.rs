//! [`RequestBody`]: a client's request body as the service reads it. A body that came whole
//! with its head (the common case: a JSON request in one packet) is one `Bytes` taken from the
//! read buffer; a longer one reads the connection itself, through [`Inbound`], which the
//! connection takes back once the body has ended.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::Interest;
use tokio::net::TcpStream;

use super::codec::{BodyDecoder, ChunkError, Decoded};

/// The interim answer to `Expect: 100-continue`.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
/// Bytes asked of one read of a body.
const BODY_READ: usize = 32 * 1024;

/// Why a request body did not arrive whole.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    /// The client closed its connection before the end of its body.
    #[error("the client closed the connection before the end of its body")]
    Closed,
    /// Reading the connection failed.
    #[error("reading the client's connection failed: {0}")]
    Io(#[source] io::Error),
    /// The chunked encoding was broken.
    #[error(transparent)]
    Chunked(#[from] ChunkError),
}

/// A client's request body.
#[derive(Debug)]
pub(crate) struct RequestBody(Kind);

#[derive(Debug)]
enum Kind {
    /// Read with the head (or empty): handed out in one frame.
    Whole(Option<Bytes>),
    /// Read from the connection as the service asks for it.
    Reading(Arc<Mutex<Inbound>>),
}

impl RequestBody {
    /// A body with nothing in it.
    pub fn empty() -> RequestBody {
        RequestBody(Kind::Whole(None))
    }

    /// A body already read whole.
    pub fn whole(bytes: Bytes) -> RequestBody {
        RequestBody(Kind::Whole((!bytes.is_empty()).then_some(bytes)))
    }

    /// A body read from the connection through `inbound`.
    pub fn reading(inbound: Arc<Mutex<Inbound>>) -> RequestBody {
        RequestBody(Kind::Reading(inbound))
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match &mut self.0 {
            Kind::Whole(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Reading(inbound) => lock(inbound)
                .poll_data(cx)
                .map(|d| d.map(|d| d.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Whole(bytes) => bytes.is_none(),
            Kind::Reading(inbound) => lock(inbound).decoder.is_done(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Whole(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Kind::Reading(inbound) => {
                // What is buffered of a length-delimited body counts in what remains.
                match lock(inbound).decoder.remaining() {
                    Some(n) => SizeHint::with_exact(n),
                    None => SizeHint::default(),
                }
            }
        }
    }
}

/// Locks `inbound` (a panic while it was held leaves nothing half-done worth refusing).
pub(crate) fn lock(inbound: &Mutex<Inbound>) -> MutexGuard<'_, Inbound> {
    inbound.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The reading side of a connection while a body is read from it.
#[derive(Debug)]
pub(crate) struct Inbound {
    stream: Arc<TcpStream>,
    /// Bytes read and not yet handed out (the body's, then perhaps the next request's).
    pub buf: BytesMut,
    decoder: BodyDecoder,
    /// Bytes of [`CONTINUE`] still to send before the body is read.
    continue_left: usize,
    /// The body broke off: the connection cannot serve another request.
    pub failed: bool,
}

impl Inbound {
    /// The body delimited by `decoder`, its first bytes in `buf`, the rest to be read from
    /// `stream`; `send_continue` when the client waits for a `100 Continue`.
    pub fn new(
        stream: Arc<TcpStream>,
        buf: BytesMut,
        decoder: BodyDecoder,
        send_continue: bool,
    ) -> Inbound {
        Inbound {
            stream,
            buf,
            decoder,
            continue_left: if send_continue { CONTINUE.len() } else { 0 },
            failed: false,
        }
    }

    /// Whether the body has been read to its end (the connection may serve on).
    pub fn is_done(&self) -> bool {
        self.decoder.is_done() && !self.failed
    }

    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BodyError>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        while self.continue_left > 0 {
            let at = CONTINUE.len() - self.continue_left;
            match ready!(poll_write(&self.stream, &CONTINUE[at..], cx)) {
                Ok(n) => self.continue_left -= n,
                Err(e) => return Poll::Ready(Some(Err(self.fail(BodyError::Io(e))))),
            }
        }
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Decoded::Data(data)) => return Poll::Ready(Some(Ok(data))),
                Ok(Decoded::End) => return Poll::Ready(None),
                Ok(Decoded::NeedMore) => {}
                Err(e) => return Poll::Ready(Some(Err(self.fail(e.into())))),
            }
            let want = match self.decoder.remaining() {
                Some(n) => usize::try_from(n).unwrap_or(BODY_READ).clamp(1, BODY_READ),
                None => BODY_READ,
            };
            match ready!(poll_read(&self.stream, &mut self.buf, want, cx)) {
                Ok(0) => return Poll::Ready(Some(Err(self.fail(BodyError::Closed)))),
                Ok(_) => {}
                Err(e) => return Poll::Ready(Some(Err(self.fail(BodyError::Io(e))))),
            }
        }
    }

    fn fail(&mut self, e: BodyError) -> BodyError {
        self.failed = true;
        e
    }
}

/// Reads what the connection has into `buf`, room for `want` bytes made first.
///
/// A read that does not fill the room it was given has drained the socket: its readiness is
/// cleared then (as tokio's own `AsyncRead` does), so the next wait parks at once instead of
/// making a `read` that fails with `EAGAIN`.
pub(crate) fn poll_read(
    stream: &TcpStream,
    buf: &mut BytesMut,
    want: usize,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    if buf.capacity() - buf.len() < want {
        buf.reserve(want);
    }
    let room = buf.capacity() - buf.len();
    poll_read_with(stream, cx, room, |stream| stream.try_read_buf(buf))
}

/// Reads into `into` (a small buffer: to see the client close while nothing is expected).
pub(crate) fn poll_read_into(
    stream: &TcpStream,
    into: &mut [u8],
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    let room = into.len();
    poll_read_with(stream, cx, room, |stream| stream.try_read(into))
}

fn poll_read_with(
    stream: &TcpStream,
    cx: &mut Context<'_>,
    room: usize,
    mut read: impl FnMut(&TcpStream) -> io::Result<usize>,
) -> Poll<io::Result<usize>> {
    loop {
        ready!(stream.poll_read_ready(cx))?;
        let mut got = None;
        // The inner read and the outer `try_io` see the same readiness event: a short read
        // clears exactly that one (a later event, data that came since, is kept).
        let tried = stream.try_io(Interest::READABLE, || {
            let n = read(stream)?;
            got = Some(n);
            if n > 0 && n < room {
                Err(io::ErrorKind::WouldBlock.into())
            } else {
                Ok(n)
            }
        });
        if let Some(n) = got {
            return Poll::Ready(Ok(n));
        }
        match tried {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            done => return Poll::Ready(done),
        }
    }
}

/// Writes what the connection takes of `bytes` now.
fn poll_write(stream: &TcpStream, bytes: &[u8], cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
    loop {
        ready!(stream.poll_write_ready(cx))?;
        match stream.try_write(bytes) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            done => return Poll::Ready(done),
        }
    }
}
