//! [`AsyncOpenAiEngine`]: the async engine, on `reqwest` (tokio).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_core::Stream;
use telemetry_wrap::{AsyncInferenceEngine, GenerateParams, GenerateResult, Message, StreamChunk};

use crate::config::{OpenAiConfig, SharedConfig};
use crate::deadline::Deadlines;
use crate::protocol::{OpenAiError, StreamObserver, detect};
use crate::result::{ChunkDecoder, decode_body, final_chunk};

/// An async engine for any OpenAI-compatible server (feature `async`), the counterpart of
/// [`OpenAiEngine`](crate::OpenAiEngine) for tokio programs: wrap it with
/// [`InstrumentedEngine::new_async`](telemetry_wrap::InstrumentedEngine::new_async).
///
/// The first-token timeout uses tokio's timer, so calls must run inside a tokio runtime with
/// time enabled (as `reqwest` requires a tokio runtime anyway).
#[derive(Debug, Clone)]
pub struct AsyncOpenAiEngine {
    config: SharedConfig,
    client: reqwest::Client,
    engine_id: String,
}

impl AsyncOpenAiEngine {
    /// An engine for `config` (no request is made; see [`detect`](Self::detect)).
    pub fn new(config: OpenAiConfig) -> Result<Self, OpenAiError> {
        let mut builder = reqwest::Client::builder();
        if let Some(t) = config.timeouts.connect {
            builder = builder.connect_timeout(t);
        }
        // The stream's own deadlines (first token, between chunks, total) end it; a read
        // timeout only backs them up.
        if let Some(t) = config.timeouts.longest_read() {
            builder = builder.read_timeout(t);
        }
        let client = builder
            .build()
            .map_err(|e| OpenAiError::Io(format!("cannot build the HTTP client: {e}")))?;
        let engine_id = config
            .engine_id
            .clone()
            .unwrap_or_else(|| detect::UNKNOWN.to_owned());
        Ok(AsyncOpenAiEngine {
            config: Arc::new(config),
            client,
            engine_id,
        })
    }

    /// An engine whose `engine_id` is asked of the server when the configuration does not set
    /// one (the same probes as [`OpenAiEngine::detect`](crate::OpenAiEngine::detect)).
    pub async fn detect(config: OpenAiConfig) -> Result<Self, OpenAiError> {
        let mut engine = Self::new(config)?;
        if engine.config.engine_id.is_none() {
            engine.engine_id = engine.detect_engine_id().await.to_owned();
        }
        Ok(engine)
    }

    /// The configuration.
    pub fn config(&self) -> &OpenAiConfig {
        &self.config
    }

    async fn detect_engine_id(&self) -> &'static str {
        if let Ok(body) = self.get(&self.config.url("models")).await
            && let Some(engine) = detect::engine_from_models(&body)
        {
            return engine;
        }
        let root = detect::server_root(&self.config.base_url);
        if let Ok(body) = self.get(&format!("{root}/version")).await
            && detect::version(&body).is_some()
        {
            return detect::VLLM;
        }
        if let Ok(body) = self.get(&format!("{root}/api/version")).await
            && detect::version(&body).is_some()
        {
            return detect::OLLAMA;
        }
        detect::UNKNOWN
    }

    async fn get(&self, url: &str) -> Result<Vec<u8>, OpenAiError> {
        let mut request = self.client.get(url);
        for (name, value) in self.config.request_headers() {
            request = request.header(name, value);
        }
        let response = self.first_token(request.send()).await?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| map_reqwest_error(&e, &self.config, None))?;
        if status >= 400 {
            return Err(OpenAiError::from_http_response(status, &body));
        }
        Ok(body.to_vec())
    }

    /// Bounds `send` by the first-token timeout.
    async fn first_token(
        &self,
        send: impl Future<Output = reqwest::Result<reqwest::Response>>,
    ) -> Result<reqwest::Response, OpenAiError> {
        let result = match self.config.timeouts.first_token {
            Some(t) => tokio::time::timeout(t, send)
                .await
                .map_err(|_| OpenAiError::TimeoutFirstToken { timeout: t })?,
            None => send.await,
        };
        result.map_err(|e| map_reqwest_error(&e, &self.config, None))
    }

    async fn post(
        &self,
        messages: &[Message],
        params: &GenerateParams,
        stream: bool,
    ) -> Result<reqwest::Response, OpenAiError> {
        let (path, body) = self.config.request_body(messages, params, stream)?;
        let mut request = self
            .client
            .post(self.config.url(path))
            .header("content-type", "application/json")
            .body(body);
        if stream {
            request = request.header("accept", "text/event-stream");
        }
        for (name, value) in self.config.request_headers() {
            request = request.header(name, value);
        }
        let response = self.first_token(request.send()).await?;
        let status = response.status().as_u16();
        if status >= 400 {
            let body = response.bytes().await.unwrap_or_default();
            return Err(OpenAiError::from_http_response(status, &body));
        }
        Ok(response)
    }
}

/// Maps a `reqwest` error; `chunks` is `Some` while reading a started stream.
fn map_reqwest_error(
    e: &reqwest::Error,
    config: &OpenAiConfig,
    chunks: Option<u64>,
) -> OpenAiError {
    if e.is_connect() {
        if e.is_timeout() {
            return OpenAiError::TimeoutConnect {
                url: config.base_url.clone(),
                timeout: config.timeouts.connect.unwrap_or_default(),
            };
        }
        return OpenAiError::Connect {
            url: config.base_url.clone(),
            message: error_chain(e),
        };
    }
    match chunks {
        Some(chunks) if e.is_timeout() && chunks > 0 => OpenAiError::TimeoutIdle {
            timeout: config.timeouts.idle.unwrap_or_default(),
            chunks,
        },
        _ if e.is_timeout() => OpenAiError::TimeoutFirstToken {
            timeout: config.timeouts.first_token.unwrap_or_default(),
        },
        Some(chunks) if e.is_body() || e.is_decode() => OpenAiError::StreamIncomplete { chunks },
        _ => OpenAiError::Io(error_chain(e)),
    }
}

/// The error and its sources on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl AsyncInferenceEngine for AsyncOpenAiEngine {
    type Error = OpenAiError;
    type Stream = AsyncOpenAiStream;

    fn engine_id(&self) -> &str {
        &self.engine_id
    }

    async fn generate(
        &self,
        messages: &[Message],
        params: &GenerateParams,
    ) -> Result<GenerateResult, OpenAiError> {
        match self.config.timeouts.total {
            Some(total) => tokio::time::timeout(total, self.generate_once(messages, params))
                .await
                .map_err(|_| OpenAiError::TimeoutTotal {
                    timeout: total,
                    chunks: 0,
                })?,
            None => self.generate_once(messages, params).await,
        }
    }

    async fn stream(
        &self,
        messages: &[Message],
        params: &GenerateParams,
    ) -> Result<AsyncOpenAiStream, OpenAiError> {
        self.stream_once(messages, params).await
    }

    fn error_kind(error: &OpenAiError) -> Cow<'static, str> {
        error.error_kind()
    }
}

impl AsyncOpenAiEngine {
    async fn generate_once(
        &self,
        messages: &[Message],
        params: &GenerateParams,
    ) -> Result<GenerateResult, OpenAiError> {
        {
            let response = self.post(messages, params, false).await?;
            let body = response
                .bytes()
                .await
                .map_err(|e| map_reqwest_error(&e, &self.config, None))?;
            decode_body(self.config.endpoint, &body)
        }
    }

    async fn stream_once(
        &self,
        messages: &[Message],
        params: &GenerateParams,
    ) -> Result<AsyncOpenAiStream, OpenAiError> {
        {
            let started = Instant::now();
            let response = self.post(messages, params, true).await?;
            Ok(AsyncOpenAiStream {
                response: Some(response),
                read: None,
                config: Arc::clone(&self.config),
                deadlines: Deadlines::new(started, self.config.timeouts),
                timer: None,
                decoder: ChunkDecoder::default(),
                ended: false,
            })
        }
    }
}

type ReadFuture = Pin<
    Box<dyn Future<Output = (reqwest::Response, reqwest::Result<Option<bytes::Bytes>>)> + Send>,
>;

/// The chunks of a streamed answer (async); the same items as
/// [`OpenAiStream`](crate::OpenAiStream).
pub struct AsyncOpenAiStream {
    response: Option<reqwest::Response>,
    read: Option<ReadFuture>,
    config: SharedConfig,
    /// First token, between chunks, total: only chunks with content move them.
    deadlines: Deadlines,
    /// The timer of the next deadline, and when it fires.
    timer: Option<(Instant, Pin<Box<tokio::time::Sleep>>)>,
    decoder: ChunkDecoder,
    ended: bool,
}

impl std::fmt::Debug for AsyncOpenAiStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncOpenAiStream")
            .field("decoder", &self.decoder)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl AsyncOpenAiStream {
    /// What the server reported so far (usage, timings) and the content chunks seen.
    pub fn observer(&self) -> &StreamObserver {
        self.decoder.observer()
    }
}

impl Stream for AsyncOpenAiStream {
    type Item = Result<StreamChunk, OpenAiError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.ended {
                return Poll::Ready(None);
            }
            match this.decoder.pop() {
                Some(Ok(chunk)) => return Poll::Ready(Some(Ok(chunk))),
                Some(Err(e)) => {
                    this.ended = true;
                    this.response = None;
                    this.read = None;
                    return Poll::Ready(Some(Err(e)));
                }
                None if this.decoder.saw_done() => {
                    this.ended = true;
                    this.response = None;
                    this.read = None;
                    return Poll::Ready(Some(Ok(final_chunk(this.decoder.observer()))));
                }
                None => {}
            }
            if this.read.is_none() {
                let Some(mut response) = this.response.take() else {
                    this.decoder.eof();
                    continue;
                };
                this.read = Some(Box::pin(async move {
                    let chunk = response.chunk().await;
                    (response, chunk)
                }));
            }
            let Some(read) = this.read.as_mut() else {
                continue;
            };
            let Poll::Ready((response, chunk)) = read.as_mut().poll(cx) else {
                // Waiting for bytes: the next deadline ends the wait (a keep-alive comment
                // arriving meanwhile does not move it).
                if let Some((at, error)) = this.deadlines.next() {
                    if this.timer.as_ref().is_none_or(|(t, _)| *t != at) {
                        let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(at));
                        this.timer = Some((at, Box::pin(sleep)));
                    }
                    if let Some((_, timer)) = this.timer.as_mut()
                        && timer.as_mut().poll(cx).is_ready()
                    {
                        this.read = None;
                        this.timer = None;
                        this.decoder.fail(error);
                        continue;
                    }
                }
                return Poll::Pending;
            };
            this.read = None;
            match chunk {
                Ok(Some(bytes)) => {
                    this.response = Some(response);
                    this.decoder.feed(&bytes);
                    let chunks = this.decoder.observer().content_chunks();
                    this.deadlines.saw(chunks, Instant::now());
                }
                Ok(None) => this.decoder.eof(),
                Err(e) => {
                    let chunks = this.decoder.observer().content_chunks();
                    this.decoder
                        .fail(map_reqwest_error(&e, &this.config, Some(chunks)));
                }
            }
        }
    }
}
