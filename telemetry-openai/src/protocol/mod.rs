//! The OpenAI-compatible protocol, with no I/O: what the engines speak and what a proxy reads
//! as bytes pass through it.
//!
//! - Typed requests and responses of `/v1/chat/completions` and
//!   `/v1/completions` ([`ChatCompletionRequest`], [`ChatCompletionResponse`],
//!   [`ChatCompletionChunk`], [`CompletionRequest`], [`CompletionResponse`]); unknown fields are
//!   kept in `extra`. [`RequestSummary`] reads just the model and stream flags of any request.
//! - [`SseParser`]: incremental `text/event-stream` parsing of slices split anywhere.
//! - [`decode_chunk`] and [`StreamObserver`]: what each stream event holds (content, finish
//!   reason, usage, timings, errors) and the state of a whole stream. The observers read each
//!   event with a scanner that takes only what they need and builds nothing for the rest
//!   (under half the instructions of serde for a token chunk; a Chat stream's repeated members
//!   are read once), and fall back to serde wherever it is not sure, so they read every event
//!   as serde does.
//! - [`ServerReport`]: token counts and server timings from a whole body (OpenAI usage,
//!   llama.cpp `timings`, Ollama's native counters) or gathered from a stream.
//! - [`OpenAiError`]: why a call failed, with a stable [`error_kind`](OpenAiError::error_kind);
//!   [`OpenAiError::from_http_response`] turns a status and body into one.
//! - [`parse_json`]: serde_json over bytes at its `&str` reader's speed where it can.
//! - One module per API beside the Chat Completions / Completions one above, each owning its
//!   usage rules, its output-chunk rule (TTFT is the first output of any kind: text, tool-call
//!   arguments, reasoning) and its terminal event: [`responses`] (OpenAI Responses),
//!   [`messages`] (Anthropic Messages), [`embeddings`] (input tokens, no stream). [`Api`]
//!   names them; [`read_body`] reads any API's whole body and [`ApiStream`] any API's stream.
//! - [`IncludeUsageFilter`] and [`ask_for_usage`]: asking a server for a stream's usage on the
//!   client's behalf, and taking out of the stream what that added.
//! - [`detect`]: which server is behind a URL, from its discovery endpoints' answers.

mod api;
mod chunk;
mod common;
pub mod detect;
pub mod embeddings;
mod error;
mod include_usage;
mod json;
pub mod messages;
#[cfg(test)]
mod oracle;
pub mod responses;
mod scanner;
mod sse;
mod stream;
mod types;
mod usage;
mod whole;

pub use api::{Api, ApiStream, model_of, read_body};
pub use chunk::{ChunkSummary, decode_chunk};
pub use common::EventFacts;
pub use error::{OpenAiError, ProtocolError, ServerError, http_error_kind};
pub use include_usage::{
    Filtered, IncludeUsageFilter, STREAM_OPTIONS_MEMBER, UsageAsk, ask_for_usage,
};
pub use json::parse_json;
pub use sse::{DEFAULT_MAX_LINE_BYTES, SseEvent, SseParser};
pub use stream::{Observed, StreamDelta, StreamObserver};
pub use types::{
    AssistantMessage, ChatChoice, ChatCompletionChunk, ChatCompletionRequest,
    ChatCompletionResponse, ChatMessage, ChunkChoice, CompletionChoice, CompletionChunk,
    CompletionRequest, CompletionResponse, MessageContent, RequestSummary, StreamOptions,
    finish_reason,
};
pub use usage::{
    ApiUsage, CompletionTokensDetails, PromptTokensDetails, ServerPhases, ServerReport,
    ServerTimings,
};
