//! [`Api`]: which API a call speaks, and what is common to reading any of them: a whole body
//! ([`read_body`]) or a stream ([`ApiStream`]), each by the rules of its own module
//! ([`stream`](super::StreamObserver) for Chat Completions and Completions,
//! [`responses`](super::responses), [`messages`](super::messages),
//! [`embeddings`](super::embeddings)).

use serde::Deserialize;
use telemetry_core::{api, operation};

use crate::protocol::chunk::{ChunkMemo, ScannedChunk, scan_chunk_with};
use crate::protocol::common::{EventFacts, ModelText, model_text};
use crate::protocol::embeddings;
use crate::protocol::error::{OpenAiError, ProtocolError};
use crate::protocol::messages::{self, MessagesStream};
use crate::protocol::responses::{self, ResponsesStream};
use crate::protocol::sse::{SseEvent, SseParser};
use crate::protocol::stream::{Observed, StreamObserver};
use crate::protocol::usage::ServerReport;
use crate::protocol::whole;

/// An API whose calls are recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    /// OpenAI Chat Completions.
    ChatCompletions,
    /// OpenAI Completions (legacy).
    Completions,
    /// OpenAI Responses.
    Responses,
    /// Anthropic Messages.
    Messages,
    /// OpenAI Embeddings.
    Embeddings,
}

impl Api {
    /// Every API.
    pub const ALL: [Api; 5] = [
        Api::ChatCompletions,
        Api::Completions,
        Api::Responses,
        Api::Messages,
        Api::Embeddings,
    ];

    /// The record's `api`.
    pub fn name(self) -> &'static str {
        match self {
            Api::ChatCompletions => api::OPENAI_CHAT,
            Api::Completions => api::OPENAI_COMPLETIONS,
            Api::Responses => api::OPENAI_RESPONSES,
            Api::Messages => api::ANTHROPIC_MESSAGES,
            Api::Embeddings => api::OPENAI_EMBEDDINGS,
        }
    }

    /// The record's `operation` (GenAI `gen_ai.operation.name`).
    pub fn operation(self) -> &'static str {
        match self {
            Api::ChatCompletions | Api::Responses | Api::Messages => operation::CHAT,
            Api::Completions => operation::TEXT_COMPLETION,
            Api::Embeddings => operation::EMBEDDINGS,
        }
    }

    /// The paths the API is served at, the first the canonical one (llama.cpp also serves
    /// Chat Completions and Responses without the `/v1`; its `/completions` and `/embeddings`
    /// answer in its own format, not these APIs').
    pub fn paths(self) -> &'static [&'static str] {
        match self {
            Api::ChatCompletions => &["/v1/chat/completions", "/chat/completions"],
            Api::Completions => &["/v1/completions"],
            Api::Responses => &["/v1/responses", "/responses"],
            Api::Messages => &["/v1/messages"],
            Api::Embeddings => &["/v1/embeddings"],
        }
    }

    /// Whether the API streams (`stream: true` in its request); embeddings do not.
    pub fn streams(self) -> bool {
        self != Api::Embeddings
    }
}

#[derive(Deserialize)]
struct ModelProbe<'a> {
    #[serde(borrow, default)]
    model: Option<ModelText<'a>>,
}

/// The top-level `model` of a JSON object, if it has a non-empty one (`None` for bytes that
/// are not a JSON object).
pub fn model_of(json: &[u8]) -> Option<String> {
    serde_json::from_slice::<ModelProbe<'_>>(json)
        .ok()
        .and_then(|p| model_text(p.model))
}

/// Reads a whole (non-streamed) response body of `api`: the server's usage and timings, and
/// the response's model.
///
/// ```
/// use telemetry_openai::protocol::{Api, read_body};
///
/// let body = br#"{"type":"message","model":"m","usage":{"input_tokens":3,"cache_read_input_tokens":4,"output_tokens":2}}"#;
/// let (report, model) = read_body(Api::Messages, body).unwrap();
/// let usage = report.usage.unwrap();
/// assert_eq!((usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens), (7, 4, 2));
/// assert_eq!(model.as_deref(), Some("m"));
/// ```
pub fn read_body(api: Api, body: &[u8]) -> Result<(ServerReport, Option<String>), ProtocolError> {
    match api {
        Api::ChatCompletions | Api::Completions => whole::read_chat_body(body),
        Api::Responses => responses::read_body(body),
        Api::Messages => messages::read_body(body),
        Api::Embeddings => embeddings::read_body(body),
    }
}

/// Follows one stream of any API, event by event: output chunks, the terminal event, usage and
/// the model, each by its API's rules.
///
/// ```
/// use telemetry_openai::protocol::{Api, ApiStream, SseParser};
///
/// let body = concat!(
///     "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"m\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n",
///     "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
///     "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{},\"usage\":{\"output_tokens\":2}}\n\n",
///     "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
/// );
/// let mut stream = ApiStream::new(Api::Messages);
/// let mut outputs = 0;
/// SseParser::new().feed(body.as_bytes(), |event| {
///     if stream.observe(event).is_ok_and(|facts| facts.output) {
///         outputs += 1; // timestamp here: TTFT, ITL
///     }
/// }).unwrap();
/// assert_eq!((outputs, stream.output_chunks()), (1, 1));
/// assert!(stream.saw_terminal() && stream.end().is_ok());
/// let usage = stream.report().usage.unwrap();
/// assert_eq!((usage.prompt_tokens, usage.completion_tokens), (5, 2));
/// assert_eq!(stream.model(), Some("m"));
/// ```
#[derive(Debug, Clone)]
pub struct ApiStream {
    inner: Inner,
    output_chunks: u64,
    /// Events [`feed`](Self::feed) gave the parser alone since one took its fast path.
    misses: u8,
    /// Events that took [`feed`](Self::feed)'s fast path.
    #[cfg(test)]
    pub(crate) fast: u64,
}

#[derive(Debug, Clone)]
enum Inner {
    Chat {
        observer: StreamObserver,
        model: Option<String>,
        model_probed: bool,
        /// The members the chunks repeat, read once.
        memo: ChunkMemo,
    },
    Responses(ResponsesStream),
    Messages(MessagesStream),
}

impl ApiStream {
    /// A stream of `api` at its start (embeddings do not stream; their "stream" is read as Chat
    /// Completions').
    pub fn new(api: Api) -> ApiStream {
        let inner = match api {
            Api::Responses => Inner::Responses(ResponsesStream::default()),
            Api::Messages => Inner::Messages(MessagesStream::default()),
            Api::ChatCompletions | Api::Completions | Api::Embeddings => Inner::Chat {
                observer: StreamObserver::new(),
                model: None,
                model_probed: false,
                memo: ChunkMemo::default(),
            },
        };
        ApiStream {
            inner,
            output_chunks: 0,
            misses: 0,
            #[cfg(test)]
            fast: 0,
        }
    }

    /// Takes one event. An error the server sent inside the stream is
    /// [`OpenAiError::StreamError`] (or `Http` with its code), bytes that are not the protocol
    /// [`OpenAiError::Protocol`].
    #[inline]
    pub fn observe(&mut self, event: SseEvent<'_>) -> Result<EventFacts, OpenAiError> {
        let facts = match &mut self.inner {
            Inner::Chat {
                observer,
                model,
                model_probed,
                memo,
            } => {
                let scanned = match event {
                    SseEvent::Data(json) => {
                        scan_chunk_with(json, Some(memo)).map(|chunk| (json, chunk))
                    }
                    _ => None,
                };
                if let Some((json, chunk)) = scanned {
                    chat_scanned(observer, model, model_probed, json, &chunk)
                } else {
                    if !*model_probed && let SseEvent::Data(json) = event {
                        *model = model_of(json);
                        *model_probed = model.is_some();
                    }
                    match observer.observe(event)? {
                        Observed::Chunk(delta) => EventFacts {
                            output: delta.has_output(),
                            terminal: false,
                        },
                        Observed::Done => EventFacts::terminal(),
                    }
                }
            }
            Inner::Responses(s) => s.observe(event)?,
            Inner::Messages(s) => s.observe(event)?,
        };
        if facts.output {
            self.output_chunks += 1;
        }
        Ok(facts)
    }

    /// Reads `input`, the body's next bytes, through `parser`: each event's facts (or error)
    /// go to `on_event`, as `parser.feed(input, |event| on_event(stream.observe(event)))`
    /// gives them, and the parser is left as that leaves it.
    ///
    /// Faster for Chat Completions and Completions: an event that repeats the stream's last
    /// content chunk but for its text (as llama.cpp's, vLLM's and Ollama's do), written
    /// `data: {...}\n\n`, is read from the bytes without the parser (see
    /// [`SseParser::between_events`]); while such events may come, the parser is fed one event
    /// at a time, so that it stands between events where the next one starts.
    ///
    /// ```
    /// use telemetry_openai::protocol::{Api, ApiStream, SseParser};
    ///
    /// let chunk = |text: &str| format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"{text}\"}}}}]}}\n\n");
    /// let body = [chunk("Hel"), chunk("lo"), chunk("!"), "data: [DONE]\n\n".into()].concat();
    /// let (mut stream, mut parser) = (ApiStream::new(Api::ChatCompletions), SseParser::new());
    /// let mut outputs = 0;
    /// stream.feed(&mut parser, body.as_bytes(), |facts| outputs += usize::from(facts.unwrap().output)).unwrap();
    /// assert_eq!((outputs, stream.output_chunks(), parser.events()), (3, 3, 4));
    /// assert!(stream.end().is_ok());
    /// ```
    pub fn feed(
        &mut self,
        parser: &mut SseParser,
        input: &[u8],
        mut on_event: impl FnMut(Result<EventFacts, OpenAiError>),
    ) -> Result<(), ProtocolError> {
        if !matches!(self.inner, Inner::Chat { .. }) {
            return parser.feed(input, |event| on_event(self.observe(event)));
        }
        let mut rest = input;
        loop {
            if parser.between_events() {
                while let Some((used, facts)) = self.observe_canonical(rest) {
                    parser.count_event();
                    self.misses = 0;
                    on_event(Ok(facts));
                    rest = rest.get(used..).unwrap_or_default();
                }
            }
            if rest.is_empty() {
                return Ok(());
            }
            // The next event alone while the last few took the fast path, else all the rest.
            let end = match self.misses {
                0..MAX_MISSES => blank_line(rest).map_or(rest.len(), |i| i + 2),
                _ => rest.len(),
            };
            self.misses = self.misses.saturating_add(1);
            let (now, later) = rest.split_at(end);
            parser.feed(now, |event| on_event(self.observe(event)))?;
            rest = later;
        }
    }

    /// The event `input` starts with, when it is a chunk that fills the memo's hole (see
    /// [`feed`](Self::feed)): the bytes it takes and its facts.
    #[inline]
    fn observe_canonical(&mut self, input: &[u8]) -> Option<(usize, EventFacts)> {
        let Inner::Chat {
            observer,
            model,
            model_probed,
            memo,
        } = &mut self.inner
        else {
            return None;
        };
        let (json, chunk) = memo.fill_event(input)?;
        let facts = chat_scanned(observer, model, model_probed, json, &chunk);
        if facts.output {
            self.output_chunks += 1;
        }
        #[cfg(test)]
        {
            self.fast += 1;
        }
        // `data: `, the chunk, `\n\n`.
        Some((json.len() + 8, facts))
    }

    /// Output chunks so far.
    pub fn output_chunks(&self) -> u64 {
        self.output_chunks
    }

    /// Usage and server timings reported so far.
    pub fn report(&self) -> ServerReport {
        match &self.inner {
            Inner::Chat { observer, .. } => *observer.report(),
            Inner::Responses(s) => *s.report(),
            Inner::Messages(s) => *s.report(),
        }
    }

    /// The response's model, once an event named it.
    pub fn model(&self) -> Option<&str> {
        match &self.inner {
            Inner::Chat { model, .. } => model.as_deref(),
            Inner::Responses(s) => s.model(),
            Inner::Messages(s) => s.model(),
        }
    }

    /// Whether the API's terminal event came.
    pub fn saw_terminal(&self) -> bool {
        match &self.inner {
            Inner::Chat { observer, .. } => observer.saw_done(),
            Inner::Responses(s) => s.saw_terminal(),
            Inner::Messages(s) => s.saw_terminal(),
        }
    }

    /// Checks the stream's end: [`OpenAiError::StreamIncomplete`] unless the terminal event
    /// came.
    pub fn end(&self) -> Result<(), OpenAiError> {
        if self.saw_terminal() {
            Ok(())
        } else {
            Err(OpenAiError::StreamIncomplete {
                chunks: self.output_chunks,
            })
        }
    }
}

/// Events in a row [`ApiStream::feed`] gives the parser one at a time without one taking the
/// fast path, before it gives it whole reads again.
const MAX_MISSES: u8 = 8;

/// Where the first `\n\n` of `bytes` is (an event's data line is one `memchr` away from its
/// blank line: cheaper than setting up a substring search each time).
#[inline]
fn blank_line(bytes: &[u8]) -> Option<usize> {
    let mut from = 0;
    loop {
        let at = from + memchr::memchr(b'\n', bytes.get(from..)?)?;
        if bytes.get(at + 1) == Some(&b'\n') {
            return Some(at);
        }
        from = at + 1;
    }
}

/// A Chat chunk the scanner read (`json` its bytes): the model if not known yet, the
/// observer's state, the facts.
#[inline(always)]
fn chat_scanned(
    observer: &mut StreamObserver,
    model: &mut Option<String>,
    model_probed: &mut bool,
    json: &[u8],
    chunk: &ScannedChunk<'_>,
) -> EventFacts {
    if !*model_probed {
        *model = match chunk.model {
            Some(m) => m.decode().map_or_else(
                || model_of(json),
                |m| (!m.is_empty()).then(|| m.into_owned()),
            ),
            None => None,
        };
        *model_probed = model.is_some();
    }
    observer.observe_scanned(chunk);
    EventFacts {
        output: chunk.has_output(),
        terminal: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        for api in Api::ALL {
            assert!(telemetry_core::is_name(api.name()), "{api:?}");
            assert!(api.paths()[0].starts_with("/v1/"));
        }
        assert_eq!(Api::Completions.operation(), "text_completion");
        assert!(!Api::Embeddings.streams());
    }

    #[test]
    fn blank_lines_are_found_where_a_substring_search_finds_them() {
        for text in [
            &b""[..],
            b"\n",
            b"\n\n",
            b"a\nb\n\nc",
            b"data: x\r\n\r\n",
            b"a\n\r\n\n",
            b"\n\n\n",
            b"x\ny\nz\n",
        ] {
            let want = text.windows(2).position(|w| w == b"\n\n");
            assert_eq!(
                blank_line(text),
                want,
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn chat_streams_take_their_model_and_end_at_done() {
        let mut s = ApiStream::new(Api::ChatCompletions);
        let f = s
            .observe(SseEvent::Data(
                br#"{"model":"m","choices":[{"delta":{"role":"assistant","content":null}}]}"#,
            ))
            .unwrap();
        assert_eq!(f, EventFacts::default());
        assert!(s.end().is_err());
        assert_eq!(s.observe(SseEvent::Done).unwrap(), EventFacts::terminal());
        assert_eq!(s.model(), Some("m"));
        assert!(s.end().is_ok());
    }
}
