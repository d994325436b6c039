//! Typed requests and responses of `/v1/chat/completions` and `/v1/completions`.
//!
//! Every struct keeps the fields it does not name in `extra` (`#[serde(flatten)]`), so a request
//! or response read and written back loses nothing a client or server added (`tools`,
//! `logprobs`, `system_fingerprint`, vendor fields). Fields servers omit have defaults.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use telemetry_wrap::{FinishReason, GenerateParams, Message, Role};

use crate::protocol::usage::{ApiUsage, ServerTimings};

/// `stream_options` of a request.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StreamOptions {
    /// Ask for a final chunk with `usage` (OpenAI, vLLM, SGLang, llama.cpp, Ollama).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The content of a chat message: text, or a list of parts (multimodal input).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    /// Plain text.
    Text(String),
    /// Content parts (`{"type": "text", "text": ...}`, images, ...).
    Parts(Vec<Value>),
}

impl MessageContent {
    /// The text: the string, or the `text` of the text parts joined.
    pub fn text(&self) -> String {
        match self {
            MessageContent::Text(s) => s.clone(),
            MessageContent::Parts(parts) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect(),
        }
    }
}

/// One message of a chat request (or of a chat response's `message`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, `tool`, `developer`, ...
    pub role: String,
    /// The content; `null` in assistant messages that only call tools.
    #[serde(default)]
    pub content: Option<MessageContent>,
    /// Other fields (`name`, `tool_calls`, `tool_call_id`, `reasoning_content`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl From<&Message> for ChatMessage {
    fn from(m: &Message) -> Self {
        let role = match m.role {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        };
        ChatMessage {
            role: role.to_owned(),
            content: Some(MessageContent::Text(m.content.clone())),
            extra: Map::new(),
        }
    }
}

/// A `POST /v1/chat/completions` request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionRequest {
    /// The model (or alias) to run.
    pub model: String,
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Stream the answer as server-sent events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Streaming options (`include_usage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// Completion token limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Other fields (`top_p`, `stop`, `tools`, `cache_prompt`, `max_completion_tokens`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatCompletionRequest {
    /// A request for `params.model` with `messages`; `params.extra` becomes top-level fields.
    /// When `stream` is set, it asks for the final usage chunk (`stream_options.include_usage`)
    /// unless `params.extra` already says otherwise.
    pub fn new(messages: &[Message], params: &GenerateParams, stream: bool) -> Self {
        let mut extra = params.extra.clone();
        let stream_options = if stream {
            match extra.remove("stream_options") {
                Some(v) => serde_json::from_value(v).ok(),
                None => Some(StreamOptions {
                    include_usage: Some(true),
                    extra: Map::new(),
                }),
            }
        } else {
            None
        };
        ChatCompletionRequest {
            model: params.model.clone(),
            messages: messages.iter().map(ChatMessage::from).collect(),
            stream: stream.then_some(true),
            stream_options,
            max_tokens: params.max_tokens,
            temperature: params.temperature,
            extra,
        }
    }

    /// Whether the request asks for a stream.
    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }
}

/// A `POST /v1/completions` request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionRequest {
    /// The model (or alias) to run.
    pub model: String,
    /// The prompt: a string, a list of strings, or token ids.
    pub prompt: Value,
    /// Stream the answer as server-sent events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Streaming options (`include_usage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// Completion token limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl CompletionRequest {
    /// Whether the request asks for a stream.
    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }
}

/// What a proxy needs to know about any request body before forwarding it: the model, whether
/// it streams, and whether it asked for the usage chunk. Decoding it skips everything else.
///
/// ```
/// use telemetry_openai::protocol::RequestSummary;
///
/// let body = br#"{"model":"smollm2","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
/// let s = RequestSummary::from_body(body).unwrap();
/// assert_eq!((s.model.as_deref(), s.stream, s.include_usage), (Some("smollm2"), true, false));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestSummary {
    /// The `model` field, when present.
    pub model: Option<String>,
    /// `stream: true`.
    pub stream: bool,
    /// `stream_options.include_usage: true`.
    pub include_usage: bool,
}

#[derive(Deserialize)]
struct RequestProbe {
    #[serde(default)]
    model: Option<String>,
    /// Any value: a server decides what a non-boolean means (the proxy learns whether the
    /// answer streams from the response), so it must not make the model unreadable.
    #[serde(default)]
    stream: Option<Value>,
    #[serde(default)]
    stream_options: Option<Value>,
}

impl RequestSummary {
    /// Reads the summary from a JSON request body.
    pub fn from_body(body: &[u8]) -> Result<Self, crate::protocol::ProtocolError> {
        let probe: RequestProbe = crate::protocol::parse_json(body)
            .map_err(|e| crate::protocol::ProtocolError::json("request body", body, &e))?;
        Ok(RequestSummary {
            model: probe.model,
            stream: probe.stream == Some(Value::Bool(true)),
            include_usage: probe
                .stream_options
                .is_some_and(|o| o.get("include_usage") == Some(&Value::Bool(true))),
        })
    }
}

/// The `message` of a chat completion choice, or the `delta` of a chunk's choice.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AssistantMessage {
    /// `assistant` (in a stream usually only in the first delta).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The text; `null` in llama.cpp's role-only first chunk and in tool calls.
    #[serde(default)]
    pub content: Option<String>,
    /// Reasoning text of reasoning models (vLLM, llama.cpp `reasoning_content`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Other fields (`tool_calls`, `refusal`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One choice of a chat completion response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatChoice {
    /// Index of the choice.
    #[serde(default)]
    pub index: u32,
    /// The answer.
    pub message: AssistantMessage,
    /// `stop`, `length`, `tool_calls`, `content_filter`.
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// Other fields (`logprobs`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A `/v1/chat/completions` response body (non-streaming).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionResponse {
    /// Response id.
    #[serde(default)]
    pub id: String,
    /// `chat.completion`.
    #[serde(default)]
    pub object: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: u64,
    /// The model that answered, as the server names it.
    #[serde(default)]
    pub model: String,
    /// The answers.
    #[serde(default)]
    pub choices: Vec<ChatChoice>,
    /// Token counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<ApiUsage>,
    /// llama.cpp's server-side timings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<ServerTimings>,
    /// Other fields (`system_fingerprint`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatCompletionResponse {
    /// The first choice's text (empty when it has none).
    pub fn text(&self) -> &str {
        self.choices
            .first()
            .and_then(|c| c.message.content.as_deref())
            .unwrap_or("")
    }
}

/// One choice of a streamed chat chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    /// Index of the choice.
    #[serde(default)]
    pub index: u32,
    /// What this chunk adds.
    #[serde(default)]
    pub delta: AssistantMessage,
    /// Set on the choice's last chunk.
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One `data:` event of a streamed `/v1/chat/completions` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionChunk {
    /// Response id (the same in every chunk).
    #[serde(default)]
    pub id: String,
    /// `chat.completion.chunk`.
    #[serde(default)]
    pub object: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: u64,
    /// The model.
    #[serde(default)]
    pub model: String,
    /// Choices; empty in the final usage chunk.
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
    /// Token counts (final chunk, when `include_usage` was asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<ApiUsage>,
    /// llama.cpp's server-side timings (finish chunk and usage chunk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<ServerTimings>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One choice of a `/v1/completions` response or chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionChoice {
    /// Index of the choice.
    #[serde(default)]
    pub index: u32,
    /// The text (the whole answer, or this chunk's piece).
    #[serde(default)]
    pub text: String,
    /// Why generation stopped.
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// Other fields (`logprobs`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A `/v1/completions` response body, and (the same shape) each chunk of its stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionResponse {
    /// Response id.
    #[serde(default)]
    pub id: String,
    /// `text_completion`.
    #[serde(default)]
    pub object: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: u64,
    /// The model.
    #[serde(default)]
    pub model: String,
    /// The answers.
    #[serde(default)]
    pub choices: Vec<CompletionChoice>,
    /// Token counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<ApiUsage>,
    /// llama.cpp's server-side timings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<ServerTimings>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A chunk of a streamed `/v1/completions` answer (same shape as the response).
pub type CompletionChunk = CompletionResponse;

/// Maps a server's `finish_reason` string to the record's [`FinishReason`].
pub fn finish_reason(s: &str) -> FinishReason {
    match s {
        "stop" | "eos" | "end_turn" | "stop_sequence" => FinishReason::Stop,
        "length" | "max_tokens" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        _ => FinishReason::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let text = r#"{"model":"m","messages":[{"role":"user","content":"hi","name":"u1"}],"stream":true,"stream_options":{"include_usage":true,"x":1},"cache_prompt":false,"tools":[]}"#;
        let req: ChatCompletionRequest = serde_json::from_str(text).unwrap();
        assert!(req.is_stream());
        assert_eq!(req.extra["cache_prompt"], Value::Bool(false));
        assert_eq!(req.messages[0].extra["name"], "u1");
        let back: Value = serde_json::to_value(&req).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(text).unwrap());
    }

    #[test]
    fn request_from_params_asks_for_usage_when_streaming() {
        let params = GenerateParams::new("m")
            .with_max_tokens(8)
            .with_extra("cache_prompt", Value::Bool(false));
        let req = ChatCompletionRequest::new(&[Message::user("hi")], &params, true);
        let v = serde_json::to_value(&req).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["cache_prompt"], false);
        assert_eq!(v["max_tokens"], 8);
        assert_eq!(v["messages"][0]["role"], "user");
        let blocking =
            serde_json::to_value(ChatCompletionRequest::new(&[], &params, false)).unwrap();
        assert!(blocking.get("stream").is_none() && blocking.get("stream_options").is_none());
    }

    #[test]
    fn content_parts_give_their_text() {
        let m: ChatMessage = serde_json::from_str(
            r#"{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url"},{"type":"text","text":"b"}]}"#,
        )
        .unwrap();
        assert_eq!(m.content.map(|c| c.text()).as_deref(), Some("ab"));
    }

    #[test]
    fn finish_reasons() {
        assert_eq!(finish_reason("stop"), FinishReason::Stop);
        assert_eq!(finish_reason("length"), FinishReason::Length);
        assert_eq!(finish_reason("tool_calls"), FinishReason::ToolCalls);
        assert_eq!(finish_reason("weird"), FinishReason::Unknown);
    }
}
