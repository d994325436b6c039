//! The SSE parser gives the same events however the body is split and whichever line ends it
//! uses, for arbitrary event data.

use proptest::prelude::*;
use telemetry_openai::protocol::{SseEvent, SseParser};

#[derive(Debug, Clone, PartialEq)]
enum Ev {
    Data(Vec<u8>),
    Done,
}

fn line_end() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("\n"), Just("\r\n"), Just("\r")]
}

/// Event data: lines of printable text without line ends (a line may be empty).
fn data_lines() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec("[ -~]{0,40}", 1..4)
}

prop_compose! {
    fn body()(events in prop::collection::vec((data_lines(), line_end(), any::<bool>()), 0..12),
              done in any::<bool>())
        -> (Vec<u8>, Vec<Ev>) {
        let mut body = Vec::new();
        let mut expected = Vec::new();
        for (lines, end, comment) in events {
            if comment {
                body.extend_from_slice(b": ping");
                body.extend_from_slice(end.as_bytes());
            }
            for line in &lines {
                body.extend_from_slice(b"data: ");
                body.extend_from_slice(line.as_bytes());
                body.extend_from_slice(end.as_bytes());
            }
            body.extend_from_slice(end.as_bytes());
            let joined = lines.join("\n");
            expected.push(if joined.trim() == "[DONE]" { Ev::Done } else { Ev::Data(joined.into_bytes()) });
        }
        if done {
            body.extend_from_slice(b"data: [DONE]\n\n");
            expected.push(Ev::Done);
        }
        (body, expected)
    }
}

proptest! {
    #[test]
    fn any_split_gives_the_events((body, expected) in body(),
                                  cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8)) {
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(body.len() + 1)).collect();
        cuts.sort_unstable();
        let mut parser = SseParser::new();
        let mut seen = Vec::new();
        let mut push = |e: SseEvent<'_>| seen.push(match e {
            SseEvent::Data(d) => Ev::Data(d.to_vec()),
            SseEvent::Done => Ev::Done,
            SseEvent::Error(d) => Ev::Data(d.to_vec()),
        });
        let mut from = 0;
        for cut in cuts.into_iter().chain([body.len()]) {
            parser.feed(&body[from..cut], &mut push).unwrap();
            from = cut;
        }
        parser.finish(&mut push).unwrap();
        prop_assert_eq!(seen, expected);
    }
}
