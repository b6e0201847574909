//! `jvpn keygen`: the command-line entry of key generation. Making and writing keys belongs to
//! [`crate::config::keyfile`], which owns the key formats and the 0600 files.

use super::error::CliError;
use crate::config::{genpsk, keygen};
use std::io::Write as _;
use std::path::Path;

/// Runs `jvpn keygen KEY_FILE [--psk]`: writes the key and prints what the other side needs.
pub fn execute(path: &Path, psk: bool) -> Result<(), CliError> {
    let message = if psk {
        genpsk(path)?;
        format!(
            "pre-shared key written to {}; copy it to the other side over a secure channel\n",
            path.display()
        )
    } else {
        let public = keygen(path)?;
        format!("{}\n", public.to_base64())
    };
    let mut out = std::io::stdout().lock();
    out.write_all(message.as_bytes())
        .map_err(CliError::Output)?;
    out.flush().map_err(CliError::Output)
}
