//! The report's charts as SVG text, drawn with `plotters`' SVG backend.
//!
//! Text is written as SVG `<text>` (escaped by the backend) and laid out with plotters' built-in
//! size estimate, so no font file is read. Colours are fixed values that the page's dark-mode CSS
//! recolours by attribute ([`INK`], [`AXIS`], [`GRID`]); series colours read on both themes.
//! Record text never reaches a chart except as bar-chart labels, which the backend escapes.

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

/// Drawing size of every chart, in SVG user units; the page scales it to its column.
pub const SIZE: (u32, u32) = (640, 300);
/// Tick labels: 18 units (plotters writes 18 / 1.24), about 12 px in a half-width column at
/// 1200 px.
const LABEL_FONT: (&str, u32) = ("sans-serif", 18);
/// Text and tick labels.
pub const INK: RGBColor = RGBColor(0x33, 0x33, 0x33);
/// Axis lines.
pub const AXIS: RGBColor = RGBColor(0x66, 0x66, 0x66);
/// Grid lines.
pub const GRID: RGBColor = RGBColor(0xDD, 0xDD, 0xDD);
/// Series colours (Tableau 10), in the order groups are listed.
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(0x4E, 0x79, 0xA7),
    RGBColor(0xF2, 0x8E, 0x2B),
    RGBColor(0xE1, 0x57, 0x59),
    RGBColor(0x76, 0xB7, 0xB2),
    RGBColor(0x59, 0xA1, 0x4F),
    RGBColor(0xED, 0xC9, 0x48),
    RGBColor(0xB0, 0x7A, 0xA1),
    RGBColor(0xFF, 0x9D, 0xA7),
];

/// The `#RRGGBB` of series `i`, for the HTML legend.
pub fn palette_hex(i: usize) -> String {
    let RGBColor(r, g, b) = PALETTE[i % PALETTE.len()];
    format!("#{r:02X}{g:02X}{b:02X}")
}

/// A chart could not be drawn (plotters reported an error). It carries plotters' message.
#[derive(Debug, thiserror::Error)]
#[error("drawing the {chart} chart failed: {detail}")]
pub struct ChartError {
    chart: String,
    detail: String,
}

fn fail<E: std::fmt::Debug>(chart: &str) -> impl Fn(E) -> ChartError + '_ {
    move |e| ChartError {
        chart: chart.to_owned(),
        detail: format!("{e:?}"),
    }
}

/// One line of a time chart: points `(unix seconds, value)`, coloured by its index.
pub struct Line {
    /// Points, by time.
    pub points: Vec<(f64, f64)>,
    /// Index into [`PALETTE`].
    pub color: usize,
}

/// Lines over time: x is unix seconds labelled by `time_label`, y is formatted by `y_label`.
pub fn time_chart(
    name: &str,
    lines: &[Line],
    bucket_width: f64,
    time_label: &dyn Fn(f64) -> String,
    y_label: &dyn Fn(f64) -> String,
) -> Result<String, ChartError> {
    let err = fail(name);
    // x in whole buckets, so that every tick plotters picks (integers) is a bucket start.
    let width = bucket_width.max(1.0);
    let to_x = |t: f64| (t / width).round() as i64;
    let xs = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| to_x(p.0)));
    let (x0, x1) = xs.fold((i64::MAX, i64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    // One bucket, or none: pad so the point sits inside the frame.
    let (x0, x1) = if x1 > x0 {
        (x0, x1)
    } else if x0 == i64::MAX {
        (0, 1)
    } else {
        (x0 - 1, x0 + 1)
    };
    let y1 = top(lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .margin_right(32)
            .x_label_area_size(32)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, 0.0..y1)
            .map_err(&err)?;
        chart
            .configure_mesh()
            .x_labels(5)
            .y_labels(5)
            .x_label_formatter(&|x| time_label(*x as f64 * width))
            .y_label_formatter(&|y| y_label(*y))
            .label_style(LABEL_FONT.into_font().color(&INK))
            .axis_style(AXIS)
            .bold_line_style(GRID)
            .light_line_style(TRANSPARENT)
            .draw()
            .map_err(&err)?;
        for line in lines {
            let color = PALETTE[line.color % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    line.points.iter().map(|&(t, v)| (to_x(t), v)),
                    color.stroke_width(2),
                ))
                .map_err(&err)?;
            // Markers, so that a lone bucket still shows.
            if line.points.len() <= 60 {
                chart
                    .draw_series(
                        line.points
                            .iter()
                            .map(|&(t, v)| Circle::new((to_x(t), v), 3, color.filled())),
                    )
                    .map_err(&err)?;
            }
        }
        root.present().map_err(&err)?;
    }
    Ok(svg)
}

/// Horizontal bars, one per label (top to bottom in the given order), values formatted by
/// `x_label`.
pub fn bar_chart(
    name: &str,
    bars: &[(String, f64)],
    x_label: &dyn Fn(f64) -> String,
) -> Result<String, ChartError> {
    let err = fail(name);
    let n = i32::try_from(bars.len()).unwrap_or(i32::MAX);
    let x1 = top(bars.iter().map(|b| b.1));
    let height = SIZE.1.max(60 + 28 * bars.len() as u32);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (SIZE.0, height)).into_drawing_area();
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(170)
            .build_cartesian_2d(0.0..x1, (0..n).into_segmented())
            .map_err(&err)?;
        let label = |v: &SegmentValue<i32>| match v {
            SegmentValue::CenterOf(i) => usize::try_from(n - 1 - *i)
                .ok()
                .and_then(|k| bars.get(k))
                .map(|b| short(&b.0))
                .unwrap_or_default(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .x_labels(5)
            .y_labels(bars.len().max(1))
            .x_label_formatter(&|x| x_label(*x))
            .y_label_formatter(&label)
            .label_style(LABEL_FONT.into_font().color(&INK))
            .axis_style(AXIS)
            .bold_line_style(GRID)
            .light_line_style(TRANSPARENT)
            .disable_y_mesh()
            .draw()
            .map_err(&err)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(k, (_, v))| {
                // Top to bottom: the first bar gets the highest segment.
                let i = n - 1 - i32::try_from(k).unwrap_or(i32::MAX);
                let mut bar = Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(i)),
                        (*v, SegmentValue::Exact(i + 1)),
                    ],
                    PALETTE[k % PALETTE.len()].filled(),
                );
                bar.set_margin(4, 4, 0, 0);
                bar
            }))
            .map_err(&err)?;
        root.present().map_err(&err)?;
    }
    Ok(svg)
}

/// One histogram bar: `(lower, upper, count)`, edges in seconds.
pub type Bin = (f64, f64, u64);

/// A histogram over a log-scaled x axis (seconds): x is drawn as `log10(seconds)` and labelled
/// back in seconds by `x_label`.
pub fn histogram_chart(
    name: &str,
    bins: &[Bin],
    x_label: &dyn Fn(f64) -> String,
) -> Result<String, ChartError> {
    let err = fail(name);
    // A zero lower edge (latencies counted as zero) is drawn from just below the upper one.
    let log = |v: f64| v.max(1e-6).log10();
    let edges = bins.iter().map(|&(lo, hi, _)| {
        let h = log(hi);
        let l = if lo > 0.0 { log(lo) } else { h - 0.05 };
        (l, h)
    });
    let (x0, x1) = edges.fold((f64::MAX, f64::MIN), |(a, b), (l, h)| (a.min(l), b.max(h)));
    let (x0, x1) = if x1 > x0 {
        (x0, x1)
    } else {
        (x0 - 0.5, x0 + 0.5)
    };
    let y1 = top(bins.iter().map(|b| b.2 as f64));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, 0.0..y1)
            .map_err(&err)?;
        chart
            .configure_mesh()
            .x_labels(6)
            .y_labels(5)
            .x_label_formatter(&|x| x_label(10f64.powf(*x)))
            .y_label_formatter(&|y| super::format::axis_number(*y))
            .label_style(LABEL_FONT.into_font().color(&INK))
            .axis_style(AXIS)
            .bold_line_style(GRID)
            .light_line_style(TRANSPARENT)
            .draw()
            .map_err(&err)?;
        chart
            .draw_series(bins.iter().map(|&(lo, hi, c)| {
                let h = log(hi);
                let l = if lo > 0.0 { log(lo) } else { h - 0.05 };
                Rectangle::new([(l, 0.0), (h, c as f64)], PALETTE[0].filled())
            }))
            .map_err(&err)?;
        root.present().map_err(&err)?;
    }
    Ok(svg)
}

/// The top of a y (or x) axis: a little above the largest value, 1 when all are zero.
fn top(values: impl Iterator<Item = f64>) -> f64 {
    let max = values.filter(|v| v.is_finite()).fold(0.0, f64::max);
    if max > 0.0 { max * 1.1 } else { 1.0 }
}

/// A label cut to 22 characters, so long names do not run over the bars.
fn short(label: &str) -> String {
    if label.is_empty() {
        return "(none)".to_owned();
    }
    // Controls and bidi overrides shown as escapes, as everywhere on the page.
    let label = &*crate::output::escape_controls(label);
    if label.chars().count() <= 22 {
        return label.to_owned();
    }
    let mut s: String = label.chars().take(21).collect();
    s.push('…');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seconds(v: f64) -> String {
        format!("{v:.2}")
    }

    #[test]
    fn a_time_chart_is_one_svg_with_a_path_per_line() {
        let lines = [
            Line {
                points: vec![(0.0, 1.0), (60.0, 3.0), (120.0, 2.0)],
                color: 0,
            },
            Line {
                points: vec![(60.0, 5.0)],
                color: 1,
            },
        ];
        let svg = time_chart("calls", &lines, 60.0, &|x| format!("t{x}"), &seconds).unwrap();
        let label = |t: &str| svg.lines().any(|l| l.trim() == t);
        assert!(
            label("t0") && label("t60") && label("t120"),
            "bucket ticks: {svg}"
        );
        assert!(!label("t30"), "no tick between buckets");
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("viewBox=\"0 0 640 300\""));
        assert!(svg.contains("<polyline"), "{svg}");
        assert!(svg.contains("#F28E2B"), "second series colour");
    }

    #[test]
    fn bar_labels_are_escaped_and_cut() {
        let bars = vec![
            ("<script>alert(1)</script>".to_owned(), 2.0),
            ("b".to_owned(), 1.0),
        ];
        let svg = bar_chart("bars", &bars, &seconds).unwrap();
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;"), "{svg}");
        assert!(svg.matches("<rect").count() >= 2);
    }

    #[test]
    fn a_histogram_with_a_zero_bin_draws() {
        let bins = [(0.0, 0.001, 3), (0.001, 0.01, 10), (0.01, 0.1, 4)];
        let svg = histogram_chart("latency", &bins, &|s| format!("{s:.3}s")).unwrap();
        assert!(svg.matches("<rect").count() >= 3, "{svg}");
    }
}
