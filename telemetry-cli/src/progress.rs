//! Progress-bar policy: bars draw on stderr, and only when stderr is a terminal, so pipes, files
//! and tests get clean output.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether progress may be drawn: stderr is a terminal and `$TELEMETRY_NO_PROGRESS` is unset.
pub fn enabled() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("TELEMETRY_NO_PROGRESS").is_none()
}

/// A bar counting `len` items (`what` names them), hidden unless `show`.
pub fn bar(len: u64, what: &str, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let template = format!("{{bar:40}} {{pos}}/{{len}} {what} ({{per_sec}}, eta {{eta}})");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_when_not_shown() {
        assert!(bar(10, "records", false).is_hidden());
    }
}
