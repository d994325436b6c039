//! Writing a command's output.

use std::io::Write;

use crate::error::CliError;

/// Writes `text` to `out`, mapping a failure to [`CliError::Output`].
pub(crate) fn emit(out: &mut dyn Write, text: &str) -> Result<(), CliError> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(CliError::stdout)
}
