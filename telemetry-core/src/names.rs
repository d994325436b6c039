//! The names the record's `api` and `operation` fields take for the calls this workspace
//! records. Both fields are open (a caller may record another API), but
//! [`validate`](crate::TelemetryRecord::validate) takes only names: empty, or at most
//! [`MAX_NAME_BYTES`](crate::MAX_NAME_BYTES) of lower-case ASCII letters, digits, `_` and `.`.

/// Values of the record's `api`: the wire protocol a call spoke.
pub mod api {
    /// OpenAI Chat Completions, `POST /v1/chat/completions`.
    pub const OPENAI_CHAT: &str = "openai_chat";
    /// OpenAI Completions (legacy), `POST /v1/completions`.
    pub const OPENAI_COMPLETIONS: &str = "openai_completions";
    /// OpenAI Responses, `POST /v1/responses`.
    pub const OPENAI_RESPONSES: &str = "openai_responses";
    /// OpenAI Embeddings, `POST /v1/embeddings`.
    pub const OPENAI_EMBEDDINGS: &str = "openai_embeddings";
    /// Anthropic Messages, `POST /v1/messages`.
    pub const ANTHROPIC_MESSAGES: &str = "anthropic_messages";
}

/// Values of the record's `operation`: OpenTelemetry's GenAI `gen_ai.operation.name`.
pub mod operation {
    /// A chat completion (OpenAI Chat Completions and Responses, Anthropic Messages).
    pub const CHAT: &str = "chat";
    /// A text completion (OpenAI Completions).
    pub const TEXT_COMPLETION: &str = "text_completion";
    /// An embeddings request.
    pub const EMBEDDINGS: &str = "embeddings";
    /// Multimodal content generation (Gemini's Generate Content).
    pub const GENERATE_CONTENT: &str = "generate_content";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_here_is_a_valid_name() {
        for name in [
            api::OPENAI_CHAT,
            api::OPENAI_COMPLETIONS,
            api::OPENAI_RESPONSES,
            api::OPENAI_EMBEDDINGS,
            api::ANTHROPIC_MESSAGES,
            operation::CHAT,
            operation::TEXT_COMPLETION,
            operation::EMBEDDINGS,
            operation::GENERATE_CONTENT,
        ] {
            assert!(crate::validate::is_name(name), "{name}");
        }
    }
}
