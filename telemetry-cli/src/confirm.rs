//! Confirmation before deleting: `--yes`, or a `y` typed on a terminal; never a guess.

use std::io::{BufRead, IsTerminal, Write};

use crate::error::CliError;

/// Returns `Ok` when the deletion described by `action` may go ahead: `yes` was given, or stdin
/// is a terminal and the user typed `y`/`yes`. Refuses (exit 2) when stdin is not a terminal.
pub fn confirm(action: &str, yes: bool) -> Result<(), CliError> {
    if yes {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(CliError::NeedsConfirmation {
            action: action.to_string(),
        });
    }
    eprint!("{action}? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|source| CliError::Io {
            action: "reading the answer from",
            path: "stdin".into(),
            source,
        })?;
    if is_yes(&answer) {
        Ok(())
    } else {
        Err(CliError::Declined {
            action: action.to_string(),
        })
    }
}

fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_explicit_yes_counts() {
        assert!(is_yes("y\n") && is_yes(" YES ") && is_yes("Yes"));
        assert!(!is_yes("") && !is_yes("n") && !is_yes("yep") && !is_yes("\n"));
    }

    #[test]
    fn yes_flag_skips_the_question() {
        assert!(confirm("clear everything", true).is_ok());
    }
}
