//! `jvpn-docgen DIR`: writes jvpn's man pages and shell completions into DIR (see
//! `jvpn_user::dist`). Run by `cargo xtask package`; not installed.

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: jvpn-docgen DIR");
        return ExitCode::from(2);
    };
    match jvpn_user::dist::write_all(std::path::Path::new(&dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "error: cannot write the man pages and completions into {}: {e}",
                std::path::Path::new(&dir).display()
            );
            ExitCode::FAILURE
        }
    }
}
