//! Output formatting: aligned tables that leave out columns with no data, number formats, and
//! [`escape_controls`] for every name shown to a terminal.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::Path;

/// Column alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// A plain-text table. A cell is `None` when there is no data; a column whose cells are all
/// `None` is left out, and a `None` cell in a shown column prints as `-`.
#[derive(Debug, Clone)]
pub struct Table {
    columns: Vec<(String, Align)>,
    rows: Vec<Vec<Option<String>>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(columns: &[(&str, Align)]) -> Self {
        Table {
            columns: columns
                .iter()
                .map(|(name, align)| ((*name).to_string(), *align))
                .collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing trailing cells count as `None`, extra cells are ignored.
    pub fn push(&mut self, mut row: Vec<Option<String>>) {
        row.resize(self.columns.len(), None);
        self.rows.push(row);
    }

    /// Whether there are no rows.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Headers of the columns that will be shown.
    #[cfg(test)]
    pub fn shown_columns(&self) -> Vec<&str> {
        self.shown().map(|i| self.columns[i].0.as_str()).collect()
    }

    fn shown(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.columns.len()).filter(|&i| self.rows.iter().any(|r| r[i].is_some()))
    }

    /// Renders the table: a header line, a rule, one line per row, columns two spaces apart.
    /// An empty table renders as the empty string.
    pub fn render(&self) -> String {
        let shown: Vec<usize> = self.shown().collect();
        if shown.is_empty() {
            return String::new();
        }
        // Names come from the database: escaped here, so no caller can forget it.
        let cell = |row: &Vec<Option<String>>, i: usize| {
            row[i]
                .as_deref()
                .map_or_else(|| "-".into(), |c| escape_controls(c).into_owned())
        };
        let widths: Vec<usize> = shown
            .iter()
            .map(|&i| {
                self.rows
                    .iter()
                    .map(|r| cell(r, i).chars().count())
                    .chain(std::iter::once(
                        escape_controls(&self.columns[i].0).chars().count(),
                    ))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        let header: Vec<String> = shown
            .iter()
            .map(|&i| escape_controls(&self.columns[i].0).into_owned())
            .collect();
        push_line(&mut out, &header, &shown, &widths, &self.columns);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        push_line(&mut out, &rule, &shown, &widths, &self.columns);
        for row in &self.rows {
            let cells: Vec<String> = shown.iter().map(|&i| cell(row, i)).collect();
            push_line(&mut out, &cells, &shown, &widths, &self.columns);
        }
        out
    }
}

fn push_line(
    out: &mut String,
    cells: &[String],
    shown: &[usize],
    widths: &[usize],
    columns: &[(String, Align)],
) {
    let mut line = String::new();
    for (k, text) in cells.iter().enumerate() {
        if k > 0 {
            line.push_str("  ");
        }
        let pad = widths[k].saturating_sub(text.chars().count());
        match columns[shown[k]].1 {
            Align::Left => {
                line.push_str(text);
                line.extend(std::iter::repeat_n(' ', pad));
            }
            Align::Right => {
                line.extend(std::iter::repeat_n(' ', pad));
                line.push_str(text);
            }
        }
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

/// `text` with its control characters escaped, for human-readable output (tables, reports,
/// messages and errors on a terminal): C0 controls (ESC, BEL, CR, LF, TAB, ...), DEL, C1 controls
/// and the bidirectional-text overrides become visible escapes (`\n`, `\r`, `\t`, `\x1b`,
/// `\u{9b}`, `\u{202e}`), so a model name such as `"\x1b]0;pwned\x07"` can neither drive the
/// terminal nor break a table row. Text without them is returned as is. JSON, CSV and NDJSON
/// output is never passed through this: it stays exact.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) && u32::from(c) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A path for a human-readable line, with [`escape_controls`] applied.
pub fn path(p: &Path) -> String {
    escape_controls(&p.display().to_string()).into_owned()
}

/// Control characters (C0, DEL, C1) and the bidirectional overrides and isolates, which reorder
/// what follows them on screen.
fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// An integer with thin grouping: `1234567` → `1,234,567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// US dollars: four decimals below $100, two above.
pub fn usd(v: f64) -> String {
    if v.abs() < 100.0 {
        format!("${v:.4}")
    } else {
        format!("${v:.2}")
    }
}

/// Seconds in the most readable unit: `850 µs`, `12.3 ms`, `1.92 s`.
pub fn seconds(v: f64) -> String {
    let a = v.abs();
    if a < 1e-3 {
        format!("{:.0} µs", v * 1e6)
    } else if a < 1.0 {
        format!("{:.1} ms", v * 1e3)
    } else {
        format!("{v:.2} s")
    }
}

/// Joules in the most readable unit: `12.3 J`, `45.6 kJ`, `7.89 MJ`.
pub fn joules(v: f64) -> String {
    let a = v.abs();
    if a < 1e4 {
        format!("{v:.1} J")
    } else if a < 1e6 {
        format!("{:.1} kJ", v / 1e3)
    } else {
        format!("{:.2} MJ", v / 1e6)
    }
}

/// A rate or ratio with a sensible number of digits.
pub fn number(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// File size: `12.3 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        let mut s = String::new();
        let _ = write!(s, "{v:.1} {}", UNITS[unit]);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    #[test]
    fn columns_align_and_empty_columns_are_left_out() {
        let mut t = Table::new(&[
            ("model", Align::Left),
            ("calls", Align::Right),
            ("energy", Align::Right),
            ("ttft", Align::Right),
        ]);
        t.push(vec![some("a"), some("1,000"), None, some("1.0 ms")]);
        t.push(vec![some("longer-name"), some("7"), None, None]);
        assert_eq!(t.shown_columns(), ["model", "calls", "ttft"]);
        let text = t.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "model        calls    ttft");
        assert_eq!(lines[1], "-----------  -----  ------");
        assert_eq!(lines[2], "a            1,000  1.0 ms");
        assert_eq!(lines[3], "longer-name      7       -");
        assert!(!text.contains("energy"));
    }

    #[test]
    fn control_characters_are_escaped_in_cells() {
        assert_eq!(escape_controls("plain-näme"), Cow::Borrowed("plain-näme"));
        assert_eq!(escape_controls("\x1b]0;pwned\x07"), "\\x1b]0;pwned\\x07");
        assert_eq!(escape_controls("a\nb\r\tc\x7f"), "a\\nb\\r\\tc\\x7f");
        assert_eq!(escape_controls("\u{9b}2J\u{202e}x"), "\\u{9b}2J\\u{202e}x");
        let mut t = Table::new(&[("model", Align::Left), ("calls", Align::Right)]);
        t.push(vec![some("a\nb"), some("1")]);
        t.push(vec![some("\x1b[2J"), some("2")]);
        let text = t.render();
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(!text.contains('\x1b'), "{text}");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[2], "a\\nb         1");
        assert_eq!(lines[3], "\\x1b[2J      2");
    }

    #[test]
    fn empty_table_renders_nothing() {
        let t = Table::new(&[("x", Align::Left)]);
        assert!(t.is_empty() && t.render().is_empty());
    }

    #[test]
    fn number_formats() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(usd(0.12345), "$0.1235");
        assert_eq!(usd(1234.5), "$1234.50");
        assert_eq!(seconds(0.00085), "850 µs");
        assert_eq!(seconds(0.0123), "12.3 ms");
        assert_eq!(seconds(1.923), "1.92 s");
        assert_eq!(joules(12.34), "12.3 J");
        assert_eq!(joules(45_600.0), "45.6 kJ");
        assert_eq!(joules(7_890_000.0), "7.89 MJ");
        assert_eq!(number(1234.4), "1234");
        assert_eq!(number(12.34), "12.3");
        assert_eq!(number(0.12345), "0.123");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
    }
}
