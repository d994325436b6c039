//! Asking the upstream for a stream's usage when the client did not: exact token counts for
//! every Chat Completions and Completions stream, while the client gets the stream it would have
//! had without the proxy.
//!
//! Data flow, one request:
//! 1. [`intake`](crate::intake): the scan of the request body ([`BodyScan`]) gives a
//!    [`UsagePlan`] ([`plan`]): not a stream, `Asked` (the client set
//!    `stream_options.include_usage: true` itself), `Ask(Edit)` (the bytes to insert or replace
//!    in the body: a `"stream_options":{"include_usage":true},` member after the object's `{`,
//!    or the same `stream_options` value with `include_usage: true`), or `Leave` (a
//!    `stream_options` the option cannot be added to without changing what else the stream
//!    carries, or that the scan could not keep). For `Ask`, the body is read to its end (within
//!    the capture limit and the buffer budget) so that it is whole in hand.
//! 2. [`forward`](crate::forward): with injection on ([`ProxyConfig::usage_injection`]), the
//!    upstream not known to refuse the option ([`Refusals`]), and the whole body read ahead and
//!    not compressed, the [`Edit`] is applied to the frames read ahead ([`edit_frames`]; the
//!    pieces not edited are shared, not copied); `Content-Length` is set to the new length and
//!    `Accept-Encoding` to `identity` (the stream is filtered as it passes; a compressed one
//!    could not be). The original frames are kept, with their own charge on the buffer budget,
//!    for one retry.
//! 3. Response head. A `400` or `422` whose body (its first [`REJECTION_BODY_LIMIT`] bytes, read
//!    before anything went to the client) names `stream_options` or `include_usage`
//!    ([`names_the_option`]) may be the upstream refusing the option: the original request is
//!    sent once more and its answer is the client's, whatever it is. When that answer is not a
//!    `400`/`422` too, the option was the trouble: the upstream (and API) is remembered as
//!    refusing it, and later requests to it go as the client sent them. Any other answer — a
//!    `400` about something else — is the client's own and goes to it as it came.
//! 4. A success `text/event-stream`: every frame is shown to the call's recorder as the upstream
//!    sent it (the usage chunk gives the server's counts: `tokens_counted` stays false), and the
//!    client gets it through telemetry-openai's
//!    [`IncludeUsageFilter`](telemetry_openai::protocol::IncludeUsageFilter), which takes out
//!    what the option added (the usage-only chunk, `"usage":null` members, llama.cpp's moved
//!    `timings`). Its `Content-Length`, if any, is dropped (the body is shorter).
//!
//! [`ProxyConfig::usage_injection`]: crate::ProxyConfig::usage_injection

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::StatusCode;
use hyper::body::Frame;
use telemetry_openai::protocol::{Api, STREAM_OPTIONS_MEMBER, UsageAsk, ask_for_usage};

use crate::scan::{BodyScan, StreamOptionsSeen};
use crate::upstream::{Routes, Upstream};

/// Bytes of a `400`/`422` answer to an injected request read to tell whether it refuses the
/// option (error bodies are small; a longer one is the client's).
pub(crate) const REJECTION_BODY_LIMIT: usize = 16 << 10;

/// What to do about a request's usage.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum UsagePlan {
    /// Not a streaming Chat Completions / Completions request read whole.
    #[default]
    NotAStream,
    /// The client asked for usage itself.
    Asked,
    /// Ask, with this edit of the body.
    Ask(Edit),
    /// Not asked, and left alone, for this reason.
    Leave(&'static str),
}

/// Bytes `at..at + remove` of a body replaced by `insert`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Edit {
    pub at: u64,
    pub remove: u64,
    pub insert: Vec<u8>,
}

/// The plan for a request of `api` whose body `scan` read to the end of its object.
pub(crate) fn plan(api: Api, scan: &BodyScan) -> UsagePlan {
    if !matches!(api, Api::ChatCompletions | Api::Completions) || !scan.is_done() || !scan.stream()
    {
        return UsagePlan::NotAStream;
    }
    match scan.stream_options() {
        StreamOptionsSeen::Absent => {
            let Some(open) = scan.object_at() else {
                return UsagePlan::Leave("the body's object was not found");
            };
            let mut insert = STREAM_OPTIONS_MEMBER.as_bytes().to_vec();
            insert.push(b',');
            UsagePlan::Ask(Edit {
                at: open + 1,
                remove: 0,
                insert,
            })
        }
        StreamOptionsSeen::Twice => UsagePlan::Leave("`stream_options` is given twice"),
        StreamOptionsSeen::Value { raw: None, .. } => {
            UsagePlan::Leave("`stream_options` is longer than the proxy reads")
        }
        StreamOptionsSeen::Value { end: None, .. } => {
            UsagePlan::Leave("`stream_options` did not end")
        }
        StreamOptionsSeen::Value {
            start,
            end: Some(end),
            raw: Some(raw),
        } => match ask_for_usage(Some(raw)) {
            UsageAsk::AlreadyAsked => UsagePlan::Asked,
            UsageAsk::ReplaceValue(insert) => UsagePlan::Ask(Edit {
                at: *start,
                remove: end - start,
                insert,
            }),
            UsageAsk::Leave(why) => UsagePlan::Leave(why),
            UsageAsk::AddMember => UsagePlan::Leave("`stream_options` was not read"),
        },
    }
}

/// `frames` (a whole body) with `edit` applied, and the new body's length; `None` when the
/// edit does not fall inside the body's data. Pieces before and after the edit are shared with
/// `frames`, not copied.
pub(crate) fn edit_frames(
    frames: &VecDeque<Frame<Bytes>>,
    edit: &Edit,
) -> Option<(VecDeque<Frame<Bytes>>, u64)> {
    let mut out = VecDeque::with_capacity(frames.len() + 2);
    let mut offset = 0u64;
    let mut len = 0u64;
    let (at, end) = (edit.at, edit.at.checked_add(edit.remove)?);
    let mut inserted = false;
    for frame in frames {
        let data = frame.data_ref()?;
        let (start, stop) = (offset, offset + data.len() as u64);
        offset = stop;
        if start < at {
            push(
                &mut out,
                &mut len,
                data.slice(..(at.min(stop) - start) as usize),
            );
        }
        if !inserted && at <= stop {
            push(&mut out, &mut len, Bytes::copy_from_slice(&edit.insert));
            inserted = true;
        }
        let from = end.max(start);
        if from < stop {
            push(&mut out, &mut len, data.slice((from - start) as usize..));
        }
    }
    (inserted && end <= offset).then_some((out, len))
}

fn push(out: &mut VecDeque<Frame<Bytes>>, len: &mut u64, data: Bytes) {
    if !data.is_empty() {
        *len += data.len() as u64;
        out.push_back(Frame::data(data));
    }
}

/// The whole data of `frames`, copied (for tests and messages).
#[cfg(test)]
pub(crate) fn joined(frames: &VecDeque<Frame<Bytes>>) -> Bytes {
    let mut all = bytes::BytesMut::new();
    for f in frames {
        if let Some(d) = f.data_ref() {
            all.extend_from_slice(d);
        }
    }
    all.freeze()
}

/// Whether an upstream's answer to an injected request may be it refusing the option: a `400`
/// or `422` (checked further with [`names_the_option`]).
pub(crate) fn may_refuse(status: StatusCode) -> bool {
    status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY
}

/// Whether an error body names the option (`stream_options` or `include_usage`, in any case):
/// OpenAI-style "Unrecognized request argument supplied: stream_options", a pydantic 422 with
/// `"loc": ["body", "stream_options"]`, llama.cpp's type errors.
pub(crate) fn names_the_option(body: &[u8]) -> bool {
    let lower = body.to_ascii_lowercase();
    [&b"stream_options"[..], b"include_usage"]
        .iter()
        .any(|name| memchr::memmem::find(&lower, name).is_some())
}

/// The upstreams (per API) known to refuse `stream_options`: their requests go as the client
/// sent them.
#[derive(Debug)]
pub(crate) struct Refusals {
    upstreams: Vec<(Arc<Upstream>, [AtomicBool; 2])>,
}

impl Refusals {
    /// None known yet, for the upstreams of `routes`.
    pub fn new(routes: &Routes) -> Refusals {
        Refusals {
            upstreams: routes
                .all()
                .into_iter()
                .map(|(_, u)| {
                    (
                        Arc::clone(u),
                        [AtomicBool::new(false), AtomicBool::new(false)],
                    )
                })
                .collect(),
        }
    }

    fn flag(&self, upstream: &Arc<Upstream>, api: Api) -> Option<&AtomicBool> {
        let slot = match api {
            Api::ChatCompletions => 0,
            Api::Completions => 1,
            _ => return None,
        };
        self.upstreams
            .iter()
            .find(|(u, _)| Arc::ptr_eq(u, upstream))
            .map(|(_, flags)| &flags[slot])
    }

    /// Whether `upstream` is known to refuse the option on `api`.
    pub fn refuses(&self, upstream: &Arc<Upstream>, api: Api) -> bool {
        self.flag(upstream, api)
            .is_none_or(|f| f.load(Ordering::Relaxed))
    }

    /// `upstream` refused the option on `api`; `true` the first time.
    pub fn remember(&self, upstream: &Arc<Upstream>, api: Api) -> bool {
        self.flag(upstream, api)
            .is_some_and(|f| !f.swap(true, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scanned(body: &[u8]) -> BodyScan {
        let mut scan = BodyScan::default();
        for piece in body.chunks(3) {
            scan.feed(piece);
        }
        scan
    }

    /// The body `plan` makes of `body`, fed to `edit_frames` in pieces of `piece` bytes.
    fn rewritten(body: &str, piece: usize) -> Option<String> {
        let UsagePlan::Ask(edit) = plan(Api::ChatCompletions, &scanned(body.as_bytes())) else {
            return None;
        };
        let frames: VecDeque<_> = body
            .as_bytes()
            .chunks(piece)
            .map(|c| Frame::data(Bytes::copy_from_slice(c)))
            .collect();
        let (out, len) = edit_frames(&frames, &edit).unwrap();
        let all = joined(&out);
        assert_eq!(all.len() as u64, len);
        Some(String::from_utf8(all.to_vec()).unwrap())
    }

    #[test]
    fn a_stream_without_the_option_gets_it_split_anywhere() {
        let cases = [
            (
                r#"{"model":"m","stream":true,"messages":[]}"#,
                r#"{"stream_options":{"include_usage":true},"model":"m","stream":true,"messages":[]}"#,
            ),
            (
                "\u{feff} \n{\"stream\":true,\"stream_options\":{\"include_obfuscation\":false}}",
                "\u{feff} \n{\"stream\":true,\"stream_options\":{\"include_obfuscation\":false,\"include_usage\":true}}",
            ),
            (
                r#"{"stream_options" : null , "stream":true}"#,
                r#"{"stream_options" : {"include_usage":true} , "stream":true}"#,
            ),
            (
                r#"{"stream":true,"stream_options":{"include_usage":false}}"#,
                r#"{"stream":true,"stream_options":{"include_usage":true}}"#,
            ),
        ];
        for (body, want) in cases {
            for piece in 1..=body.len() {
                assert_eq!(
                    rewritten(body, piece).as_deref(),
                    Some(want),
                    "{body} / {piece}"
                );
            }
            let json: serde_json::Value =
                serde_json::from_str(want.trim_start_matches('\u{feff}')).unwrap();
            assert_eq!(json["stream_options"]["include_usage"], true);
        }
    }

    #[test]
    fn what_is_not_asked_for_is_said() {
        let plan_of = |body: &str| plan(Api::ChatCompletions, &scanned(body.as_bytes()));
        assert_eq!(plan_of(r#"{"stream":false}"#), UsagePlan::NotAStream);
        assert_eq!(
            plan_of(r#"{"stream":true,"messages":["#),
            UsagePlan::NotAStream
        );
        assert_eq!(
            plan_of(r#"{"stream":true,"stream_options":{"include_usage":true}}"#),
            UsagePlan::Asked
        );
        for leave in [
            r#"{"stream":true,"stream_options":{},"stream_options":{}}"#,
            r#"{"stream":true,"stream_options":"yes"}"#,
            r#"{"stream":true,"stream_options":{"include_usage":1}}"#,
            r#"{"stream":true,"stream_options":{"continuous_usage_stats":true}}"#,
        ] {
            assert!(matches!(plan_of(leave), UsagePlan::Leave(_)), "{leave}");
        }
        let long = format!(
            r#"{{"stream":true,"stream_options":{{"x":"{}"}}}}"#,
            "a".repeat(2000)
        );
        assert!(matches!(plan_of(&long), UsagePlan::Leave(_)));
        let embeddings = plan(Api::Embeddings, &scanned(br#"{"stream":true}"#));
        assert_eq!(embeddings, UsagePlan::NotAStream);
    }

    #[test]
    fn refusals_are_told_by_status_and_what_the_body_names() {
        assert!(
            may_refuse(StatusCode::BAD_REQUEST) && may_refuse(StatusCode::UNPROCESSABLE_ENTITY)
        );
        assert!(
            !may_refuse(StatusCode::UNAUTHORIZED) && !may_refuse(StatusCode::INTERNAL_SERVER_ERROR)
        );
        assert!(names_the_option(
            br#"{"error":{"message":"Unrecognized request argument supplied: stream_options"}}"#
        ));
        assert!(names_the_option(
            br#"{"detail":[{"loc":["body","Stream_Options"]}]}"#
        ));
        assert!(!names_the_option(
            br#"{"error":{"message":"messages is required"}}"#
        ));
        let routes = Routes::new(Upstream::parse("http://a:1").unwrap());
        let up = Arc::clone(routes.default_upstream());
        let refusals = Refusals::new(&routes);
        assert!(!refusals.refuses(&up, Api::ChatCompletions));
        assert!(refusals.remember(&up, Api::ChatCompletions));
        assert!(!refusals.remember(&up, Api::ChatCompletions));
        assert!(refusals.refuses(&up, Api::ChatCompletions));
        assert!(!refusals.refuses(&up, Api::Completions));
    }
}
