//! OpenAI Embeddings, `POST /v1/embeddings`: input tokens only (`usage.prompt_tokens`), no
//! stream, no output tokens and so no TTFT.

use serde::Deserialize;
use telemetry_wrap::Usage;

use crate::protocol::common::{ModelText, model_text};
use crate::protocol::error::ProtocolError;
use crate::protocol::usage::ServerReport;

#[derive(Deserialize)]
struct UsageProbe {
    #[serde(default)]
    prompt_tokens: u64,
}

#[derive(Deserialize)]
struct BodyProbe<'a> {
    #[serde(default, borrow)]
    model: Option<ModelText<'a>>,
    #[serde(default)]
    usage: Option<UsageProbe>,
}

/// Reads a whole embeddings body: the input tokens and the model (the vectors are skipped).
///
/// ```
/// use telemetry_openai::protocol::embeddings;
///
/// let body = br#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,0.2]}],
///   "model":"nomic","usage":{"prompt_tokens":8,"total_tokens":8}}"#;
/// let (report, model) = embeddings::read_body(body).unwrap();
/// assert_eq!(report.usage.map(|u| (u.prompt_tokens, u.completion_tokens)), Some((8, 0)));
/// assert_eq!(model.as_deref(), Some("nomic"));
/// ```
pub fn read_body(body: &[u8]) -> Result<(ServerReport, Option<String>), ProtocolError> {
    let probe: BodyProbe<'_> = serde_json::from_slice(body)
        .map_err(|e| ProtocolError::json("embeddings body", body, &e))?;
    let report = ServerReport {
        usage: probe.usage.map(|u| Usage::new(u.prompt_tokens, 0)),
        ..ServerReport::default()
    };
    Ok((report, model_text(probe.model)))
}
