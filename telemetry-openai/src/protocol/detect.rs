//! Which server is behind a base URL, from what its discovery endpoints say.
//!
//! The engines ask, in order: `GET <base>/models` (llama.cpp says `owned_by: "llamacpp"`,
//! SGLang `"sglang"`, vLLM `"vllm"`), then `GET <root>/version` (vLLM: `{"version": ...}`),
//! then `GET <root>/api/version` (Ollama: `{"version": ...}`), where `<root>` is the base URL
//! without its trailing `/v1`. These functions read the answers; they do no I/O.

use serde::Deserialize;

use crate::protocol::error::ProtocolError;

/// The record's `engine` for llama.cpp's `llama-server`.
pub const LLAMA_CPP: &str = "llama.cpp";
/// The record's `engine` for vLLM.
pub const VLLM: &str = "vllm";
/// The record's `engine` for SGLang.
pub const SGLANG: &str = "sglang";
/// The record's `engine` for Ollama.
pub const OLLAMA: &str = "ollama";
/// The record's `engine` for OpenAI's own API.
pub const OPENAI: &str = "openai";
/// The record's `engine` when the server did not say what it is.
pub const UNKNOWN: &str = "openai-compatible";

#[derive(Deserialize)]
struct ModelList {
    #[serde(default)]
    data: Vec<ModelEntry>,
}

#[derive(Deserialize)]
struct ModelEntry {
    #[serde(default)]
    id: String,
    #[serde(default)]
    owned_by: String,
}

/// The model ids of a `/v1/models` answer.
///
/// ```
/// use telemetry_openai::protocol::detect;
///
/// let body = br#"{"object":"list","data":[{"id":"smollm2-135m","object":"model","owned_by":"llamacpp"}]}"#;
/// assert_eq!(detect::model_ids(body).unwrap(), ["smollm2-135m"]);
/// assert_eq!(detect::engine_from_models(body), Some(detect::LLAMA_CPP));
/// ```
pub fn model_ids(body: &[u8]) -> Result<Vec<String>, ProtocolError> {
    let list: ModelList =
        serde_json::from_slice(body).map_err(|e| ProtocolError::json("model list", body, &e))?;
    Ok(list.data.into_iter().map(|m| m.id).collect())
}

/// The engine named by the `owned_by` of a `/v1/models` answer, when it names one.
pub fn engine_from_models(body: &[u8]) -> Option<&'static str> {
    let list: ModelList = serde_json::from_slice(body).ok()?;
    list.data.iter().find_map(|m| match m.owned_by.as_str() {
        "llamacpp" | "llama.cpp" => Some(LLAMA_CPP),
        "vllm" => Some(VLLM),
        "sglang" => Some(SGLANG),
        "openai" | "system" | "openai-internal" => Some(OPENAI),
        _ => None,
    })
}

#[derive(Deserialize)]
struct Version {
    version: String,
}

/// The `version` of a `{"version": "..."}` answer (vLLM `/version`, Ollama `/api/version`).
pub fn version(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<Version>(body)
        .ok()
        .map(|v| v.version)
}

/// The server root of a base URL: without trailing slashes and without a final `/v1`.
pub fn server_root(base_url: &str) -> &str {
    let trimmed = base_url.trim_end_matches('/');
    trimmed.strip_suffix("/v1").unwrap_or(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_and_versions() {
        assert_eq!(
            engine_from_models(br#"{"data":[{"id":"m","owned_by":"vllm"}]}"#),
            Some(VLLM)
        );
        assert_eq!(
            engine_from_models(br#"{"data":[{"id":"llama3.2:latest","owned_by":"library"}]}"#),
            None
        );
        assert_eq!(engine_from_models(b"<html>"), None);
        assert_eq!(
            version(br#"{"version":"0.6.3.post1"}"#).as_deref(),
            Some("0.6.3.post1")
        );
        assert_eq!(version(br#"{"detail":"Not Found"}"#), None);
        assert!(model_ids(b"[").is_err());
    }

    #[test]
    fn roots() {
        assert_eq!(server_root("http://h:8080/v1/"), "http://h:8080");
        assert_eq!(server_root("http://h:8080/v1"), "http://h:8080");
        assert_eq!(server_root("http://h:8080/api"), "http://h:8080/api");
    }
}
