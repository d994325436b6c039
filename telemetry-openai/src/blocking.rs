//! [`OpenAiEngine`]: the blocking engine, on `ureq`.

use std::borrow::Cow;
use std::io::Read;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Instant;

use telemetry_wrap::{GenerateParams, GenerateResult, InferenceEngine, Message, StreamChunk};

use crate::config::{OpenAiConfig, SharedConfig};
use crate::deadline::Deadlines;
use crate::protocol::{OpenAiError, ProtocolError, StreamObserver, detect};
use crate::result::{ChunkDecoder, decode_body, final_chunk};

/// Largest error body read to find the server's message.
const ERROR_BODY_LIMIT: u64 = 1 << 20;
/// Largest non-streamed answer.
const BODY_LIMIT: u64 = 64 << 20;
/// Bytes asked of the socket per read of a stream.
const READ_BUFFER: usize = 16 << 10;

/// A blocking engine for any OpenAI-compatible server.
///
/// Wrap it in [`InstrumentedEngine`](telemetry_wrap::InstrumentedEngine) to record every call:
/// tokens from the server's `usage` (streams ask for the final usage chunk), TTFT to the first
/// chunk with content, inter-token latency, and failures as typed [`OpenAiError`]s with stable
/// kinds (`http_400`, `timeout_idle`, `stream_incomplete`, ...).
///
/// ```no_run
/// use std::sync::Arc;
/// use telemetry_core::EventBus;
/// use telemetry_openai::{OpenAiConfig, OpenAiEngine};
/// use telemetry_wrap::{GenerateParams, InferenceEngine, InstrumentedEngine, Message};
///
/// let engine = OpenAiEngine::detect(OpenAiConfig::new("http://127.0.0.1:8080/v1"));
/// let engine = InstrumentedEngine::new(engine, Arc::new(EventBus::new()));
/// let params = GenerateParams::new("smollm2-135m").with_max_tokens(32);
/// for chunk in engine.stream(&[Message::user("Hello")], &params)? {
///     print!("{}", chunk?.text);
/// }
/// # Ok::<(), telemetry_openai::protocol::OpenAiError>(())
/// ```
#[derive(Debug, Clone)]
pub struct OpenAiEngine {
    config: SharedConfig,
    agent: ureq::Agent,
    engine_id: String,
}

impl OpenAiEngine {
    /// An engine for `config`; its `engine_id` is the configured one, else
    /// [`detect::UNKNOWN`] (no request is made; see [`detect`](Self::detect)).
    pub fn new(config: OpenAiConfig) -> Self {
        let engine_id = config
            .engine_id
            .clone()
            .unwrap_or_else(|| detect::UNKNOWN.to_owned());
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(config.timeouts.connect)
            .build()
            .new_agent();
        OpenAiEngine {
            config: Arc::new(config),
            agent,
            engine_id,
        }
    }

    /// An engine whose `engine_id` is asked of the server when the configuration does not set
    /// one: `/v1/models` `owned_by`, then vLLM's `/version`, then Ollama's `/api/version`
    /// (see [`detect`](crate::protocol::detect)). A server that answers none of them (or cannot
    /// be reached) gives [`detect::UNKNOWN`].
    pub fn detect(config: OpenAiConfig) -> Self {
        let mut engine = Self::new(config);
        if engine.config.engine_id.is_none() {
            engine.engine_id = engine.detect_engine_id().to_owned();
        }
        engine
    }

    /// The configuration.
    pub fn config(&self) -> &OpenAiConfig {
        &self.config
    }

    /// The models the server lists at `/v1/models`.
    pub fn models(&self) -> Result<Vec<String>, OpenAiError> {
        let body = self.get(&self.config.url("models"))?;
        Ok(detect::model_ids(&body)?)
    }

    fn detect_engine_id(&self) -> &'static str {
        if let Ok(body) = self.get(&self.config.url("models"))
            && let Some(engine) = detect::engine_from_models(&body)
        {
            return engine;
        }
        let root = detect::server_root(&self.config.base_url);
        if let Ok(body) = self.get(&format!("{root}/version"))
            && detect::version(&body).is_some()
        {
            return detect::VLLM;
        }
        if let Ok(body) = self.get(&format!("{root}/api/version"))
            && detect::version(&body).is_some()
        {
            return detect::OLLAMA;
        }
        detect::UNKNOWN
    }

    fn get(&self, url: &str) -> Result<Vec<u8>, OpenAiError> {
        let mut request = self.agent.get(url);
        for (name, value) in self.config.request_headers() {
            request = request.header(name, value);
        }
        let response = request
            .config()
            .timeout_recv_response(self.config.timeouts.first_token)
            .build()
            .call()
            .map_err(|e| self.map_error(e, Phase::Head))?;
        let status = response.status().as_u16();
        let body = read_body(response, BODY_LIMIT).map_err(|e| self.map_error(e, Phase::Head))?;
        if status >= 400 {
            return Err(OpenAiError::from_http_response(status, &body));
        }
        Ok(body)
    }

    /// Sends the request; an error status is read and returned as [`OpenAiError::Http`].
    fn post(
        &self,
        messages: &[Message],
        params: &GenerateParams,
        stream: bool,
    ) -> Result<ureq::http::Response<ureq::Body>, OpenAiError> {
        let (path, body) = self.config.request_body(messages, params, stream)?;
        let mut request = self
            .agent
            .post(self.config.url(path))
            .header("content-type", "application/json");
        if stream {
            // llama.cpp closes the connection after a stream without saying so; a pooled
            // connection would then fail the next call with "peer disconnected".
            request = request
                .header("accept", "text/event-stream")
                .header("connection", "close");
        }
        for (name, value) in self.config.request_headers() {
            request = request.header(name, value);
        }
        let timeouts = self.config.timeouts;
        let mut config = request
            .config()
            .timeout_recv_response(timeouts.first_token)
            .timeout_global(timeouts.total);
        if stream {
            // The stream's own deadlines (first token, between chunks, total) end it; this
            // only bounds how long the reader thread of an abandoned stream lingers.
            config = config.timeout_per_read(timeouts.longest_read());
        }
        let response = config
            .build()
            .send(&body[..])
            .map_err(|e| self.map_error(e, Phase::Head))?;
        let status = response.status().as_u16();
        if status >= 400 {
            let body = read_body(response, ERROR_BODY_LIMIT).unwrap_or_default();
            return Err(OpenAiError::from_http_response(status, &body));
        }
        Ok(response)
    }

    fn map_error(&self, e: ureq::Error, phase: Phase) -> OpenAiError {
        map_ureq_error(e, &self.config, phase)
    }
}

/// Where a call was when a transport error happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Before the response head.
    Head,
    /// Reading a stream, after `chunks` content chunks.
    Body { chunks: u64 },
}

pub(crate) fn map_ureq_error(e: ureq::Error, config: &OpenAiConfig, phase: Phase) -> OpenAiError {
    use ureq::Timeout;
    let first_token = || OpenAiError::TimeoutFirstToken {
        timeout: config.timeouts.first_token.unwrap_or_default(),
    };
    match e {
        ureq::Error::Timeout(Timeout::Connect | Timeout::Resolve) => OpenAiError::TimeoutConnect {
            url: config.base_url.clone(),
            timeout: config.timeouts.connect.unwrap_or_default(),
        },
        ureq::Error::Timeout(Timeout::Global) => OpenAiError::TimeoutTotal {
            timeout: config.timeouts.total.unwrap_or_default(),
            chunks: match phase {
                Phase::Body { chunks } => chunks,
                Phase::Head => 0,
            },
        },
        ureq::Error::Timeout(Timeout::PerRead) => match phase {
            Phase::Body { chunks } if chunks > 0 => OpenAiError::TimeoutIdle {
                timeout: config.timeouts.idle.unwrap_or_default(),
                chunks,
            },
            _ => first_token(),
        },
        ureq::Error::Timeout(_) => first_token(),
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => OpenAiError::Connect {
            url: config.base_url.clone(),
            message: e.to_string(),
        },
        ureq::Error::Io(io)
            if phase == Phase::Head
                && matches!(
                    io.kind(),
                    std::io::ErrorKind::ConnectionRefused
                        | std::io::ErrorKind::AddrNotAvailable
                        | std::io::ErrorKind::HostUnreachable
                        | std::io::ErrorKind::NetworkUnreachable
                ) =>
        {
            OpenAiError::Connect {
                url: config.base_url.clone(),
                message: io.to_string(),
            }
        }
        // The connection closed or broke before the body's end.
        ureq::Error::Io(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
            ) =>
        {
            match phase {
                Phase::Body { chunks } => OpenAiError::StreamIncomplete { chunks },
                Phase::Head => OpenAiError::Io(io.to_string()),
            }
        }
        ureq::Error::Protocol(p) => OpenAiError::Protocol(ProtocolError::Unexpected(p.to_string())),
        other => OpenAiError::Io(other.to_string()),
    }
}

fn read_body(
    response: ureq::http::Response<ureq::Body>,
    limit: u64,
) -> Result<Vec<u8>, ureq::Error> {
    response
        .into_body()
        .into_with_config()
        .limit(limit)
        .read_to_vec()
}

impl InferenceEngine for OpenAiEngine {
    type Error = OpenAiError;
    type Stream = OpenAiStream;

    fn engine_id(&self) -> &str {
        &self.engine_id
    }

    fn generate(
        &self,
        messages: &[Message],
        params: &GenerateParams,
    ) -> Result<GenerateResult, OpenAiError> {
        let response = self.post(messages, params, false)?;
        let body = read_body(response, BODY_LIMIT).map_err(|e| self.map_error(e, Phase::Head))?;
        decode_body(self.config.endpoint, &body)
    }

    fn stream(
        &self,
        messages: &[Message],
        params: &GenerateParams,
    ) -> Result<OpenAiStream, OpenAiError> {
        let started = Instant::now();
        let response = self.post(messages, params, true)?;
        let reader = spawn_reader(Box::new(response.into_body().into_reader()))?;
        Ok(OpenAiStream {
            reader: Some(reader),
            config: Arc::clone(&self.config),
            deadlines: Deadlines::new(started, self.config.timeouts),
            decoder: ChunkDecoder::default(),
            ended: false,
        })
    }

    fn error_kind(error: &OpenAiError) -> Cow<'static, str> {
        error.error_kind()
    }
}

/// The chunks of a streamed answer, read from the socket as the caller pulls them.
///
/// Yields one [`StreamChunk`] per chunk with content (role-only and empty chunks are skipped),
/// then, after `[DONE]`, one last chunk with empty text carrying the server's usage (when it
/// sent one) and the finish reason. An error event, malformed data, a stall longer than the
/// idle timeout or a body that ends without `[DONE]` is yielded as an error and ends the
/// stream.
pub struct OpenAiStream {
    /// What the reader thread read from the socket, in order; an empty `Vec` is the body's end.
    reader: Option<Receiver<std::io::Result<Vec<u8>>>>,
    config: SharedConfig,
    deadlines: Deadlines,
    decoder: ChunkDecoder,
    ended: bool,
}

/// Reads the body on a thread of its own and hands what it reads over a channel, so that the
/// stream can wait for it with a deadline that moves (first token, between chunks, total): a
/// socket read can only be given one timeout when the request is made. A stream abandoned at a
/// deadline drops the receiver; the thread stops at its next read (bounded by the longest
/// timeout) and closes the connection.
fn spawn_reader(
    mut body: Box<dyn Read + Send>,
) -> Result<Receiver<std::io::Result<Vec<u8>>>, OpenAiError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(16);
    std::thread::Builder::new()
        .name("openai-stream".to_owned())
        .spawn(move || {
            let mut buf = vec![0u8; READ_BUFFER];
            loop {
                let item = match body.read(&mut buf) {
                    Ok(n) => Ok(buf[..n].to_vec()),
                    Err(e) => Err(e),
                };
                let last = !matches!(&item, Ok(b) if !b.is_empty());
                if tx.send(item).is_err() || last {
                    return;
                }
            }
        })
        .map_err(|e| OpenAiError::Io(format!("cannot start the stream's reader thread: {e}")))?;
    Ok(rx)
}

impl std::fmt::Debug for OpenAiStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiStream")
            .field("decoder", &self.decoder)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl OpenAiStream {
    /// What the server reported so far (usage, timings) and the content chunks seen.
    pub fn observer(&self) -> &StreamObserver {
        self.decoder.observer()
    }

    /// Waits for the next read, up to the next deadline, and parses what came.
    fn fill(&mut self) {
        let Some(reader) = self.reader.as_ref() else {
            self.decoder.eof();
            return;
        };
        let next = self.deadlines.next();
        let item = match &next {
            Some((at, _)) => reader.recv_timeout(at.saturating_duration_since(Instant::now())),
            None => reader.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match item {
            Ok(Ok(bytes)) if bytes.is_empty() => {
                self.reader = None;
                self.decoder.eof();
            }
            Ok(Ok(bytes)) => {
                self.decoder.feed(&bytes);
                let chunks = self.decoder.observer().content_chunks();
                self.deadlines.saw(chunks, Instant::now());
            }
            Ok(Err(e)) => {
                let phase = Phase::Body {
                    chunks: self.decoder.observer().content_chunks(),
                };
                self.reader = None;
                self.decoder
                    .fail(map_ureq_error(ureq::Error::from(e), &self.config, phase));
            }
            Err(RecvTimeoutError::Timeout) => {
                self.reader = None;
                if let Some((_, e)) = next {
                    self.decoder.fail(e);
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                self.reader = None;
                self.decoder.eof();
            }
        }
    }
}

impl Iterator for OpenAiStream {
    type Item = Result<StreamChunk, OpenAiError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.ended {
            return None;
        }
        loop {
            match self.decoder.pop() {
                Some(Ok(chunk)) => return Some(Ok(chunk)),
                Some(Err(e)) => {
                    self.ended = true;
                    self.reader = None;
                    return Some(Err(e));
                }
                None if self.decoder.saw_done() => {
                    self.ended = true;
                    // The reader thread reads the rest of the body and ends.
                    self.reader = None;
                    return Some(Ok(final_chunk(self.decoder.observer())));
                }
                None => self.fill(),
            }
        }
    }
}
