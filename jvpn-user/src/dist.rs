//! What a package installs beside the `jvpn` binary that is made from its clap definitions: a man
//! page for `jvpn` and one per subcommand (`jvpn-gateway(1)`, ...), and bash, zsh and fish
//! completions. `jvpn-docgen` (a build-time helper, not installed) writes them for
//! `cargo xtask package`, so they always describe the binary they ship with.

use crate::cli::args::RawArgs;
use clap::CommandFactory as _;
use clap_complete::Shell;
use std::path::Path;

/// The shells completions are made for, and the file each one's completion is named.
pub const SHELLS: &[(Shell, &str)] = &[
    (Shell::Bash, "jvpn.bash"),
    (Shell::Zsh, "_jvpn"),
    (Shell::Fish, "jvpn.fish"),
];

/// Writes the man pages into `dir/man` and the completions into `dir/completions`.
pub fn write_all(dir: &Path) -> std::io::Result<()> {
    let man = dir.join("man");
    let completions = dir.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    clap_mangen::generate_to(RawArgs::command(), &man)?;
    for (shell, file) in SHELLS {
        let mut text = Vec::new();
        clap_complete::generate(*shell, &mut RawArgs::command(), "jvpn", &mut text);
        std::fs::write(completions.join(file), text)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_and_completions_cover_every_command() {
        let dir = tempfile::tempdir().expect("temp dir");
        write_all(dir.path()).expect("write the docs");
        let page = |name: &str| {
            std::fs::read_to_string(dir.path().join("man").join(name))
                .unwrap_or_else(|e| panic!("man page {name}: {e}"))
        };
        let jvpn = page("jvpn.1");
        assert!(jvpn.contains(".TH jvpn 1"), "{jvpn}");
        assert!(jvpn.contains("gateway"), "the subcommands are listed");
        let gateway = page("jvpn-gateway.1");
        assert!(gateway.contains("\\-\\-iface"), "{gateway}");
        assert!(gateway.contains("\\-\\-state\\-dir"), "{gateway}");
        for sub in [
            "jvpn-client.1",
            "jvpn-detach.1",
            "jvpn-sessions-terminate.1",
        ] {
            page(sub);
        }
        for (_, file) in SHELLS {
            let text = std::fs::read_to_string(dir.path().join("completions").join(file))
                .expect("completion file");
            assert!(
                text.contains("gateway") && text.contains("state-dir"),
                "{file}"
            );
        }
    }

    #[test]
    fn the_packaged_example_config_is_valid_once_keys_are_filled_in() {
        let dir = tempfile::tempdir().expect("temp dir");
        crate::config::keygen(&dir.path().join("gateway.key")).expect("gateway key");
        let client = crate::crypto::PrivateKey::generate()
            .public_key()
            .to_base64();
        let example = include_str!("../dist/gateway.toml");
        let path = dir.path().join("eth0.toml");
        let settings = crate::config::GatewaySettings::parse(
            &path,
            &example.replace("CLIENT_PUBLIC_KEY", &client),
        )
        .expect("the example parses");
        assert_eq!(settings.clients().len(), 1);
        let refused = crate::config::GatewaySettings::parse(&path, example)
            .expect_err("the placeholder key is refused");
        let line = example
            .lines()
            .position(|l| l.contains("CLIENT_PUBLIC_KEY"))
            .expect("the example has the placeholder")
            + 1;
        assert!(
            refused.to_string().contains(&format!("eth0.toml:{line}:")),
            "the refusal names the placeholder's line {line}: {refused}"
        );
    }
}
