//! Distribution kernels from Debian's archive, without installing them: the newest package
//! matching a kernel's pattern is downloaded (`apt-get download`), unpacked (`dpkg -x`) into
//! `~/.cache/jvpn/kernels/PACKAGE/` and kept there; virtme-ng finds the modules beside the image.
//!
//! Debian 11's packages come through a private apt state in the cache (its own sources list and
//! package lists), so the machine's apt sources never change.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::tools::{apt_get, cache_dir};
use super::{Archive, DistroKernel};
use crate::util;

/// Marks a cached kernel as completely unpacked.
const COMPLETE_MARKER: &str = ".unpacked";

/// A kernel ready to boot.
#[derive(Debug, Clone)]
pub struct KernelImage {
    /// The Debian package it came from.
    pub package: String,
    /// `boot/vmlinuz-RELEASE` in the unpacked package.
    pub vmlinuz: PathBuf,
    /// Why the cache's newest package of the series was used rather than the archive's, if it was.
    pub fallback: Option<String>,
}

/// The kernel's image: the archive's newest package of the series, from the cache or downloaded
/// into it. When the archive cannot be asked or the download fails (offline, a mirror down, a
/// package replaced since the lists were read), the newest cached package of the series does,
/// and the image says why it was used.
pub fn kernel(kernel: &DistroKernel) -> Result<KernelImage> {
    let error = match from_archive(kernel) {
        Ok(image) => return Ok(image),
        Err(error) => error,
    };
    let Some(package) = newest(cached_packages(kernel)?) else {
        return Err(error.context(format!(
            "and no package of {} is cached in {}",
            kernel.package_pattern,
            kernels_dir().display()
        )));
    };
    println!("kernels: {error:#}; using the cached {package}");
    Ok(KernelImage {
        vmlinuz: vmlinuz_in(&kernels_dir().join(&package))?,
        fallback: Some(format!(
            "the archive failed ({error:#}); used the cached {package}"
        )),
        package,
    })
}

fn from_archive(kernel: &DistroKernel) -> Result<KernelImage> {
    let apt = AptState::for_archive(kernel.archive)?;
    let mut found = newest(apt.search(kernel.package_pattern)?);
    if found.is_none() {
        // Lists never read (a fresh machine) or from before the series was published.
        util::run(apt.command().arg("update"))?;
        found = newest(apt.search(kernel.package_pattern)?);
    }
    let Some(package) = found else {
        bail!(
            "no package matches {} in {:?}'s apt lists; check the network and run `apt-get update`",
            kernel.package_pattern,
            kernel.archive
        );
    };
    let dir = kernels_dir().join(&package);
    if dir.join(COMPLETE_MARKER).exists() {
        println!("kernels: {package} is cached in {}", dir.display());
    } else {
        download_and_unpack(&apt, &package, &dir)?;
        prune_others(kernel, &package);
    }
    Ok(KernelImage {
        vmlinuz: vmlinuz_in(&dir)?,
        package,
        fallback: None,
    })
}

/// Removes the cached packages of `kernel`'s series other than `keep`, which replaced them: the
/// cache keeps one kernel per series.
fn prune_others(kernel: &DistroKernel, keep: &str) {
    let Ok(cached) = cached_packages(kernel) else {
        return;
    };
    for package in cached.iter().filter(|p| p.as_str() != keep) {
        let dir = kernels_dir().join(package);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => println!("kernels: removed {package}, replaced by {keep}, from the cache"),
            // A stale copy only costs disk space; say so and go on.
            Err(error) => println!("kernels: could not remove {}: {error}", dir.display()),
        }
    }
}

fn kernels_dir() -> PathBuf {
    cache_dir().join("kernels")
}

/// Packages of this kernel's series already unpacked in the cache.
fn cached_packages(kernel: &DistroKernel) -> Result<Vec<String>> {
    let Ok(entries) = std::fs::read_dir(kernels_dir()) else {
        return Ok(Vec::new());
    };
    let prefix = kernel
        .package_pattern
        .trim_start_matches('^')
        .split('[')
        .next()
        .unwrap_or_default()
        .replace('\\', "");
    let mut packages = Vec::new();
    for entry in entries {
        let entry = entry.context("listing the kernel cache")?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && entry.path().join(COMPLETE_MARKER).exists() {
            packages.push(name);
        }
    }
    Ok(packages)
}

/// The package with the highest ABI: names compared by their numbers, so `-57` beats `-9`.
fn newest(packages: Vec<String>) -> Option<String> {
    packages.into_iter().max_by_key(|name| numbers_in(name))
}

fn numbers_in(name: &str) -> Vec<u64> {
    name.split(|c: char| !c.is_ascii_digit())
        .filter(|part| !part.is_empty())
        .filter_map(|part| part.parse().ok())
        .collect()
}

fn download_and_unpack(apt: &AptState, package: &str, dir: &Path) -> Result<()> {
    let download = tempfile::tempdir().context("creating a download directory")?;
    let fetched = util::run(
        apt.command()
            .arg("download")
            .arg(package)
            .current_dir(download.path()),
    );
    if fetched.is_err() {
        // The lists may name a version the archive has replaced since: refresh them once.
        util::run(apt.command().arg("update"))?;
        util::run(
            apt.command()
                .arg("download")
                .arg(package)
                .current_dir(download.path()),
        )?;
    }
    let deb = std::fs::read_dir(download.path())
        .context("listing the download directory")?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .with_context(|| format!("`apt-get download {package}` left no .deb"))?;
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("removing the partial unpack {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    util::run(Command::new("dpkg").arg("-x").arg(&deb).arg(dir))?;
    std::fs::write(dir.join(COMPLETE_MARKER), package)
        .with_context(|| format!("marking {} complete", dir.display()))?;
    println!("kernels: {package} unpacked into {}", dir.display());
    Ok(())
}

fn vmlinuz_in(dir: &Path) -> Result<PathBuf> {
    let boot = dir.join("boot");
    std::fs::read_dir(&boot)
        .with_context(|| format!("listing {}", boot.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("vmlinuz-"))
        })
        .with_context(|| {
            format!(
                "{} has no vmlinuz-*; remove {} and run again",
                boot.display(),
                dir.display()
            )
        })
}

/// Which apt state to ask: the machine's, or a private one for another Debian release.
struct AptState {
    /// `-o` options pointing apt at a private sources list and lists directory, if any.
    options: Vec<String>,
}

/// Debian 11's sources, for the private apt state.
const BULLSEYE_SOURCES: &str = "deb http://deb.debian.org/debian bullseye main\n\
     deb http://deb.debian.org/debian-security bullseye-security main\n";

impl AptState {
    fn for_archive(archive: Archive) -> Result<Self> {
        match archive {
            Archive::Host => Ok(Self {
                options: Vec::new(),
            }),
            Archive::Bullseye => {
                let dir = kernels_dir().join("apt-bullseye");
                let lists = dir.join("lists");
                std::fs::create_dir_all(lists.join("partial"))
                    .with_context(|| format!("creating {}", lists.display()))?;
                let sources = dir.join("sources.list");
                std::fs::write(&sources, BULLSEYE_SOURCES)
                    .with_context(|| format!("writing {}", sources.display()))?;
                let status = dir.join("status");
                if !status.exists() {
                    std::fs::write(&status, "")
                        .with_context(|| format!("writing {}", status.display()))?;
                }
                let state = Self {
                    options: [
                        format!("Dir::Etc::SourceList={}", sources.display()),
                        "Dir::Etc::SourceParts=/nonexistent".to_owned(),
                        format!("Dir::State::Lists={}", lists.display()),
                        format!("Dir::State::status={}", status.display()),
                        "Dir::Cache::pkgcache=".to_owned(),
                        "Dir::Cache::srcpkgcache=".to_owned(),
                        // The private state is ours alone; the machine's apt lock is not needed.
                        "Debug::NoLocking=1".to_owned(),
                    ]
                    .into_iter()
                    .flat_map(|option| ["-o".to_owned(), option])
                    .collect(),
                };
                let has_lists = std::fs::read_dir(&lists)
                    .map(|entries| entries.filter_map(Result::ok).any(|e| e.path().is_file()))
                    .unwrap_or(false);
                if !has_lists {
                    util::run(state.command().arg("update"))?;
                }
                Ok(state)
            }
        }
    }

    fn command(&self) -> Command {
        let mut command = apt_get();
        command.args(&self.options);
        command
    }

    /// Package names matching `pattern` in this state's lists.
    fn search(&self, pattern: &str) -> Result<Vec<String>> {
        let listing = util::output(Command::new("apt-cache").args(&self.options).args([
            "search",
            "--names-only",
            pattern,
        ]))?;
        Ok(listing
            .lines()
            .filter_map(|line| line.split_whitespace().next())
            .map(str::to_owned)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_package_has_the_highest_abi() {
        let packages = [
            "linux-image-6.1.0-9-amd64-unsigned",
            "linux-image-6.1.0-57-amd64-unsigned",
            "linux-image-6.1.0-47-amd64-unsigned",
        ];
        assert_eq!(
            newest(packages.iter().map(|p| p.to_string()).collect()).as_deref(),
            Some("linux-image-6.1.0-57-amd64-unsigned")
        );
        let packages = [
            "linux-image-6.12.113+deb12-amd64-unsigned",
            "linux-image-6.12.107+deb12-amd64-unsigned",
        ];
        assert_eq!(
            newest(packages.iter().map(|p| p.to_string()).collect()).as_deref(),
            Some("linux-image-6.12.113+deb12-amd64-unsigned")
        );
        assert_eq!(newest(Vec::new()), None);
    }
}
