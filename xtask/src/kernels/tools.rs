//! What booting a distribution kernel needs, installed only when the `kernels` tier runs, so the
//! usual set-up stays lean: qemu (software emulation), busybox-static (virtme-ng refuses to start
//! without it), kmod (virtme-ng runs `depmod` on the kernel's modules) and python3-venv from
//! Debian, and virtme-ng from PyPI in a venv of its own under `~/.cache/jvpn`.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::util;

/// Debian packages the VMs need.
const APT_PACKAGES: [&str; 4] = ["qemu-system-x86", "busybox-static", "kmod", "python3-venv"];

/// The virtme-ng release the tier was verified with.
const VIRTME_NG_VERSION: &str = "1.42";

/// The Python that makes the venv: Debian's, whatever `python3` a shell's PATH prefers.
const SYSTEM_PYTHON: &str = "/usr/bin/python3";

/// The cache every download of the tier goes to: `~/.cache/jvpn` (or `$XDG_CACHE_HOME/jvpn`).
pub fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/cache"));
    base.join("jvpn")
}

/// The venv virtme-ng lives in; its `bin` goes first on the VM command's PATH (`vng` calls
/// `virtme-run` by name).
pub fn venv_dir() -> PathBuf {
    cache_dir().join("virtme-ng")
}

/// Installs what is missing; quick when all is there.
pub fn ensure() -> Result<()> {
    let absent = absent_packages()?;
    if !absent.is_empty() {
        println!("kernels: installing {}", absent.join(" "));
        util::run(apt_get().arg("update"))?;
        util::run(
            apt_get()
                .args(["install", "-y", "--no-install-recommends"])
                .args(&absent),
        )?;
    }
    if !virtme_ng_present() {
        let venv = venv_dir();
        println!(
            "kernels: installing virtme-ng {VIRTME_NG_VERSION} in {}",
            venv.display()
        );
        util::run(Command::new(SYSTEM_PYTHON).args(["-m", "venv"]).arg(&venv))?;
        util::run(
            Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet"])
                .arg(format!("virtme-ng=={VIRTME_NG_VERSION}")),
        )?;
        if !virtme_ng_present() {
            bail!(
                "virtme-ng {VIRTME_NG_VERSION} is still missing from {} after installing it; \
                 remove that directory and run again",
                venv.display()
            );
        }
    }
    Ok(())
}

/// An `apt-get` without prompts.
pub fn apt_get() -> Command {
    let mut command = Command::new("apt-get");
    command
        .env("DEBIAN_FRONTEND", "noninteractive")
        // Downloads land in directories the unprivileged _apt user cannot write.
        .args(["-o", "APT::Sandbox::User=root"]);
    command
}

fn absent_packages() -> Result<Vec<&'static str>> {
    let output = Command::new("dpkg-query")
        .args(["--show", "--showformat=${Package} ${db:Status-Abbrev}\\n"])
        .args(APT_PACKAGES)
        .output()
        .context("`dpkg-query` could not start: the kernels tier supports Debian 12 only")?;
    let listing = String::from_utf8_lossy(&output.stdout);
    Ok(APT_PACKAGES
        .into_iter()
        .filter(|package| {
            !listing.lines().any(|line| {
                let mut fields = line.split_whitespace();
                fields.next().and_then(|n| n.split(':').next()) == Some(package)
                    && fields.next() == Some("ii")
            })
        })
        .collect())
}

fn virtme_ng_present() -> bool {
    Command::new(venv_dir().join("bin/vng"))
        .arg("--version")
        .output()
        .is_ok_and(|out| {
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains(VIRTME_NG_VERSION)
        })
}
