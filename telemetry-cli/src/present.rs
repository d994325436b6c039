//! Presentation shared by several commands: the stats overview and per-group table (`stats`,
//! and the summary `demo` and `run` print after recording) and the description of a time range
//! (`stats`, `report`).

use std::fmt::Write as _;

use telemetry_agg::AggregatedStats;
use telemetry_core::TimeRange;

use crate::cli::StatsGroup;
use crate::output::{Align, Table, count, joules, number, seconds, usd};
use crate::timearg::format_time;

/// One line of the per-group table, whatever the grouping.
struct GroupRow<'a> {
    label: &'a str,
    calls: u64,
    errors: u64,
    tokens: u64,
    cost: f64,
    latency: [Option<f64>; 3],
    ttft: [Option<f64>; 2],
    tokens_per_s: f64,
    energy: f64,
    joules_per_token: Option<f64>,
    /// Σ the server's own prefill and decode times, milliseconds.
    server_ms: [f64; 2],
}

macro_rules! group_row {
    ($s:expr, $label:ident) => {
        GroupRow {
            label: &$s.$label,
            calls: $s.call_count,
            errors: $s.error_count,
            tokens: $s.total_tokens,
            cost: $s.total_cost,
            latency: [$s.latency_p50, $s.latency_p95, $s.latency_p99],
            ttft: [$s.ttft_p50, $s.ttft_p95],
            tokens_per_s: $s.avg_throughput_tok_per_sec,
            energy: $s.total_energy_joules,
            joules_per_token: $s.energy_per_output_token_joules,
            server_ms: [$s.total_server_prefill_ms, $s.total_server_decode_ms],
        }
    };
}

/// The overview lines and the table, as text.
pub fn render(stats: &AggregatedStats, range: &TimeRange, by: StatsGroup) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "{}", describe_range(range));
    if stats.total_calls == 0 {
        text.push_str("no calls recorded in this range\n");
        return text;
    }
    let _ = writeln!(
        text,
        "calls   {} ({} errors)",
        count(stats.total_calls),
        count(stats.error_count)
    );
    let _ = writeln!(
        text,
        "tokens  {} ({} prompt, {} completion)",
        count(stats.total_tokens),
        count(stats.prompt_tokens),
        count(stats.completion_tokens)
    );
    let _ = writeln!(text, "cost    {}", usd(stats.total_cost));
    if let [Some(p50), Some(p95), Some(p99)] =
        [stats.latency_p50, stats.latency_p95, stats.latency_p99]
    {
        let _ = writeln!(
            text,
            "latency p50 {}  p95 {}  p99 {}",
            seconds(p50),
            seconds(p95),
            seconds(p99)
        );
    }
    if let (Some(p50), Some(p95)) = (stats.ttft_p50, stats.ttft_p95) {
        let _ = writeln!(text, "ttft    p50 {}  p95 {}", seconds(p50), seconds(p95));
    }
    if let (Some(p50), Some(p95)) = (stats.itl_p50, stats.itl_p95) {
        let _ = writeln!(
            text,
            "itl     p50 {}  p95 {}  (per-call mean inter-token latency)",
            seconds(p50 / 1e3),
            seconds(p95 / 1e3)
        );
    }
    if stats.energy_per_output_token_joules.is_some() || stats.total_energy_joules > 0.0 {
        let per_token = stats
            .energy_per_output_token_joules
            .map(|j| format!(", {} J per output token", number(j)))
            .unwrap_or_default();
        let _ = writeln!(
            text,
            "energy  {}{per_token}",
            joules(stats.total_energy_joules)
        );
    }
    text.push('\n');
    let (heading, rows): (&str, Vec<GroupRow<'_>>) = match by {
        StatsGroup::Model => (
            "model",
            stats
                .per_model
                .iter()
                .map(|s| group_row!(s, model_id))
                .collect(),
        ),
        StatsGroup::Engine => (
            "engine",
            stats
                .per_engine
                .iter()
                .map(|s| group_row!(s, engine))
                .collect(),
        ),
        StatsGroup::Agent => (
            "agent",
            stats
                .per_agent
                .iter()
                .map(|s| group_row!(s, agent))
                .collect(),
        ),
    };
    text.push_str(&group_table(heading, &rows).render());
    text
}

fn group_table(heading: &str, rows: &[GroupRow<'_>]) -> Table {
    let mut table = Table::new(&[
        (heading, Align::Left),
        ("calls", Align::Right),
        ("errors", Align::Right),
        ("tokens", Align::Right),
        ("cost", Align::Right),
        ("p50", Align::Right),
        ("p95", Align::Right),
        ("p99", Align::Right),
        ("ttft p50", Align::Right),
        ("ttft p95", Align::Right),
        ("tok/s", Align::Right),
        ("energy", Align::Right),
        ("J/tok", Align::Right),
        ("srv prefill", Align::Right),
        ("srv decode", Align::Right),
    ]);
    for r in rows {
        let has_energy = r.joules_per_token.is_some() || r.energy > 0.0;
        table.push(vec![
            Some(if r.label.is_empty() {
                "(none)".to_string()
            } else {
                r.label.to_string()
            }),
            Some(count(r.calls)),
            Some(count(r.errors)),
            Some(count(r.tokens)),
            Some(usd(r.cost)),
            r.latency[0].map(seconds),
            r.latency[1].map(seconds),
            r.latency[2].map(seconds),
            r.ttft[0].map(seconds),
            r.ttft[1].map(seconds),
            (r.tokens_per_s > 0.0).then(|| number(r.tokens_per_s)),
            has_energy.then(|| joules(r.energy)),
            r.joules_per_token.map(number),
            (r.server_ms[0] > 0.0).then(|| seconds(r.server_ms[0] / 1e3)),
            (r.server_ms[1] > 0.0).then(|| seconds(r.server_ms[1] / 1e3)),
        ]);
    }
    table
}

/// `all time`, `since X`, `until Y` or `X .. Y`.
pub(crate) fn describe_range(range: &TimeRange) -> String {
    match (range.since_bound(), range.until_bound()) {
        (None, None) => "all time".to_string(),
        (Some(s), None) => format!("since {}", format_time(s)),
        (None, Some(u)) => format!("until {}", format_time(u)),
        (Some(s), Some(u)) => format!("{} .. {}", format_time(s), format_time(u)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use telemetry_agg::{EngineStats, ModelStats};

    fn model(name: &str, calls: u64, energy: Option<f64>) -> ModelStats {
        ModelStats {
            model_id: name.into(),
            call_count: calls,
            total_tokens: calls * 10,
            latency_p50: Some(0.5),
            latency_p95: Some(0.9),
            latency_p99: Some(1.5),
            total_energy_joules: energy.unwrap_or(0.0),
            energy_per_output_token_joules: energy.map(|e| e / 100.0),
            ..ModelStats::default()
        }
    }

    #[test]
    fn columns_without_data_are_left_out() {
        let stats = AggregatedStats {
            total_calls: 3,
            latency_p50: Some(0.5),
            latency_p95: Some(0.9),
            latency_p99: Some(1.5),
            per_model: vec![model("a", 2, None), model("b", 1, None)],
            ..AggregatedStats::default()
        };
        let text = render(&stats, &TimeRange::all(), StatsGroup::Model);
        assert!(text.starts_with("all time\n"), "{text}");
        assert!(text.contains("latency p50 500.0 ms"), "{text}");
        let header = text.lines().find(|l| l.starts_with("model")).unwrap();
        assert!(
            header.contains("p99") && header.contains("calls"),
            "{header}"
        );
        assert!(
            !header.contains("energy") && !header.contains("ttft"),
            "{header}"
        );
        assert!(!text.contains("energy  "), "{text}");
    }

    #[test]
    fn energy_shows_when_any_group_has_it() {
        let stats = AggregatedStats {
            total_calls: 3,
            total_energy_joules: 50.0,
            energy_per_output_token_joules: Some(0.5),
            per_model: vec![model("a", 2, Some(50.0)), model("b", 1, None)],
            per_engine: vec![EngineStats {
                engine: String::new(),
                call_count: 3,
                ..EngineStats::default()
            }],
            ..AggregatedStats::default()
        };
        let text = render(&stats, &TimeRange::all(), StatsGroup::Model);
        assert!(
            text.contains("energy  50.0 J, 0.500 J per output token"),
            "{text}"
        );
        let header = text.lines().find(|l| l.starts_with("model")).unwrap();
        assert!(
            header.contains("energy") && header.contains("J/tok"),
            "{header}"
        );
        let by_engine = render(&stats, &TimeRange::all(), StatsGroup::Engine);
        assert!(by_engine.contains("(none)"), "{by_engine}");
    }

    #[test]
    fn server_times_show_when_any_group_has_them() {
        let mut timed = model("a", 2, None);
        timed.total_server_prefill_ms = 1_500.0;
        timed.total_server_decode_ms = 250.0;
        let stats = AggregatedStats {
            total_calls: 3,
            per_model: vec![timed, model("b", 1, None)],
            ..AggregatedStats::default()
        };
        let text = render(&stats, &TimeRange::all(), StatsGroup::Model);
        let header = text.lines().find(|l| l.starts_with("model")).unwrap();
        assert!(
            header.contains("srv prefill") && header.contains("srv decode"),
            "{header}"
        );
        let row = text.lines().find(|l| l.starts_with("a ")).unwrap();
        assert!(row.contains("1.50 s") && row.contains("250.0 ms"), "{row}");
        let untimed = AggregatedStats {
            total_calls: 1,
            per_model: vec![model("b", 1, None)],
            ..AggregatedStats::default()
        };
        let text = render(&untimed, &TimeRange::all(), StatsGroup::Model);
        assert!(!text.contains("srv "), "{text}");
    }

    #[test]
    fn empty_range_says_so() {
        let range = TimeRange::new(Some(1_764_302_400.0), None).unwrap();
        let text = render(&AggregatedStats::default(), &range, StatsGroup::Model);
        assert_eq!(
            text,
            "since 2025-11-28T04:00:00Z\nno calls recorded in this range\n"
        );
    }
}
