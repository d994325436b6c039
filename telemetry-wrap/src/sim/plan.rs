//! What one simulated call will do: tokens, delays, words; drawn from the seeded PRNG.

use std::time::Duration;

use crate::error::SimulatedError;
use crate::request::{GenerateParams, Message};
use crate::response::{FinishReason, StreamChunk, Usage};

use super::model::SimModel;
use super::rng::SplitMix64;

const WORDS: &[&str] = &[
    "the",
    "model",
    "answers",
    "with",
    "tokens",
    "that",
    "arrive",
    "one",
    "after",
    "another",
    "while",
    "energy",
    "is",
    "measured",
    "on",
    "a",
    "GPU",
    "and",
    "latency",
    "grows",
    "when",
    "prompts",
    "are",
    "long",
    "so",
    "batching",
    "helps",
    "throughput",
    "in",
    "practice",
    "today",
    "overall",
];

/// Completion tokens are capped here so that huge limits cannot make a call run for days.
const MAX_SIM_TOKENS: u64 = 1 << 16;

const ERROR_KINDS: &[&str] = &["overloaded", "timeout", "rate_limited"];

/// A drawn call, consumed token by token.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    rng: SplitMix64,
    decode_ms: f64,
    jitter: f64,
    pub ttft: Duration,
    pub usage: Usage,
    pub finish: FinishReason,
    /// Tokens produced so far.
    produced: u64,
    /// Synthetic offset of the latest token.
    pub offset: Duration,
}

/// Approximate prompt tokens: 4 bytes a token, plus 4 per message for the chat template.
fn prompt_tokens(messages: &[Message]) -> u64 {
    messages
        .iter()
        .map(|m| (m.content.len() as u64).div_ceil(4) + 4)
        .sum::<u64>()
        .max(1)
}

impl Plan {
    pub fn draw(
        model: &SimModel,
        mut rng: SplitMix64,
        error_rate: f64,
        call: u64,
        messages: &[Message],
        params: &GenerateParams,
    ) -> Result<Plan, SimulatedError> {
        if rng.next_f64() < error_rate {
            let kind = ERROR_KINDS[rng.below(ERROR_KINDS.len() as u64) as usize];
            return Err(SimulatedError::Injected {
                kind,
                model: model.id.to_owned(),
                call,
            });
        }
        let prompt = prompt_tokens(messages);
        let max = params
            .max_tokens
            .unwrap_or(model.default_max_tokens)
            .min(MAX_SIM_TOKENS);
        // Between a quarter of the limit and the limit, sometimes hitting it.
        let low = (max / 4).max(1).min(max);
        let completion = (low + rng.below(max - low + max / 4 + 1)).min(max);
        let finish = if completion == max {
            FinishReason::Length
        } else {
            FinishReason::Stop
        };
        let ttft_ms = (model.ttft_base_ms + model.prefill_ms_per_token * prompt as f64)
            * rng.jitter(model.jitter);
        Ok(Plan {
            rng,
            decode_ms: model.decode_ms_per_token,
            jitter: model.jitter,
            ttft: Duration::from_secs_f64(ttft_ms / 1000.0),
            usage: Usage::new(prompt, completion),
            finish,
            produced: 0,
            offset: Duration::ZERO,
        })
    }

    /// The next token's text and synthetic offset, or `None` when all were produced.
    pub fn next_token(&mut self) -> Option<(&'static str, bool, Duration)> {
        if self.produced >= self.usage.completion_tokens {
            return None;
        }
        self.offset = if self.produced == 0 {
            self.ttft
        } else {
            let gap_ms = self.decode_ms * self.rng.jitter(self.jitter);
            self.offset + Duration::from_secs_f64(gap_ms / 1000.0)
        };
        let word = WORDS[self.rng.below(WORDS.len() as u64) as usize];
        let first = self.produced == 0;
        self.produced += 1;
        Some((word, first, self.offset))
    }

    /// The next token as a chunk (leading space except for the first).
    pub fn next_chunk(&mut self) -> Option<StreamChunk> {
        self.next_token().map(|(word, first, offset)| {
            let text = if first {
                word.to_owned()
            } else {
                format!(" {word}")
            };
            StreamChunk::text(text).at(offset)
        })
    }

    /// The whole text; afterwards `offset` is the synthetic duration of the call.
    pub fn run_to_end(&mut self) -> String {
        let mut text = String::new();
        while let Some((word, first, _)) = self.next_token() {
            if !first {
                text.push(' ');
            }
            text.push_str(word);
        }
        text
    }

    /// The final usage chunk, at the offset of the last token.
    pub fn usage_chunk(&self) -> StreamChunk {
        let mut chunk = StreamChunk::usage(self.usage).at(self.offset);
        chunk.finish_reason = Some(self.finish);
        chunk
    }
}
