//! The scanners against serde: wherever a scanner reads an event, serde must read it too and
//! say the same. Events are generated near each API's shapes (known keys in any order, some
//! twice, values of the wrong type, escapes in keys and strings, unicode, whitespace, numbers
//! at the edges of their types, nested junk), then some are damaged a byte at a time; the real
//! transcripts must all take the fast path.

use proptest::prelude::*;

use crate::protocol::chunk::{ChunkMemo, decode_chunk, scan_chunk, scan_chunk_with};
use crate::protocol::usage::{ApiUsage, ServerTimings};
use crate::protocol::{Api, ApiStream, SseEvent, SseParser, messages, model_of, responses, whole};

/// A small deterministic generator (xorshift*), seeded by proptest, with a level of noise:
/// how often a value has the wrong type, a key comes twice, a string a broken escape, an event
/// a damaged byte (none for half the seeds, so that many events are valid).
struct Rng(u64, usize);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut rng = Rng(seed.max(1), 0);
        rng.1 = rng.pick(&[0, 0, 2, 10]);
        rng
    }

    /// True at the noise level, in percent.
    fn noisy(&mut self) -> bool {
        self.below(100) < self.1
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True `percent` % of the time.
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// Makes a value.
type Make = fn(&mut Rng) -> J;

/// Checks one event; whether the scanner read it.
type Agree = fn(&[u8]) -> Result<bool, TestCaseError>;

/// A JSON value whose rendering the test controls (key order, duplicates, escapes, spaces).
enum J {
    Null,
    Bool(bool),
    Num(&'static str),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

const NUMBERS: &[&str] = &[
    "0",
    "7",
    "42",
    "1795894335",
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775808",
    "-1",
    "-0",
    "12.5",
    "0.001",
    "194.232",
    "3.0",
    "1e5",
    "1E400",
    "-2.5e-3",
    "164.75143127805921",
    "123456789012345678901234567890",
];

const CHARS: &[char] = &[
    'a', 'Z', ' ', '"', '\\', '/', '\n', '\t', '\u{1}', '\u{7f}', 'é', '€', '😀', '\u{2028}',
];

const WORDS: &[&str] = &[
    "",
    "stop",
    "length",
    "tool_calls",
    "Hello",
    " w1",
    "m",
    "text_delta",
    "input_json_delta",
    "thinking_delta",
    "signature_delta",
    "message_start",
    "content_block_delta",
    "message_delta",
    "message_stop",
    "error",
    "ping",
    "response.created",
    "response.output_text.delta",
    "response.function_call_arguments.delta",
    "response.completed",
    "response.incomplete",
    "response.failed",
    "response.output_text.done",
];

fn text(rng: &mut Rng) -> J {
    if rng.chance(60) {
        return J::Str(rng.pick(WORDS).to_owned());
    }
    let len = rng.below(6);
    J::Str((0..len).map(|_| rng.pick(CHARS)).collect())
}

/// Any value, `depth` levels deep at most.
fn any(rng: &mut Rng, depth: usize) -> J {
    match rng.below(if depth == 0 { 4 } else { 6 }) {
        0 => J::Null,
        1 => J::Bool(rng.chance(50)),
        2 => J::Num(rng.pick(NUMBERS)),
        3 => text(rng),
        4 => J::Arr((0..rng.below(3)).map(|_| any(rng, depth - 1)).collect()),
        _ => J::Obj(
            (0..rng.below(3))
                .map(|_| {
                    (
                        rng.pick(&["k", "type", "delta", "model"]).to_owned(),
                        any(rng, depth - 1),
                    )
                })
                .collect(),
        ),
    }
}

/// Mostly `good`, else `null` or any value (a wrong type, often).
fn typed(rng: &mut Rng, good: impl FnOnce(&mut Rng) -> J) -> J {
    if !rng.noisy() {
        return good(rng);
    }
    if rng.chance(50) { J::Null } else { any(rng, 2) }
}

fn num(rng: &mut Rng) -> J {
    J::Num(if rng.noisy() {
        rng.pick(NUMBERS)
    } else {
        rng.pick(&["0", "7", "42", "1795894335"])
    })
}

/// An object of some of `fields` (each made by its function), shuffled, a field now and
/// then twice, and a junk key now and then.
fn object(rng: &mut Rng, fields: &[(&str, Make)]) -> J {
    let mut members = Vec::new();
    for (key, make) in fields {
        if rng.chance(75) {
            let value = typed(rng, make);
            members.push(((*key).to_owned(), value));
        }
        if rng.noisy() && rng.chance(20) {
            members.push(((*key).to_owned(), make(rng)));
        }
    }
    if rng.chance(30) {
        members.push(("junk".to_owned(), any(rng, 3)));
    }
    for i in (1..members.len()).rev() {
        members.swap(i, rng.below(i + 1));
    }
    J::Obj(members)
}

fn array(rng: &mut Rng, item: Make) -> J {
    J::Arr((0..rng.below(3)).map(|_| item(rng)).collect())
}

fn chat_chunk(rng: &mut Rng) -> J {
    object(
        rng,
        &[
            ("id", text),
            ("model", text),
            ("created", num),
            ("choices", |r| array(r, choice)),
            ("usage", chat_usage),
            ("timings", timings),
            ("error", |r| if r.noisy() { any(r, 1) } else { J::Null }),
        ],
    )
}

fn chat_usage(rng: &mut Rng) -> J {
    object(
        rng,
        &[
            ("prompt_tokens", num),
            ("completion_tokens", num),
            ("total_tokens", num),
            ("prompt_tokens_details", |r| {
                object(r, &[("cached_tokens", num), ("audio_tokens", num)])
            }),
            ("completion_tokens_details", |r| {
                object(r, &[("reasoning_tokens", num)])
            }),
        ],
    )
}

fn timings(rng: &mut Rng) -> J {
    object(
        rng,
        &[
            ("cache_n", num),
            ("prompt_n", num),
            ("prompt_ms", num),
            ("predicted_n", num),
            ("predicted_ms", num),
            ("prompt_per_second", num),
        ],
    )
}

/// A whole Chat Completions answer (llama.cpp's, OpenAI's, Ollama's counts), its model now
/// and then given twice.
fn chat_body(rng: &mut Rng) -> J {
    let mut body = chat_body_once(rng);
    if rng.chance(10)
        && let J::Obj(members) = &mut body
    {
        let at = rng.below(members.len() + 1);
        members.insert(at, ("model".to_owned(), text(rng)));
    }
    body
}

fn chat_body_once(rng: &mut Rng) -> J {
    object(
        rng,
        &[
            ("id", text),
            ("object", text),
            ("created", num),
            ("model", |r| if r.chance(80) { text(r) } else { any(r, 2) }),
            ("choices", |r| any(r, 3)),
            ("usage", body_usage),
            ("timings", body_timings),
            ("prompt_eval_count", num),
            ("eval_count", num),
            ("prompt_eval_duration", num),
            ("eval_duration", num),
            ("system_fingerprint", text),
            // Keys read by none, each a read one but for a letter more or less: a reader
            // that takes its keys by comparing bytes must not take these.
            ("usages", num),
            ("usag", text),
            ("model_", text),
            ("timing", num),
            ("eval_counts", num),
            ("prompt_eval_duration_", num),
        ],
    )
}

/// A whole answer's `usage`: [`chat_usage`]'s fields, and keys like theirs.
fn body_usage(rng: &mut Rng) -> J {
    object(
        rng,
        &[
            ("prompt_tokens", num),
            ("completion_tokens", num),
            ("total_tokens", num),
            ("prompt_tokens_details", |r| {
                object(r, &[("cached_tokens", num), ("cached_token", num)])
            }),
            ("completion_tokens_details", |r| {
                object(r, &[("reasoning_tokens", num)])
            }),
            ("prompt_tokens_", num),
            ("total_token", num),
            ("completion_tokens_detail", num),
        ],
    )
}

/// A whole answer's `timings`: [`timings`]' fields, and keys like theirs.
fn body_timings(rng: &mut Rng) -> J {
    object(
        rng,
        &[
            ("cache_n", num),
            ("prompt_n", num),
            ("prompt_ms", num),
            ("predicted_n", num),
            ("predicted_ms", num),
            ("cache_n_", num),
            ("prompt_m", num),
            ("predicted_msx", num),
        ],
    )
}

fn choice(rng: &mut Rng) -> J {
    object(
        rng,
        &[
            ("index", num),
            ("text", text),
            ("finish_reason", text),
            ("logprobs", |r| any(r, 2)),
            ("delta", |r| {
                object(
                    r,
                    &[
                        ("role", text),
                        ("content", text),
                        ("reasoning_content", text),
                        ("reasoning", text),
                        ("tool_calls", |r| {
                            array(r, |r| {
                                object(
                                    r,
                                    &[
                                        ("index", num),
                                        ("id", text),
                                        ("function", |r| {
                                            object(r, &[("name", text), ("arguments", text)])
                                        }),
                                    ],
                                )
                            })
                        }),
                    ],
                )
            }),
        ],
    )
}

fn messages_usage(rng: &mut Rng) -> J {
    object(
        rng,
        &[
            ("input_tokens", num),
            ("output_tokens", num),
            ("cache_read_input_tokens", num),
            ("cache_creation_input_tokens", num),
            ("service_tier", text),
        ],
    )
}

fn messages_event(rng: &mut Rng) -> J {
    object(
        rng,
        &[
            ("type", text),
            ("index", num),
            ("message", |r| {
                object(
                    r,
                    &[
                        ("id", text),
                        ("model", text),
                        ("content", |r| any(r, 2)),
                        ("usage", messages_usage),
                    ],
                )
            }),
            ("delta", |r| {
                object(
                    r,
                    &[
                        ("type", text),
                        ("text", text),
                        ("partial_json", text),
                        ("thinking", text),
                        ("stop_reason", text),
                    ],
                )
            }),
            ("usage", messages_usage),
        ],
    )
}

fn responses_event(rng: &mut Rng) -> J {
    object(
        rng,
        &[
            ("type", text),
            ("delta", text),
            ("item_id", text),
            ("sequence_number", num),
            ("response", |r| {
                object(
                    r,
                    &[
                        ("id", text),
                        ("model", text),
                        ("output", |r| any(r, 3)),
                        ("error", |r| if r.noisy() { any(r, 2) } else { J::Null }),
                        ("usage", |r| {
                            object(
                                r,
                                &[
                                    ("input_tokens", num),
                                    ("output_tokens", num),
                                    ("total_tokens", num),
                                    ("input_tokens_details", |r| {
                                        object(r, &[("cached_tokens", num)])
                                    }),
                                    ("output_tokens_details", |r| {
                                        object(r, &[("reasoning_tokens", num)])
                                    }),
                                ],
                            )
                        }),
                    ],
                )
            }),
        ],
    )
}

/// Writes `j` as JSON, with random whitespace and escapes (and rarely a broken one).
fn render(j: &J, rng: &mut Rng, out: &mut String) {
    let space = |rng: &mut Rng, out: &mut String| {
        if rng.chance(10) {
            out.push_str(rng.pick(&[" ", "\n", "\t", "\r\n  "]));
        }
    };
    space(rng, out);
    match j {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Num(n) => out.push_str(n),
        J::Str(s) => string(s, false, rng, out),
        J::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                render(item, rng, out);
            }
            space(rng, out);
            out.push(']');
        }
        J::Obj(members) => {
            out.push('{');
            for (i, (key, value)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                space(rng, out);
                string(key, true, rng, out);
                space(rng, out);
                out.push(':');
                render(value, rng, out);
            }
            space(rng, out);
            out.push('}');
        }
    }
    space(rng, out);
}

/// A string; a key's characters are escaped without need only in noisy events (an escaped
/// key is always declined).
fn string(s: &str, key: bool, rng: &mut Rng, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        let escape = matches!(c, '"' | '\\' | '\0'..='\u{1f}')
            || if key {
                rng.noisy() && rng.chance(10)
            } else {
                rng.chance(3)
            };
        if !escape {
            out.push(c);
            continue;
        }
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' if rng.chance(50) => out.push_str("\\n"),
            '\t' if rng.chance(50) => out.push_str("\\t"),
            '/' if rng.chance(50) => out.push_str("\\/"),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    if rng.noisy() && rng.chance(10) {
        out.push_str(rng.pick(&["\\ud83d", "\\ude00", "\\x", "\u{1}", "\\u12"]));
    }
    out.push('"');
}

/// `json`, now and then damaged: a byte dropped, doubled or replaced.
fn damage(json: String, rng: &mut Rng) -> Vec<u8> {
    let mut bytes = json.into_bytes();
    if bytes.is_empty() || rng.1 == 0 || !rng.chance(40) {
        return bytes;
    }
    let at = rng.below(bytes.len());
    match rng.below(3) {
        0 => {
            bytes.remove(at);
        }
        1 => bytes.insert(at, bytes[at]),
        _ => bytes[at] = rng.pick(b"{}[]\",:\\0-.e nu\x01\x1f\xff"),
    }
    bytes
}

fn event(rng: &mut Rng, make: Make) -> Vec<u8> {
    let mut json = String::new();
    render(&make(rng), rng, &mut json);
    damage(json, rng)
}

fn named_usage(u: Option<ApiUsage>) -> Option<ApiUsage> {
    u.map(|mut u| {
        u.extra.clear();
        if let Some(d) = &mut u.prompt_tokens_details {
            d.extra.clear();
        }
        if let Some(d) = &mut u.completion_tokens_details {
            d.extra.clear();
        }
        u
    })
}

fn named_timings(t: Option<ServerTimings>) -> Option<ServerTimings> {
    t.map(|mut t| {
        t.extra.clear();
        t
    })
}

/// Checks one chat chunk; whether the scanner read it.
fn agree_chat(data: &[u8]) -> Result<bool, TestCaseError> {
    let Some(fast) = scan_chunk(data) else {
        return Ok(false);
    };
    let shown = String::from_utf8_lossy(data);
    let serde = decode_chunk(data);
    prop_assert!(
        serde.is_ok(),
        "scanned what serde refuses: {shown} ({serde:?})"
    );
    let Ok(serde) = serde else { unreachable!() };
    let model = fast.model.map(|m| m.decode());
    prop_assert!(!matches!(model, Some(None)), "{shown}");
    let model = model
        .flatten()
        .filter(|m| !m.is_empty())
        .map(|m| m.into_owned());
    prop_assert_eq!(model, model_of(data), "model of {}", shown);
    prop_assert_eq!(fast.has_output(), serde.has_output(), "{}", shown);
    let summary = fast.into_summary();
    prop_assert!(summary.is_some(), "{shown}");
    let Some(mut summary) = summary else {
        unreachable!()
    };
    let mut serde = serde;
    serde.usage = named_usage(serde.usage);
    serde.timings = named_timings(serde.timings);
    summary.usage = named_usage(summary.usage);
    prop_assert_eq!(summary, serde, "{}", shown);
    Ok(true)
}

/// One member, `"key":value`, of a value `make` makes (now and then of another type).
fn member(rng: &mut Rng, key: &str, make: Make) -> String {
    let mut out = String::new();
    string(key, true, rng, &mut out);
    out.push(':');
    render(&typed(rng, make), rng, &mut out);
    out
}

/// A stream of chat chunks whose top-level members other than `choices` repeat byte for byte
/// from chunk to chunk, as servers send them (before `choices` or after it), each chunk now and
/// then changed: a member dropped, given again, its value made anew, `choices` elsewhere, a
/// `usage`, a byte damaged.
fn chunk_stream(rng: &mut Rng) -> Vec<Vec<u8>> {
    let fields: [(&str, Make); 6] = [
        ("id", text),
        ("object", text),
        ("created", num),
        ("model", text),
        ("system_fingerprint", text),
        ("junk", |r| any(r, 2)),
    ];
    let mut shared = Vec::new();
    for (key, make) in fields {
        if rng.chance(80) {
            shared.push(member(rng, key, make));
        }
    }
    let split = rng.below(shared.len() + 1);
    (0..rng.below(6) + 2)
        .map(|_| {
            let mut members = shared.clone();
            if rng.noisy() && !members.is_empty() {
                let at = rng.below(members.len());
                let (key, make) = fields[rng.below(fields.len())];
                match rng.below(3) {
                    0 => drop(members.remove(at)),
                    1 => members[at] = member(rng, key, make),
                    _ => members.insert(at, member(rng, key, make)),
                }
            }
            // A longer last value: bytes equal to a run up to its end are not the run.
            if rng.chance(15)
                && let Some(last) = members.get_mut(split.saturating_sub(1))
            {
                last.push_str(rng.pick(&["7", "0", ".5", "e3", " ", "x"]));
            }
            let choices = member(rng, "choices", |r| array(r, choice));
            let at = if rng.noisy() {
                rng.below(members.len() + 1)
            } else {
                split.min(members.len())
            };
            members.insert(at, choices);
            if rng.chance(20) {
                let usage = member(rng, "usage", |r| object(r, &[("prompt_tokens", num)]));
                members.push(usage);
            }
            // A key of the run given again after it (serde's duplicate field).
            if rng.chance(10) {
                members.push(member(rng, "model", text));
            }
            damage(format!("{{{}}}", members.join(",")), rng)
        })
        .collect()
}

/// A stream whose chunks repeat its first one but for the text (as llama.cpp's, vLLM's and
/// Ollama's content chunks do): the text's string replaced by strings of every kind, by empty
/// ones, other values and broken strings, the chunk now and then changed elsewhere by a byte,
/// and chunks of another shape in between.
fn hole_stream(rng: &mut Rng) -> Vec<Vec<u8>> {
    let others = chunk_stream(rng);
    let Some(first) = others.first().cloned() else {
        return others;
    };
    let Some(text) = scan_chunk(&first).and_then(|c| c.content) else {
        return others;
    };
    let at = text.quoted().as_ptr() as usize - first.as_ptr() as usize;
    let after = at + text.quoted().len();
    let mut events = vec![first.clone()];
    for _ in 0..rng.below(8) + 2 {
        let mut value = Vec::new();
        match rng.below(12) {
            0 => value.extend_from_slice(b"\"\""),
            1 => {
                let mut s = String::new();
                render(&any(rng, 1), rng, &mut s);
                value.extend_from_slice(s.as_bytes());
            }
            2 => value.extend_from_slice(rng.pick(&[
                &b"\"ab"[..],
                b"\"a\" ",
                b" \"a\"",
                b"\"a\\\"",
                b"\"\\ud800\"",
                b"\"a\",\"b\"",
                b"\"\xc3\"",
                b"\"\x01\"",
            ])),
            3 => {
                if let Some(other) = others.get(rng.below(others.len())) {
                    events.push(other.clone());
                }
                continue;
            }
            _ => {
                let mut s = String::new();
                render(&text_value(rng), rng, &mut s);
                value.extend_from_slice(s.as_bytes());
            }
        }
        let mut bytes = first[..at].to_vec();
        bytes.extend_from_slice(&value);
        bytes.extend_from_slice(&first[after..]);
        if rng.chance(10) {
            let i = rng.below(bytes.len());
            bytes[i] = rng.pick(b"{}[]\",:\\0 x\xff");
        }
        events.push(bytes);
    }
    events
}

/// A string as [`text`] makes them, never `null`.
fn text_value(rng: &mut Rng) -> J {
    match text(rng) {
        J::Str(s) => J::Str(s),
        _ => J::Str("x".to_owned()),
    }
}

/// Reads a stream's chunks with one memo: each reads as it does alone (and as serde reads it);
/// how many took a run from the memo or filled its hole, and how many filled its hole.
fn agree_with_memo(events: &[Vec<u8>]) -> Result<(u64, u64), TestCaseError> {
    let mut memo = ChunkMemo::default();
    for data in events {
        let with = scan_chunk_with(data, Some(&mut memo));
        let alone = scan_chunk(data);
        prop_assert_eq!(with, alone, "{}", String::from_utf8_lossy(data));
        agree_chat(data)?;
    }
    Ok((memo.reused, memo.filled))
}

/// An SSE body of `events` (JSON chunks), each written as servers write them (`data: ` and a
/// blank line) or now and then otherwise: `data:` without its space, `\r\n` line ends, no
/// blank line, a comment or an `event:` line first, the data split over two `data:` lines;
/// `[DONE]` at the end, mostly.
fn sse_body(events: &[Vec<u8>], rng: &mut Rng) -> Vec<u8> {
    let mut body = Vec::new();
    for data in events {
        // Now and then one line end only: the next event's `data:` line joins this one.
        let end: &[u8] = match rng.below(40) {
            0 | 1 => b"\r\n\r\n",
            2 => b"\n",
            _ => b"\n\n",
        };
        match rng.below(40) {
            0 => body.extend_from_slice(b": keep-alive\n"),
            1 => body.extend_from_slice(b"event: error\n"),
            2 => body.extend_from_slice(b"event: chunk\n"),
            _ => {}
        }
        body.extend_from_slice(if rng.chance(5) { b"data:" } else { b"data: " });
        if rng.chance(5) && data.len() > 1 {
            let at = rng.below(data.len());
            body.extend_from_slice(&data[..at]);
            body.extend_from_slice(b"\ndata: ");
            body.extend_from_slice(&data[at..]);
        } else {
            body.extend_from_slice(data);
        }
        body.extend_from_slice(end);
    }
    if rng.chance(80) {
        body.extend_from_slice(b"data: [DONE]\n\n");
    }
    body
}

/// Reads `body`, cut at `cuts`, with [`ApiStream::feed`] and with the parser and
/// [`ApiStream::observe`]: the same facts and errors, the same stream and parser after; how
/// many events took the fast path.
fn agree_feed(body: &[u8], cuts: &[usize]) -> Result<u64, TestCaseError> {
    let (mut fast, mut fast_parser) = (ApiStream::new(Api::ChatCompletions), SseParser::new());
    let (mut slow, mut slow_parser) = (ApiStream::new(Api::ChatCompletions), SseParser::new());
    let (mut fast_seen, mut slow_seen) = (Vec::new(), Vec::new());
    let mut start = 0;
    for end in cuts.iter().copied().chain([body.len()]) {
        let end = end.clamp(start, body.len());
        let piece = &body[start..end];
        start = end;
        let a = fast.feed(&mut fast_parser, piece, |f| {
            fast_seen.push(format!("{f:?}"))
        });
        let b = slow_parser.feed(piece, |e| slow_seen.push(format!("{:?}", slow.observe(e))));
        prop_assert_eq!(format!("{a:?}"), format!("{b:?}"));
        if a.is_err() {
            break;
        }
    }
    let text = String::from_utf8_lossy(body);
    prop_assert_eq!(fast_seen, slow_seen, "{}", text);
    prop_assert_eq!(
        (fast.output_chunks(), fast.model(), fast.saw_terminal()),
        (slow.output_chunks(), slow.model(), slow.saw_terminal()),
        "{}",
        text
    );
    prop_assert_eq!(
        format!("{:?}", fast.report()),
        format!("{:?}", slow.report())
    );
    prop_assert_eq!(
        (
            fast_parser.events(),
            fast_parser.saw_done(),
            fast_parser.between_events()
        ),
        (
            slow_parser.events(),
            slow_parser.saw_done(),
            slow_parser.between_events()
        )
    );
    Ok(fast.fast)
}

/// A generated stream whose chunks repeat one but for the text, as an SSE body cut in up to
/// three places: `ApiStream::feed` agrees with the parser; how many events took its fast path.
fn agree_feed_generated(seed: u64) -> Result<u64, TestCaseError> {
    let rng = &mut Rng::new(seed);
    let mut events = hole_stream(rng);
    // Half the streams one line per chunk, as servers write them (the generator puts line
    // ends between tokens now and then).
    if rng.chance(50) {
        for event in &mut events {
            for b in event.iter_mut().filter(|b| matches!(b, b'\r' | b'\n')) {
                *b = b' ';
            }
        }
    }
    let body = sse_body(&events, rng);
    let mut cuts: Vec<usize> = (0..rng.below(4))
        .map(|_| rng.below(body.len() + 1))
        .collect();
    cuts.sort_unstable();
    agree_feed(&body, &cuts)
}

/// Checks that the fast reader `fast` reads `data` as serde's `serde` does, where it reads it
/// at all; whether it did.
fn agree_with_serde<'a, T: PartialEq + std::fmt::Debug, E: PartialEq + std::fmt::Debug>(
    data: &'a [u8],
    fast: impl FnOnce(&'a [u8]) -> Option<T>,
    serde: impl FnOnce(&'a [u8]) -> Result<T, E>,
) -> Result<bool, TestCaseError> {
    let Some(fast) = fast(data) else {
        return Ok(false);
    };
    prop_assert_eq!(Ok(fast), serde(data), "{}", String::from_utf8_lossy(data));
    Ok(true)
}

/// Checks one whole Chat body; whether the scanner read it.
fn agree_chat_body(body: &[u8]) -> Result<bool, TestCaseError> {
    agree_with_serde(body, whole::scan_chat_body, whole::read_chat_body_serde)
}

/// Checks one Messages stream event; whether the scanner read it.
fn agree_messages(data: &[u8]) -> Result<bool, TestCaseError> {
    agree_with_serde(data, messages::scan_event, messages::decode_event)
}

/// Checks one Responses stream event; whether the scanner read it.
fn agree_responses(data: &[u8]) -> Result<bool, TestCaseError> {
    agree_with_serde(data, responses::scan_event, responses::decode_event)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn chat_chunks_scan_as_serde_reads_them(seed in 1u64..) {
        agree_chat(&event(&mut Rng::new(seed), chat_chunk))?;
    }

    #[test]
    fn chat_chunks_read_with_a_memo_as_alone(seed in 1u64..) {
        agree_with_memo(&chunk_stream(&mut Rng::new(seed)))?;
    }

    #[test]
    fn chat_streams_fed_whole_read_as_event_by_event(seed in 1u64..) {
        agree_feed_generated(seed)?;
    }

    #[test]
    fn chat_chunks_that_fill_the_memos_hole_read_as_alone(seed in 1u64..) {
        agree_with_memo(&hole_stream(&mut Rng::new(seed)))?;
    }

    #[test]
    fn chat_bodies_scan_as_serde_reads_them(seed in 1u64..) {
        agree_chat_body(&event(&mut Rng::new(seed), chat_body))?;
    }

    #[test]
    fn messages_events_scan_as_serde_reads_them(seed in 1u64..) {
        agree_messages(&event(&mut Rng::new(seed), messages_event))?;
    }

    #[test]
    fn responses_events_scan_as_serde_reads_them(seed in 1u64..) {
        agree_responses(&event(&mut Rng::new(seed), responses_event))?;
    }
}

/// The generated events are not all declined: a good share takes the fast path.
#[test]
fn the_scanners_read_most_generated_events() -> Result<(), TestCaseError> {
    let mut taken = [0; 3];
    for seed in 1..=2000 {
        let rng = &mut Rng::new(seed);
        taken[0] += usize::from(agree_chat(&event(rng, chat_chunk))?);
        taken[1] += usize::from(agree_messages(&event(rng, messages_event))?);
        taken[2] += usize::from(agree_responses(&event(rng, responses_event))?);
    }
    // Each generated event has many fields each with a chance of a wrong type: about a
    // quarter (chat) to a half are valid.
    assert!(
        taken.iter().all(|&n| n > 300),
        "fast path taken {taken:?} of 2000"
    );
    let mut bodies = 0;
    for seed in 1..=2000 {
        bodies += usize::from(agree_chat_body(&event(&mut Rng::new(seed), chat_body))?);
    }
    assert!(bodies > 300, "whole bodies scanned {bodies} of 2000");
    let mut reused = 0;
    for seed in 1..=500 {
        reused += agree_with_memo(&chunk_stream(&mut Rng::new(seed)))?.0;
    }
    assert!(
        reused > 300,
        "runs taken from the memo {reused} times in 500 streams"
    );
    let mut filled = 0;
    for seed in 1..=500 {
        filled += agree_with_memo(&hole_stream(&mut Rng::new(seed)))?.1;
    }
    assert!(filled > 100, "holes filled {filled} times in 500 streams");
    let mut fast = 0;
    for seed in 1..=500 {
        fast += agree_feed_generated(seed)?;
    }
    assert!(
        fast > 30,
        "events read without the parser {fast} times in 500 streams"
    );
    Ok(())
}

/// Every event of the recorded transcripts (llama.cpp, vLLM, Ollama) takes the fast path and
/// agrees with serde.
#[test]
fn every_event_of_the_real_transcripts_takes_the_fast_path() -> Result<(), TestCaseError> {
    let chat = [
        include_str!("../../tests/transcripts/llama_cpp_chat_stream.sse"),
        include_str!("../../tests/transcripts/vllm_chat_stream.sse"),
        include_str!("../../tests/transcripts/ollama_chat_stream.sse"),
        include_str!("../../tests/transcripts/ollama_chat_stream_no_usage.sse"),
    ];
    let transcripts: [(&[&str], Agree); 3] = [
        (&chat, agree_chat),
        (
            &[include_str!(
                "../../tests/transcripts/llama_cpp_messages_stream.sse"
            )],
            agree_messages,
        ),
        (
            &[include_str!(
                "../../tests/transcripts/llama_cpp_responses_stream.sse"
            )],
            agree_responses,
        ),
    ];
    for (bodies, agree) in transcripts {
        for body in bodies {
            let mut events = Vec::new();
            SseParser::new()
                .feed(body.as_bytes(), |e| {
                    if let SseEvent::Data(d) = e {
                        events.push(d.to_vec());
                    }
                })
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            assert!(events.len() > 3, "{body}");
            for data in &events {
                prop_assert!(agree(data)?, "declined {}", String::from_utf8_lossy(data));
            }
            if bodies == chat {
                // Every chunk after the first repeats the first one's id, model, ...
                let (reused, filled) = agree_with_memo(&events)?;
                prop_assert_eq!(reused, events.len() as u64 - 1, "{}", body);
                // Their content chunks differ in the text alone.
                prop_assert!(filled > 0, "no hole filled in {}", body);
                // Fed whole, and in two pieces cut anywhere: as the parser reads it.
                let bytes = body.as_bytes();
                let fast = agree_feed(bytes, &[])?;
                prop_assert!(fast > 0, "no event read without the parser in {}", body);
                for cut in 0..=bytes.len() {
                    agree_feed(bytes, &[cut])?;
                }
            }
        }
    }
    Ok(())
}
