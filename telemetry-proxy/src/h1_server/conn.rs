//! One client connection served to its end ([`serve`]): heads read into one buffer and
//! parsed, one request at a time (pipelined requests wait in the buffer), the service's
//! response written as head and body in one `writev` when the body is there whole, chunked
//! when a stream has no length, and the connection kept or closed as both sides say.
//!
//! Timers: the slow-header deadline is one timer per connection, armed the first time a head
//! is waited for and not moved per request; when it fires early (for an older deadline) it is
//! pushed to the current one. A request answered while its next head is already buffered
//! waits for nothing and arms nothing.

use std::future::{Future, poll_fn};
use std::io::{self, IoSlice};
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Method, StatusCode, Version};
use hyper::body::Body;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::fields::{Incoming, Reply, same_name};

use super::body::{Inbound, RequestBody, lock, poll_read, poll_read_into};
use super::codec::{self, BodyDecoder, ConnectionHeader, Framing, Head, HeadError};

/// Bytes asked of one read while a head is awaited.
const HEAD_READ: usize = 8 * 1024;

/// How a connection is served.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    /// How long a request head may take to arrive, counted from when it is first waited for
    /// (an idle keep-alive connection is closed after it too).
    pub header_timeout: Duration,
    /// Whether the connection may serve more than one request.
    pub keep_alive: bool,
    /// Largest request head (request line and header fields); a larger one is a `431`.
    pub max_head: usize,
}

/// Serves `stream` until the client closes it, an exchange ends it, or `stop` changes while
/// the connection waits for a request (then it closes at once; a response in flight finishes
/// first, and the connection closes after it).
pub(crate) async fn serve<S, F, B>(
    stream: TcpStream,
    options: Options,
    stop: watch::Receiver<bool>,
    mut service: S,
) where
    S: FnMut(Incoming<RequestBody>) -> F,
    F: Future<Output = Reply<B>>,
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    let mut conn = Conn {
        stream: Arc::new(stream),
        buf: BytesMut::new(),
        out: Vec::new(),
        reading: None,
        watch: false,
    };
    if conn.run(options, stop, &mut service).await == End::Close {
        conn.shutdown().await;
    }
}

/// How an exchange, or the connection, ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The connection serves on.
    KeepAlive,
    /// Close it, after what was written (the write side is shut first).
    Close,
    /// The client has gone or the connection broke: drop it.
    Gone,
}

/// What a wait for a request head ended with.
enum Wait {
    Read(io::Result<usize>),
    Stop,
    Timeout,
}

/// How the response body is delimited.
#[derive(Debug, Clone, Copy)]
enum Out {
    /// This many bytes still due.
    Length(u64),
    Chunked,
    /// Until the connection closes (an HTTP/1.0 client, no length known).
    UntilClose,
}

struct Conn {
    stream: Arc<TcpStream>,
    /// Bytes read and not yet parsed (while a body is read through [`Inbound`], it holds them).
    buf: BytesMut,
    /// The head (and chunk-size line) being written.
    out: Vec<u8>,
    /// The body being read from the connection, holding the read buffer until it ends.
    reading: Option<Arc<Mutex<Inbound>>>,
    /// Whether the connection is read while the response is awaited, to see the client leave.
    watch: bool,
}

impl Conn {
    async fn run<S, F, B>(
        &mut self,
        options: Options,
        stop: watch::Receiver<bool>,
        service: &mut S,
    ) -> End
    where
        S: FnMut(Incoming<RequestBody>) -> F,
        F: Future<Output = Reply<B>>,
        B: Body<Data = Bytes>,
        B::Error: std::fmt::Display,
    {
        let probe = stop.clone();
        let mut stop = stop;
        let mut stopping = *probe.borrow();
        // Polled once, to put this task's waker on the channel's list: it stays there (the
        // task's waker does not change) and wakes the task at the change, which `probe` then
        // reads with one atomic load. Polling it at every wait took the list's lock each time.
        let mut stopped = pin!(stop.changed());
        let mut listening = false;
        let mut timer = pin!(tokio::time::sleep_until(Instant::now()));
        let (mut armed, mut registered) = (false, false);
        loop {
            let mut deadline = None;
            let head = loop {
                if !self.buf.is_empty() {
                    match codec::parse_head(&mut self.buf, options.max_head) {
                        Ok(Some(head)) => break head,
                        Ok(None) => {}
                        Err(e) => return self.refuse(&e).await,
                    }
                }
                if stopping && self.buf.is_empty() {
                    return End::Close;
                }
                let due = *deadline.get_or_insert_with(|| Instant::now() + options.header_timeout);
                let waited = poll_fn(|cx| {
                    if let Poll::Ready(read) = poll_read(&self.stream, &mut self.buf, HEAD_READ, cx)
                    {
                        return Poll::Ready(Wait::Read(read));
                    }
                    if !listening && !stopping {
                        listening = true;
                        stopping = stopped.as_mut().poll(cx).is_ready();
                    }
                    stopping |= probe.has_changed().unwrap_or(true);
                    if stopping && self.buf.is_empty() {
                        return Poll::Ready(Wait::Stop);
                    }
                    // Deadlines only grow: a timer still armed for an older one fires early and
                    // is pushed to this one then. Once polled, the timer holds this task's waker:
                    // until it is reset, whether it fired is read without polling it again.
                    if !armed {
                        timer.as_mut().reset(due);
                        (armed, registered) = (true, false);
                    }
                    loop {
                        let fired = if registered {
                            timer.is_elapsed()
                        } else {
                            timer.as_mut().poll(cx).is_ready()
                        };
                        if !fired {
                            registered = true;
                            break;
                        }
                        if Instant::now() >= due {
                            return Poll::Ready(Wait::Timeout);
                        }
                        timer.as_mut().reset(due);
                        registered = false;
                    }
                    Poll::Pending
                })
                .await;
                match waited {
                    Wait::Read(Ok(0)) | Wait::Read(Err(_)) => return End::Gone,
                    Wait::Read(Ok(_)) => {}
                    Wait::Stop => return End::Close,
                    Wait::Timeout => {
                        tracing::debug!("no request head within {:?}", options.header_timeout);
                        return End::Close;
                    }
                }
            };
            let end = self.exchange(head, options, service, &probe).await;
            if end != End::KeepAlive {
                return end;
            }
            stopping |= probe.has_changed().unwrap_or(true);
        }
    }

    /// Serves one request: the service called, its response written.
    async fn exchange<S, F, B>(
        &mut self,
        head: Head,
        options: Options,
        service: &mut S,
        stop: &watch::Receiver<bool>,
    ) -> End
    where
        S: FnMut(Incoming<RequestBody>) -> F,
        F: Future<Output = Reply<B>>,
        B: Body<Data = Bytes>,
        B::Error: std::fmt::Display,
    {
        let Head {
            method,
            uri,
            version,
            fields,
            framing,
            keep_alive,
            expect_continue,
        } = head;
        let is_head = method == Method::HEAD;
        // A tunnel is never given: nothing after a CONNECT is read as a request.
        let connect = method == Method::CONNECT;
        let http10 = version == Version::HTTP_10;
        let body = match framing {
            Framing::Length(0) => RequestBody::empty(),
            Framing::Length(n) if self.buf.len() as u64 >= n => {
                // n <= the buffer's length.
                RequestBody::whole(self.buf.split_to(n as usize).freeze())
            }
            _ => {
                let inbound = Arc::new(Mutex::new(Inbound::new(
                    Arc::clone(&self.stream),
                    std::mem::take(&mut self.buf),
                    BodyDecoder::new(framing),
                    expect_continue,
                )));
                self.reading = Some(Arc::clone(&inbound));
                RequestBody::reading(inbound)
            }
        };
        self.watch = self.reading.is_none() && self.buf.is_empty();

        let response = {
            let mut call = pin!(service(Incoming {
                method,
                uri,
                fields,
                body,
            }));
            poll_fn(|cx| {
                if let Poll::Ready(response) = call.as_mut().poll(cx) {
                    return Poll::Ready(Some(response));
                }
                if self.poll_gone(cx) {
                    return Poll::Ready(None);
                }
                Poll::Pending
            })
            .await
        };
        let Some(response) = response else {
            // The client left: the call is dropped (and recorded as cancelled).
            return End::Gone;
        };
        // A body not read to its end leaves the connection unusable.
        let keep = keep_alive
            && options.keep_alive
            && !connect
            && self.reclaim()
            && !stop.has_changed().unwrap_or(true);
        let end = self.respond(response, is_head, http10, keep).await;
        if end == End::KeepAlive && !self.reclaim() {
            return End::Close;
        }
        end
    }

    /// Takes the read buffer back from a body read to its end; `false` while the body is still
    /// being read, or broke off.
    fn reclaim(&mut self) -> bool {
        let Some(inbound) = &self.reading else {
            return true;
        };
        let mut inbound = lock(inbound);
        if !inbound.is_done() {
            return false;
        }
        self.buf = std::mem::take(&mut inbound.buf);
        drop(inbound);
        self.reading = None;
        true
    }

    /// Whether the client has closed the connection while its response is awaited. Read only
    /// while nothing else is buffered (like hyper's server: bytes of a pipelined request stay
    /// for later, and end the watch).
    fn poll_gone(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.watch {
            if self.reading.is_none() || !self.reclaim() {
                return false;
            }
            self.watch = self.buf.is_empty();
            if !self.watch {
                return false;
            }
        }
        // Into a small buffer of its own: the read buffer may still be shared with the request
        // in flight, and reserving room in it would allocate a new one.
        let mut probe = [0u8; 512];
        match poll_read_into(&self.stream, &mut probe, cx) {
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => true,
            Poll::Ready(Ok(n)) => {
                self.buf.extend_from_slice(&probe[..n]);
                self.watch = false;
                false
            }
            Poll::Pending => false,
        }
    }

    /// Writes `response`: its head and, when the body is there whole, the body with it in one
    /// write; then the body's frames as they come.
    async fn respond<B>(
        &mut self,
        response: Reply<B>,
        is_head: bool,
        http10: bool,
        keep: bool,
    ) -> End
    where
        B: Body<Data = Bytes>,
        B::Error: std::fmt::Display,
    {
        let Reply {
            status,
            fields,
            body,
        } = response;
        let mut body = pin!(body);
        // One pass over the names (a handful).
        let (mut close, mut declared) = (false, None);
        for (name, value) in fields.iter() {
            if same_name(name, b"connection") {
                close |= codec::has_token(value, "close");
            } else if same_name(name, b"content-length") {
                declared = crate::fields::parse_length(value);
            }
        }
        let mut keep = keep && !close && status != StatusCode::SWITCHING_PROTOCOLS;
        let bodiless = is_head
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        let mut first = Bytes::new();
        let mut ended = false;
        let (length, mut out) = if bodiless {
            ended = true;
            let length = match status {
                _ if is_head => declared.or(body.size_hint().exact()),
                StatusCode::NOT_MODIFIED => declared,
                _ => None,
            };
            (length, Out::Length(0))
        } else {
            // The first frame is often the whole body: then it goes with the head, in one write
            // (with a length when none was given).
            let hint = body.size_hint().exact();
            if body.is_end_stream() {
                ended = true;
            } else {
                let polled = poll_fn(|cx| Poll::Ready(body.as_mut().poll_frame(cx))).await;
                match polled {
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Ok(data) = frame.into_data() {
                            first = data;
                        }
                        ended = body.is_end_stream();
                    }
                    Poll::Ready(None) => ended = true,
                    Poll::Ready(Some(Err(e))) => {
                        tracing::debug!(error = %e, "the response body failed before its head went");
                        return End::Gone;
                    }
                    Poll::Pending => {}
                }
            }
            match (declared, hint) {
                (Some(n), _) => (Some(n), Out::Length(n)),
                _ if ended => (Some(first.len() as u64), Out::Length(first.len() as u64)),
                (None, Some(n)) => (Some(n), Out::Length(n)),
                (None, None) if http10 => {
                    keep = false;
                    (None, Out::UntilClose)
                }
                (None, None) => (None, Out::Chunked),
            }
        };
        let connection = match (keep, http10) {
            (false, _) => ConnectionHeader::Close,
            (true, true) => ConnectionHeader::KeepAlive,
            (true, false) => ConnectionHeader::None,
        };
        codec::write_head(
            &mut self.out,
            status,
            &fields,
            length,
            matches!(out, Out::Chunked),
            connection,
        );
        if bodiless {
            return match self.send(&mut out, Bytes::new(), true).await {
                Ok(true) if keep => End::KeepAlive,
                Ok(_) => End::Close,
                Err(_) => End::Gone,
            };
        }
        let mut whole = match self.send(&mut out, first, ended).await {
            Ok(whole) => whole,
            Err(_) => return End::Gone,
        };
        while !ended {
            let frame = poll_fn(|cx| {
                if let Poll::Ready(frame) = body.as_mut().poll_frame(cx) {
                    return Poll::Ready(Some(frame));
                }
                if self.poll_gone(cx) {
                    return Poll::Ready(None);
                }
                Poll::Pending
            })
            .await;
            let data = match frame {
                // The client left.
                None => return End::Gone,
                Some(None) => {
                    ended = true;
                    Bytes::new()
                }
                Some(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    ended = body.is_end_stream();
                    if data.is_empty() && !ended {
                        continue;
                    }
                    data
                }
                Some(Some(Err(e))) => {
                    // The client sees the body break off (no last chunk, or too few bytes).
                    tracing::debug!(error = %e, "the response body broke off");
                    return End::Gone;
                }
            };
            self.out.clear();
            whole = match self.send(&mut out, data, ended).await {
                Ok(w) => w && whole,
                Err(_) => return End::Gone,
            };
        }
        match out {
            Out::Length(0) | Out::Chunked if whole && keep => End::KeepAlive,
            _ => End::Close,
        }
    }

    /// Writes what `self.out` holds, then `data` framed as `out` says (and the body's end when
    /// `end`), in one write. `false` when the body had more bytes than its length.
    async fn send(&mut self, out: &mut Out, mut data: Bytes, end: bool) -> io::Result<bool> {
        let mut whole = true;
        let suffix: &'static [u8] = match out {
            Out::Length(left) => {
                if data.len() as u64 > *left {
                    // `left` < the data's length.
                    data.truncate(*left as usize);
                    whole = false;
                }
                *left -= data.len() as u64;
                b""
            }
            Out::Chunked if data.is_empty() => {
                if end {
                    b"0\r\n\r\n"
                } else {
                    b""
                }
            }
            Out::Chunked => {
                codec::chunk_size_line(&mut self.out, data.len());
                if end { b"\r\n0\r\n\r\n" } else { b"\r\n" }
            }
            Out::UntilClose => b"",
        };
        let mut slices = [
            IoSlice::new(&self.out),
            IoSlice::new(&data),
            IoSlice::new(suffix),
        ];
        write_all(&self.stream, &mut slices).await?;
        Ok(whole)
    }

    /// Answers a head that cannot be served (`400`, `431`); the connection closes after.
    async fn refuse(&mut self, e: &HeadError) -> End {
        tracing::debug!(error = %e, "refused a request head");
        let response: Reply<Bytes> =
            crate::reply::error_response(e.status(), "invalid_request", &e.to_string()).into();
        let Reply {
            status,
            fields,
            body,
        } = response;
        codec::write_head(
            &mut self.out,
            status,
            &fields,
            Some(body.len() as u64),
            false,
            ConnectionHeader::Close,
        );
        let mut slices = [IoSlice::new(&self.out), IoSlice::new(&body)];
        match write_all(&self.stream, &mut slices).await {
            Ok(()) => End::Close,
            Err(_) => End::Gone,
        }
    }

    /// Shuts the write side (the client reads what was sent, then the end), before the
    /// connection is dropped.
    async fn shutdown(self) {
        drop(self.reading);
        if let Ok(mut stream) = Arc::try_unwrap(self.stream) {
            let _ =
                poll_fn(|cx| tokio::io::AsyncWrite::poll_shutdown(Pin::new(&mut stream), cx)).await;
        }
    }
}

/// Writes every byte of `slices` (with as few `writev` calls as the socket allows).
async fn write_all(stream: &TcpStream, slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    let mut slices = slices;
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match stream.try_write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            // Boxed: the wait's state is large and seldom needed (a small answer goes in one
            // write); inline, it would make every future that writes (the response's
            // included) that much larger to build and move.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Box::pin(stream.writable()).await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicBool, Ordering};

    use http::Response;
    use http_body_util::BodyExt;
    use hyper::body::{Frame, SizeHint};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    const OPTIONS: Options = Options {
        header_timeout: Duration::from_secs(5),
        keep_alive: true,
        max_head: 1024,
    };

    /// A response body of several frames and no length: sent chunked.
    struct Frames(VecDeque<Bytes>);

    impl Body for Frames {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
        }

        fn is_end_stream(&self) -> bool {
            self.0.is_empty()
        }

        fn size_hint(&self) -> SizeHint {
            SizeHint::default()
        }
    }

    /// Answers `/stream` with three frames, `/nothing` with a 204, `/never` never (noting when
    /// the call is dropped), anything else with "METHOD PATH BODY".
    async fn answer(request: Incoming<RequestBody>, dropped: Arc<AtomicBool>) -> Response<Frames> {
        let Incoming {
            method, uri, body, ..
        } = request;
        let frames = |v: Vec<&'static str>| Frames(v.into_iter().map(Bytes::from).collect());
        match uri.path() {
            "/stream" => Response::new(frames(vec!["one", "", "two", "three"])),
            "/nothing" => {
                let mut r = Response::new(frames(vec![]));
                *r.status_mut() = StatusCode::NO_CONTENT;
                r
            }
            "/never" => {
                struct Guard(Arc<AtomicBool>);
                impl Drop for Guard {
                    fn drop(&mut self) {
                        self.0.store(true, Ordering::SeqCst);
                    }
                }
                let _guard = Guard(dropped);
                std::future::pending::<()>().await;
                unreachable!()
            }
            path => {
                let got = match body.collect().await {
                    Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
                    Err(e) => format!("error: {e}"),
                };
                let text = format!("{method} {path} {got}");
                let mut r = Response::new(Frames(VecDeque::from([Bytes::from(text)])));
                r.headers_mut()
                    .insert(http::header::CONTENT_TYPE, "text/plain".parse().unwrap());
                r
            }
        }
    }

    struct Server {
        addr: SocketAddr,
        stop: watch::Sender<bool>,
        dropped: Arc<AtomicBool>,
    }

    async fn server(options: Options) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, _) = watch::channel(false);
        let dropped = Arc::new(AtomicBool::new(false));
        let (rx, flag) = (stop.subscribe(), Arc::clone(&dropped));
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let flag = Arc::clone(&flag);
                tokio::spawn(serve(stream, options, rx.clone(), move |r| {
                    let answer = answer(r, Arc::clone(&flag));
                    async move { Reply::from(answer.await) }
                }));
            }
        });
        Server {
            addr,
            stop,
            dropped,
        }
    }

    /// Reads until `done` holds for what came, or the connection closes; what came, and
    /// whether it closed.
    async fn read_until(s: &mut TcpStream, done: impl Fn(&str) -> bool) -> (String, bool) {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return true,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
                if done(&String::from_utf8_lossy(&got)) {
                    return false;
                }
            }
        })
        .await
        .expect("no answer within 5 s");
        (String::from_utf8_lossy(&got).into_owned(), closed)
    }

    async fn connect(server: &Server) -> TcpStream {
        TcpStream::connect(server.addr).await.unwrap()
    }

    #[tokio::test]
    async fn pipelined_requests_are_answered_in_order_on_one_connection() {
        let server = server(OPTIONS).await;
        let mut s = connect(&server).await;
        s.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyzGET /c HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let (got, closed) = read_until(&mut s, |t| t.contains("GET /c ")).await;
        assert!(!closed);
        assert_eq!(
            codec::undated(&got),
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 7\r\n\r\nGET /a \
             HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 11\r\n\r\nPOST /b xyz\
             HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 7\r\n\r\nGET /c "
        );
    }

    #[tokio::test]
    async fn a_chunked_request_cut_in_pieces_is_read_and_a_stream_answered_chunked() {
        let server = server(OPTIONS).await;
        let mut s = connect(&server).await;
        for piece in [
            &b"POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r"[..],
            b"\nabc\r\n2;x=y\r\nde",
            b"\r\n0\r\n\r\n",
        ] {
            s.write_all(piece).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (got, _) = read_until(&mut s, |t| t.ends_with("POST /up abcde")).await;
        assert!(got.contains("content-length: 14\r\n"), "{got}");
        s.write_all(b"GET /stream HTTP/1.1\r\n\r\n").await.unwrap();
        let (got, _) = read_until(&mut s, |t| t.ends_with("0\r\n\r\n")).await;
        assert_eq!(
            codec::undated(&got),
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\none\r\n3\r\ntwo\r\n5\r\nthree\r\n0\r\n\r\n"
        );
    }

    #[tokio::test]
    async fn expect_100_continue_is_answered_when_the_body_is_read() {
        let server = server(OPTIONS).await;
        let mut s = connect(&server).await;
        s.write_all(b"PUT /e HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
            .await
            .unwrap();
        let (got, _) = read_until(&mut s, |t| t.ends_with("\r\n\r\n")).await;
        assert_eq!(got, "HTTP/1.1 100 Continue\r\n\r\n");
        s.write_all(b"body").await.unwrap();
        let (got, _) = read_until(&mut s, |t| t.ends_with("PUT /e body")).await;
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
    }

    #[tokio::test]
    async fn http10_closes_unless_kept_alive_and_gets_no_chunks() {
        let server = server(OPTIONS).await;
        let mut s = connect(&server).await;
        s.write_all(b"GET /stream HTTP/1.0\r\n\r\n").await.unwrap();
        let (got, closed) = read_until(&mut s, |_| false).await;
        assert!(closed);
        assert_eq!(
            codec::undated(&got),
            "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nonetwothree"
        );
        let mut s = connect(&server).await;
        s.write_all(b"GET /k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .await
            .unwrap();
        let (got, closed) = read_until(&mut s, |t| t.ends_with("GET /k ")).await;
        assert!(
            !closed && got.contains("connection: keep-alive\r\n"),
            "{got}"
        );
        s.write_all(b"GET /l HTTP/1.1\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let (got, closed) = read_until(&mut s, |_| false).await;
        assert!(closed && got.contains("connection: close\r\n") && got.ends_with("GET /l "));
    }

    #[tokio::test]
    async fn head_and_204_answers_have_no_body() {
        let server = server(OPTIONS).await;
        let mut s = connect(&server).await;
        s.write_all(
            b"HEAD /h HTTP/1.1\r\n\r\nGET /nothing HTTP/1.1\r\n\r\nGET /after HTTP/1.1\r\n\r\n",
        )
        .await
        .unwrap();
        let (got, _) = read_until(&mut s, |t| t.ends_with("GET /after ")).await;
        assert_eq!(
            codec::undated(&got),
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n\
             HTTP/1.1 204 No Content\r\n\r\n\
             HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 11\r\n\r\nGET /after "
        );
    }

    #[tokio::test]
    async fn malformed_or_oversized_heads_are_refused_and_closed() {
        let server = server(OPTIONS).await;
        for (input, status) in [
            (&b"GET / HTTP/1.1\r\nBad Header\r\n\r\n"[..], "400"),
            (
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
                "400",
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
                "400",
            ),
            (&[&b"GET /"[..], &[b'a'; 2000]].concat(), "431"),
        ] {
            let mut s = connect(&server).await;
            s.write_all(input).await.unwrap();
            let (got, closed) = read_until(&mut s, |_| false).await;
            assert!(closed);
            assert!(got.starts_with(&format!("HTTP/1.1 {status} ")), "{got}");
            assert!(got.contains("connection: close\r\n") && got.contains("invalid_request"));
        }
    }

    #[tokio::test]
    async fn a_broken_chunked_body_reaches_the_service_as_an_error_and_closes() {
        let server = server(OPTIONS).await;
        let mut s = connect(&server).await;
        s.write_all(b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
            .await
            .unwrap();
        let (got, closed) = read_until(&mut s, |_| false).await;
        assert!(closed, "{got}");
        assert!(
            got.ends_with("POST /x error: malformed chunked body: chunk size is not hexadecimal"),
            "{got}"
        );
    }

    #[tokio::test]
    async fn a_slow_head_is_cut_at_the_header_timeout() {
        let server = server(Options {
            header_timeout: Duration::from_millis(300),
            ..OPTIONS
        })
        .await;
        let mut s = connect(&server).await;
        // A first request, then the next head never finishes.
        s.write_all(b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n")
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let (got, closed) = read_until(&mut s, |_| false).await;
        assert!(closed && got.ends_with("GET /1 "), "{got}");
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
            "{waited:?}"
        );
    }

    #[tokio::test]
    async fn the_header_timer_armed_for_an_earlier_head_does_not_cut_a_later_one() {
        let server = server(Options {
            header_timeout: Duration::from_millis(400),
            ..OPTIONS
        })
        .await;
        let mut s = connect(&server).await;
        // The first wait arms the timer for now + 400 ms; each later wait is due later.
        tokio::time::sleep(Duration::from_millis(50)).await;
        for (i, pause) in [(1, 250), (2, 250), (3, 0)] {
            s.write_all(format!("GET /{i} HTTP/1.1\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let (got, closed) = read_until(&mut s, |t| t.ends_with(&format!("GET /{i} "))).await;
            assert!(!closed, "closed before request {i}: {got}");
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        // Idle past the timeout after the last one: closed then.
        let started = std::time::Instant::now();
        let (_, closed) = read_until(&mut s, |_| false).await;
        assert!(closed && started.elapsed() >= Duration::from_millis(300));
    }

    #[tokio::test]
    async fn stop_closes_idle_connections_and_lets_a_response_finish() {
        let server = server(OPTIONS).await;
        let mut idle = connect(&server).await;
        idle.write_all(b"GET /i HTTP/1.1\r\n\r\n").await.unwrap();
        read_until(&mut idle, |t| t.ends_with("GET /i ")).await;
        let mut busy = connect(&server).await;
        busy.write_all(b"POST /b HTTP/1.1\r\nContent-Length: 4\r\n\r\nab")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        server.stop.send_replace(true);
        let (_, closed) = read_until(&mut idle, |_| false).await;
        assert!(closed);
        busy.write_all(b"cd").await.unwrap();
        let (got, closed) = read_until(&mut busy, |_| false).await;
        assert!(
            closed && got.contains("connection: close\r\n") && got.ends_with("POST /b abcd"),
            "{got}"
        );
    }

    #[tokio::test]
    async fn a_client_that_leaves_while_its_answer_is_awaited_drops_the_call() {
        let server = server(OPTIONS).await;
        let mut s = connect(&server).await;
        s.write_all(b"GET /never HTTP/1.1\r\n\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!server.dropped.load(Ordering::SeqCst));
        drop(s);
        let started = std::time::Instant::now();
        while !server.dropped.load(Ordering::SeqCst) {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "the call was not dropped"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
