//! The HTML page: header, tiles, the per-group table and the chart sections.
//!
//! Every number shown also sits, unformatted, in a `data-value` attribute next to a `data-field`
//! that names its `stats --format json` field, so tests (and scripts) can check the page against
//! the stats without parsing the display text. Every string from the records goes through
//! [`escape`].

use std::fmt::Write as _;

use telemetry_agg::{AggregatedStats, SeriesPoint};

use super::charts::{self, ChartError, Line};
use super::data::ReportData;
use super::format::{
    axis_number, axis_seconds, axis_usd, bucket_name, escape, escape_exact, time_label,
};
use crate::cli::StatsGroup;
use crate::error::CliError;
use crate::output::{count, joules, number, seconds, usd};
use crate::present::describe_range;
use crate::timearg::format_time;

/// Groups drawn as lines in the per-group charts (the ones with the most calls); the table
/// lists them all.
pub const MAX_LINES: usize = charts::PALETTE.len();
/// Bars in the per-model bar charts.
const MAX_BARS: usize = 25;

const STYLE: &str = include_str!("report.css");

/// The whole page.
pub fn render(data: &ReportData) -> Result<String, CliError> {
    let mut html = String::with_capacity(256 * 1024);
    let title = format!(
        "Telemetry report: {}",
        data.db.file_name().map_or_else(
            || data.db.display().to_string(),
            |n| n.to_string_lossy().into_owned()
        )
    );
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"color-scheme\" content=\"light dark\">\n<title>{}</title>\n\
         <style>\n{STYLE}</style>\n</head>\n<body>\n<main>\n",
        escape(&title)
    );
    header(&mut html, data);
    if data.stats.total_calls == 0 {
        html.push_str(
            "<section id=\"empty\"><p class=\"note\">No calls recorded in this range: \
             nothing to chart.</p></section>\n",
        );
    } else {
        tiles(&mut html, &data.stats);
        group_table(&mut html, data);
        time_charts(&mut html, data).map_err(chart_error)?;
        model_bars(&mut html, &data.stats).map_err(chart_error)?;
        histogram(&mut html, data).map_err(chart_error)?;
    }
    let _ = write!(
        html,
        "<footer><p>Made by <code>telemetry report</code> {} from the summaries of the \
         database: no raw rows read, nothing fetched over the network.</p></footer>\n\
         </main>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION")
    );
    Ok(html)
}

fn chart_error(e: ChartError) -> CliError {
    CliError::Chart(e)
}

fn group_noun(by: StatsGroup) -> &'static str {
    match by {
        StatsGroup::Model => "model",
        StatsGroup::Engine => "engine",
        StatsGroup::Agent => "agent",
    }
}

fn header(html: &mut String, data: &ReportData) {
    let extent = data.extent.map_or_else(
        || "no records".to_owned(),
        |(a, b)| format!("{} .. {}", format_time(a), format_time(b)),
    );
    let _ = write!(
        html,
        "<header id=\"header\">\n<h1>Inference telemetry report</h1>\n<dl class=\"meta\">\n\
         <div><dt>File</dt><dd id=\"db\">{}</dd></div>\n\
         <div><dt>Range</dt><dd id=\"range\">{}</dd></div>\n\
         <div><dt>Records</dt><dd id=\"records\" data-field=\"total_calls\" data-value=\"{}\">{} \
         ({})</dd></div>\n\
         <div><dt>Charts</dt><dd>{} buckets (UTC), per {}</dd></div>\n\
         <div><dt>Generated</dt><dd id=\"generated\">{}</dd></div>\n</dl>\n</header>\n",
        escape(&data.db.display().to_string()),
        escape(&describe_range(&data.range)),
        data.stats.total_calls,
        count(data.stats.total_calls),
        escape(&extent),
        bucket_name(data.bucket),
        group_noun(data.by),
        escape(&format_time(data.generated_at)),
    );
}

/// One tile: label, display text, and the JSON field and raw value behind it (none when the
/// range has no such measurement, which the text then says).
fn tile(html: &mut String, label: &str, field: &str, value: Option<f64>, text: &str) {
    let data = value.map_or_else(String::new, |v| {
        format!(" data-field=\"{field}\" data-value=\"{v}\"")
    });
    let class = if value.is_some() {
        "tile"
    } else {
        "tile missing"
    };
    let _ = writeln!(
        html,
        "<div class=\"{class}\"{data}><span class=\"label\">{label}</span>\
         <span class=\"value\">{}</span></div>",
        escape(text)
    );
}

fn tiles(html: &mut String, s: &AggregatedStats) {
    html.push_str("<section id=\"tiles\" aria-label=\"Totals of the range\">\n");
    tile(
        html,
        "Calls",
        "total_calls",
        Some(s.total_calls as f64),
        &count(s.total_calls),
    );
    let rate = s.error_count as f64 / s.total_calls.max(1) as f64;
    tile(
        html,
        "Error rate",
        "error_count",
        Some(s.error_count as f64),
        &format!("{:.2} % ({})", rate * 100.0, count(s.error_count)),
    );
    tile(
        html,
        "Tokens",
        "total_tokens",
        Some(s.total_tokens as f64),
        &count(s.total_tokens),
    );
    let has_cost = s.total_cost > 0.0;
    tile(
        html,
        "Cost",
        "total_cost",
        has_cost.then_some(s.total_cost),
        &if has_cost {
            usd(s.total_cost)
        } else {
            "no cost recorded".to_owned()
        },
    );
    let has_energy = s.energy_per_output_token_joules.is_some() || s.total_energy_joules > 0.0;
    tile(
        html,
        "GPU energy",
        "total_energy_joules",
        has_energy.then_some(s.total_energy_joules),
        &if has_energy {
            joules(s.total_energy_joules)
        } else {
            "no energy measured".to_owned()
        },
    );
    tile(
        html,
        "J per output token",
        "energy_per_output_token_joules",
        s.energy_per_output_token_joules,
        &s.energy_per_output_token_joules
            .map_or_else(|| "no energy measured".to_owned(), number),
    );
    for (label, field, v) in [
        ("Latency p50", "latency_p50", s.latency_p50),
        ("Latency p95", "latency_p95", s.latency_p95),
        ("Latency p99", "latency_p99", s.latency_p99),
        ("TTFT p50", "ttft_p50", s.ttft_p50),
        ("TTFT p95", "ttft_p95", s.ttft_p95),
    ] {
        let text = v.map_or_else(|| "none recorded".to_owned(), seconds);
        tile(html, label, field, v, &text);
    }
    html.push_str("</section>\n");
}

/// One row of the per-group table, whatever the grouping.
struct Row<'a> {
    label: &'a str,
    cells: [(&'static str, Option<f64>, Option<String>); 12],
}

macro_rules! row {
    ($s:expr, $label:ident) => {{
        let s = $s;
        let has_energy = s.energy_per_output_token_joules.is_some() || s.total_energy_joules > 0.0;
        let t = |v: Option<f64>| (v, v.map(seconds));
        let (l50, l50t) = t(s.latency_p50);
        let (l95, l95t) = t(s.latency_p95);
        let (l99, l99t) = t(s.latency_p99);
        let (t50, t50t) = t(s.ttft_p50);
        let (t95, t95t) = t(s.ttft_p95);
        let tps = (s.avg_throughput_tok_per_sec > 0.0).then_some(s.avg_throughput_tok_per_sec);
        Row {
            label: &s.$label,
            cells: [
                (
                    "call_count",
                    Some(s.call_count as f64),
                    Some(count(s.call_count)),
                ),
                (
                    "error_count",
                    Some(s.error_count as f64),
                    Some(count(s.error_count)),
                ),
                (
                    "total_tokens",
                    Some(s.total_tokens as f64),
                    Some(count(s.total_tokens)),
                ),
                ("total_cost", Some(s.total_cost), Some(usd(s.total_cost))),
                ("latency_p50", l50, l50t),
                ("latency_p95", l95, l95t),
                ("latency_p99", l99, l99t),
                ("ttft_p50", t50, t50t),
                ("ttft_p95", t95, t95t),
                ("avg_throughput_tok_per_sec", tps, tps.map(number)),
                (
                    "total_energy_joules",
                    has_energy.then_some(s.total_energy_joules),
                    has_energy.then(|| joules(s.total_energy_joules)),
                ),
                (
                    "energy_per_output_token_joules",
                    s.energy_per_output_token_joules,
                    s.energy_per_output_token_joules.map(number),
                ),
            ],
        }
    }};
}

const COLUMNS: [&str; 12] = [
    "calls", "errors", "tokens", "cost", "p50", "p95", "p99", "TTFT p50", "TTFT p95", "tok/s",
    "energy", "J/tok",
];

fn group_table(html: &mut String, data: &ReportData) {
    let s = &data.stats;
    let rows: Vec<Row<'_>> = match data.by {
        StatsGroup::Model => s.per_model.iter().map(|m| row!(m, model_id)).collect(),
        StatsGroup::Engine => s.per_engine.iter().map(|m| row!(m, engine)).collect(),
        StatsGroup::Agent => s.per_agent.iter().map(|m| row!(m, agent)).collect(),
    };
    let noun = group_noun(data.by);
    let _ = write!(
        html,
        "<section id=\"groups\">\n<h2>Per {noun}</h2>\n<div class=\"scroll\">\n<table>\n\
         <caption>Calls, tokens, cost, latency (p50/p95/p99), TTFT, throughput and GPU energy \
         per {noun}, by calls</caption>\n<thead><tr><th scope=\"col\">{noun}</th>"
    );
    for c in COLUMNS {
        let _ = write!(html, "<th scope=\"col\">{c}</th>");
    }
    html.push_str("</tr></thead>\n<tbody>\n");
    for r in &rows {
        let _ = write!(
            html,
            "<tr><th scope=\"row\" data-group=\"{0}\">{1}</th>",
            escape_exact(r.label),
            escape(display_label(r.label))
        );
        for (field, value, text) in &r.cells {
            match (value, text) {
                (Some(v), Some(t)) => {
                    let _ = write!(
                        html,
                        "<td data-field=\"{field}\" data-value=\"{v}\">{}</td>",
                        escape(t)
                    );
                }
                _ => {
                    let _ = write!(
                        html,
                        "<td class=\"none\" data-field=\"{field}\"><span aria-label=\"none\">—</span></td>"
                    );
                }
            }
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</tbody>\n</table>\n</div>\n</section>\n");
}

fn display_label(label: &str) -> &str {
    if label.is_empty() { "(none)" } else { label }
}

/// A chart figure: caption, the SVG (with a `<title>`), an HTML legend, and a note.
fn figure(html: &mut String, id: &str, caption: &str, svg: &str, legend: &[(usize, &str)]) {
    let _ = write!(
        html,
        "<figure class=\"chart\" id=\"{id}\">\n<figcaption>{}</figcaption>\n\
         <div class=\"svg\" role=\"img\" aria-label=\"{}\">",
        escape(caption),
        escape(caption)
    );
    // A <title> inside the SVG gives a hover tooltip and an accessible name without script.
    match svg.find('>') {
        Some(i) => {
            html.push_str(&svg[..=i]);
            let _ = write!(html, "<title>{}</title>", escape(caption));
            html.push_str(&svg[i + 1..]);
        }
        None => html.push_str(svg),
    }
    html.push_str("</div>\n");
    if !legend.is_empty() {
        html.push_str("<ul class=\"legend\">");
        for (color, label) in legend {
            let _ = write!(
                html,
                "<li><span class=\"swatch\" style=\"background:{}\"></span>{}</li>",
                charts::palette_hex(*color),
                escape(display_label(label))
            );
        }
        html.push_str("</ul>\n");
    }
    html.push_str("</figure>\n");
}

/// A chart's place when there is nothing to draw.
fn no_chart(html: &mut String, id: &str, caption: &str, why: &str) {
    let _ = writeln!(
        html,
        "<figure class=\"chart empty\" id=\"{id}\">\n<figcaption>{}</figcaption>\n\
         <p class=\"note\">{}</p>\n</figure>",
        escape(caption),
        escape(why)
    );
}

type Metric = fn(&SeriesPoint) -> Option<f64>;

/// The per-group time charts: one line per group (the [`MAX_LINES`] groups with most calls).
struct GroupChart {
    id: &'static str,
    caption: &'static str,
    metric: Metric,
    y_label: fn(f64) -> String,
    missing: &'static str,
}

const GROUP_CHARTS: [GroupChart; 6] = [
    GroupChart {
        id: "chart-calls",
        caption: "Calls per bucket",
        metric: |p| Some(p.call_count as f64),
        y_label: axis_number,
        missing: "No calls.",
    },
    GroupChart {
        id: "chart-latency-group",
        caption: "Latency p95 (seconds)",
        metric: |p| p.latency_p95,
        y_label: axis_seconds,
        missing: "No latency recorded.",
    },
    GroupChart {
        id: "chart-ttft",
        caption: "TTFT p95 (seconds)",
        metric: |p| p.ttft_p95,
        y_label: axis_seconds,
        missing: "No TTFT recorded in this range (only streamed calls have one).",
    },
    GroupChart {
        id: "chart-throughput",
        caption: "Output tokens per second (Σ completion tokens / Σ latency)",
        metric: |p| {
            (p.total_latency > 0.0 && p.completion_tokens > 0)
                .then(|| p.completion_tokens as f64 / p.total_latency)
        },
        y_label: axis_number,
        missing: "No output tokens recorded.",
    },
    GroupChart {
        id: "chart-energy",
        caption: "GPU energy per output token (J)",
        metric: |p| p.energy_per_output_token_joules,
        y_label: axis_number,
        missing: "No GPU energy measured in this range.",
    },
    GroupChart {
        id: "chart-cost",
        caption: "Cost per bucket (USD)",
        metric: |p| (p.total_cost > 0.0).then_some(p.total_cost),
        y_label: axis_usd,
        missing: "No cost recorded in this range.",
    },
];

fn time_charts(html: &mut String, data: &ReportData) -> Result<(), ChartError> {
    let s = &data.stats;
    let groups: Vec<&str> = match data.by {
        StatsGroup::Model => s.per_model.iter().map(|g| g.model_id.as_str()).collect(),
        StatsGroup::Engine => s.per_engine.iter().map(|g| g.engine.as_str()).collect(),
        StatsGroup::Agent => s.per_agent.iter().map(|g| g.agent.as_str()).collect(),
    };
    let shown = &groups[..groups.len().min(MAX_LINES)];
    let width = data.bucket.width_seconds() as f64;
    let bucket = data.bucket;
    let time = move |x: f64| time_label(x, bucket);
    let _ = write!(
        html,
        "<section id=\"charts\">\n<h2>Over time</h2>\n<p class=\"note\">{} buckets, UTC; \
         one line per {}",
        bucket_name(data.bucket),
        group_noun(data.by)
    );
    if groups.len() > shown.len() {
        let _ = write!(
            html,
            " for the {} with the most calls (of {}; the table lists all)",
            shown.len(),
            groups.len()
        );
    }
    html.push_str(".</p>\n<div class=\"grid\">\n");

    // All calls: latency percentiles.
    let pct: [(&str, Metric); 3] = [
        ("p50", |p| p.latency_p50),
        ("p95", |p| p.latency_p95),
        ("p99", |p| p.latency_p99),
    ];
    let lines: Vec<Line> = pct
        .iter()
        .enumerate()
        .map(|(i, (_, m))| Line {
            points: data
                .overall
                .iter()
                .filter_map(|p| m(p).map(|v| (p.bucket_start as f64, v)))
                .collect(),
            color: i,
        })
        .collect();
    let caption = "Latency p50 / p95 / p99, all calls (seconds)";
    let svg = charts::time_chart("latency", &lines, width, &time, &axis_seconds)?;
    let legend: Vec<(usize, &str)> = pct.iter().enumerate().map(|(i, p)| (i, p.0)).collect();
    figure(html, "chart-latency", caption, &svg, &legend);

    for c in &GROUP_CHARTS {
        let mut lines = Vec::new();
        let mut legend = Vec::new();
        let mut without = Vec::new();
        for (i, g) in shown.iter().enumerate() {
            let points: Vec<(f64, f64)> = data
                .grouped
                .iter()
                .filter(|p| p.group.as_deref() == Some(*g))
                .filter_map(|p| (c.metric)(p).map(|v| (p.bucket_start as f64, v)))
                .collect();
            if points.is_empty() {
                without.push(display_label(g));
            } else {
                lines.push(Line { points, color: i });
                legend.push((i, *g));
            }
        }
        if lines.is_empty() {
            no_chart(html, c.id, c.caption, c.missing);
            continue;
        }
        let svg = charts::time_chart(c.id, &lines, width, &time, &c.y_label)?;
        figure(html, c.id, c.caption, &svg, &legend);
        if !without.is_empty() {
            let _ = writeln!(
                html,
                "<p class=\"note\">{} — no data for: {}</p>",
                escape(c.caption),
                escape(&without.join(", "))
            );
        }
    }
    html.push_str("</div>\n</section>\n");
    Ok(())
}

fn model_bars(html: &mut String, s: &AggregatedStats) -> Result<(), ChartError> {
    html.push_str("<section id=\"models\">\n<h2>Per model</h2>\n<div class=\"grid\">\n");
    let joules: Vec<(String, f64)> = s
        .per_model
        .iter()
        .filter_map(|m| {
            m.energy_per_output_token_joules
                .map(|j| (m.model_id.clone(), j))
        })
        .take(MAX_BARS)
        .collect();
    let caption = "GPU energy per output token, J";
    if joules.is_empty() {
        no_chart(
            html,
            "chart-joules-per-token",
            caption,
            "No GPU energy measured in this range.",
        );
    } else {
        let svg = charts::bar_chart("joules per token", &joules, &axis_number)?;
        figure(html, "chart-joules-per-token", caption, &svg, &[]);
    }
    let dollars: Vec<(String, f64)> = s
        .per_model
        .iter()
        .filter(|m| m.total_cost > 0.0 && m.total_tokens > 0)
        .map(|m| {
            (
                m.model_id.clone(),
                m.total_cost / m.total_tokens as f64 * 1e6,
            )
        })
        .take(MAX_BARS)
        .collect();
    let caption = "Cost per 1 M tokens (prompt + completion), USD";
    if dollars.is_empty() {
        no_chart(
            html,
            "chart-cost-per-million",
            caption,
            "No cost recorded in this range.",
        );
    } else {
        let svg = charts::bar_chart("cost per million tokens", &dollars, &axis_usd)?;
        figure(html, "chart-cost-per-million", caption, &svg, &[]);
    }
    html.push_str("</div>\n");
    if s.per_model.len() > MAX_BARS {
        let _ = writeln!(
            html,
            "<p class=\"note\">The {MAX_BARS} models with the most calls (of {}).</p>",
            s.per_model.len()
        );
    }
    html.push_str("</section>\n");
    Ok(())
}

fn histogram(html: &mut String, data: &ReportData) -> Result<(), ChartError> {
    let h = &data.histogram;
    html.push_str("<section id=\"latency\">\n<h2>Latency distribution</h2>\n");
    let caption = "Calls by latency (log scale), from the merged quantile sketches";
    if h.bins.is_empty() {
        no_chart(
            html,
            "chart-histogram",
            caption,
            "No latency recorded in this range.",
        );
    } else {
        let bins: Vec<charts::Bin> = h.bins.iter().map(|b| (b.lower, b.upper, b.count)).collect();
        let svg = charts::histogram_chart("latency histogram", &bins, &axis_seconds)?;
        figure(html, "chart-histogram", caption, &svg, &[]);
        let _ = writeln!(
            html,
            "<p class=\"note\" data-field=\"histogram_count\" data-value=\"{}\">{} calls in {} \
             bins from {} to {}.</p>",
            h.count,
            count(h.count),
            h.bins.len(),
            h.min.map(seconds).unwrap_or_default(),
            h.max.map(seconds).unwrap_or_default()
        );
    }
    html.push_str("</section>\n");
    Ok(())
}
