//! The pin directory of one interface's dataplane: `PIN_ROOT/<iface>/v<MAP_LAYOUT_VERSION>/`,
//! holding one pin per map and the XDP link. The layout version is part of the path because aya
//! reuses a pinned map without checking its layout: a build with another layout must never see
//! these pins.

use super::DataplaneError;
use jvpn_common::abi;
use std::io;
use std::path::{Path, PathBuf};

/// Every map the dataplane pins, by object name.
pub(crate) const PINNED_MAPS: [&str; 9] = [
    abi::MAP_SESSIONS,
    abi::MAP_SESSION_INDEX,
    abi::MAP_REPLAY,
    abi::MAP_COUNTERS,
    abi::MAP_EVENT_LOSS,
    abi::MAP_EVENT_BUDGET,
    abi::MAP_EVENTS,
    abi::MAP_CONFIG,
    abi::MAP_HELLO_BUCKETS,
];

/// The mount point the BPF filesystem is expected at.
const BPFFS_MOUNT: &str = "/sys/fs/bpf";

/// Where the pins of one interface's dataplane live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinDir {
    /// `<root>/<iface>`.
    iface_dir: PathBuf,
    /// `<root>/<iface>/v<MAP_LAYOUT_VERSION>`.
    dir: PathBuf,
}

impl PinDir {
    /// The pin directory of `iface` under `root`. Refuses names that are not interface names,
    /// since the name becomes a path component.
    pub fn new(root: &Path, iface: &str) -> Result<Self, DataplaneError> {
        crate::iface::check_interface_name(iface).map_err(|source| {
            DataplaneError::InvalidInterfaceName {
                iface: iface.to_owned(),
                source,
            }
        })?;
        let iface_dir = root.join(iface);
        let dir = iface_dir.join(format!("v{}", abi::MAP_LAYOUT_VERSION));
        Ok(Self { iface_dir, dir })
    }

    /// The directory holding the pins.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The pin of the map named `name`.
    pub fn map(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The pin of the XDP link.
    pub fn link(&self) -> PathBuf {
        self.dir.join(abi::PIN_LINK)
    }

    /// Whether an XDP link is pinned here (a dataplane is attached, or was until its interface
    /// went away).
    pub fn has_link(&self) -> bool {
        self.link().exists()
    }

    /// Creates the directory, mounting the BPF filesystem at `/sys/fs/bpf` first if the pins
    /// belong there and it is not mounted (as on a fresh boot of some distributions).
    pub(crate) fn create(&self) -> Result<(), DataplaneError> {
        ensure_bpffs(&self.dir)?;
        std::fs::create_dir_all(&self.dir).map_err(DataplaneError::pin(
            "creating pin directory",
            self.dir.clone(),
        ))
    }

    /// Removes every pin in the directory, leaving the directory. Used before a fresh load, so
    /// maps left by a load that died before pinning its link are not silently reused.
    pub(crate) fn remove_pins(&self) -> Result<(), DataplaneError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(DataplaneError::pin("listing pins in", self.dir.clone())(e)),
        };
        for entry in entries {
            let path = entry
                .map_err(DataplaneError::pin("listing pins in", self.dir.clone()))?
                .path();
            remove_if_present(&path)?;
        }
        Ok(())
    }

    /// Removes every pin, the layout directory, and the interface directory if nothing else
    /// (another layout's pins) is left in it.
    pub(crate) fn remove_all(&self) -> Result<(), DataplaneError> {
        self.remove_pins()?;
        for dir in [&self.dir, &self.iface_dir] {
            match std::fs::remove_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                // Another layout's pins still live here; they are not ours to remove.
                Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => {}
                Err(e) => {
                    return Err(DataplaneError::pin("removing pin directory", dir.clone())(
                        e,
                    ))
                }
            }
        }
        Ok(())
    }
}

impl PinDir {
    /// Removes the pins of every other map layout (`v<N>` beside this one) that an earlier or
    /// later jvpn left for the interface, with a warning each. Their maps must never be adopted
    /// by this build, and their pinned link would keep the old program attached: removing the
    /// last reference detaches it (a still-running old gateway keeps its own, and the attach that
    /// follows then fails and says so). Called only before a fresh load.
    pub(crate) fn retire_other_layouts(&self) -> Result<Vec<PathBuf>, DataplaneError> {
        let entries = match std::fs::read_dir(&self.iface_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(DataplaneError::pin(
                    "listing layouts in",
                    self.iface_dir.clone(),
                )(e))
            }
        };
        let mut retired = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(DataplaneError::pin(
                    "listing layouts in",
                    self.iface_dir.clone(),
                ))?
                .path();
            let is_layout = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix('v'))
                .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()));
            if !is_layout || path == self.dir || !path.is_dir() {
                continue;
            }
            tracing::warn!(
                pin_dir = %path.display(),
                layout = abi::MAP_LAYOUT_VERSION,
                "removing the pins of another map layout (another jvpn version); its XDP program is detached and its sessions reconcile from the store"
            );
            let old = PinDir {
                iface_dir: self.iface_dir.clone(),
                dir: path.clone(),
            };
            old.remove_pins()?;
            std::fs::remove_dir(&path)
                .map_err(DataplaneError::pin("removing pin directory", path.clone()))?;
            retired.push(path);
        }
        Ok(retired)
    }
}

/// Removes one pin; a pin already gone is fine.
pub(crate) fn remove_if_present(path: &Path) -> Result<(), DataplaneError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(DataplaneError::pin("removing pin", path.to_owned())(e)),
    }
}

/// Makes sure `dir` will be on a BPF filesystem.
fn ensure_bpffs(dir: &Path) -> Result<(), DataplaneError> {
    let mount = Path::new(BPFFS_MOUNT);
    let existing = dir.ancestors().find(|p| p.exists()).unwrap_or(mount);
    if is_bpffs(existing) {
        return Ok(());
    }
    if !dir.starts_with(mount) || (existing != mount && existing.starts_with(mount)) {
        return Err(DataplaneError::BpffsUnavailable {
            path: existing.to_owned(),
            source: io::Error::other("not a BPF filesystem, and not the standard mount point"),
        });
    }
    nix::mount::mount(
        Some("bpf"),
        mount,
        Some("bpf"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|errno| DataplaneError::BpffsUnavailable {
        path: mount.to_owned(),
        source: errno.into(),
    })?;
    tracing::info!(
        mount = BPFFS_MOUNT,
        "mounted the BPF filesystem for jvpn's pins"
    );
    if mount_is_private() {
        tracing::warn!(
            mount = BPFFS_MOUNT,
            "the pins cannot outlive this process: the BPF filesystem had to be mounted in a \
             private mount namespace (as `ip netns exec` makes), which ends with the process, \
             taking the XDP program and its maps along, so every restart loses the maps and \
             sends every session to RECOVERING; start the gateway with `nsenter --net=/run/netns/NAME` \
             instead, which keeps the host's /sys/fs/bpf"
        );
    }
    Ok(())
}

/// The mount namespace of process `pid` (a number or `self`), as the kernel names it.
fn mount_namespace(pid: &str) -> io::Result<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/mnt"))
}

/// Whether the BPF filesystem this process just mounted ends with it: no other process shares
/// its mount namespace (so the namespace, and every mount in it, goes when this process exits),
/// and the mount does not propagate to a peer in another namespace. A gateway started through
/// `ip netns exec` is such a process: a new mount namespace with a fresh, private `/sys`.
/// Anything unreadable counts as not private: the warning this drives must not be a false alarm.
fn mount_is_private() -> bool {
    let (Ok(own), Ok(mountinfo)) = (
        mount_namespace("self"),
        std::fs::read_to_string("/proc/self/mountinfo"),
    ) else {
        return false;
    };
    !shares_mount_namespace(std::process::id(), &own)
        && !mount_propagates(&mountinfo, Path::new(BPFFS_MOUNT))
}

/// Whether a process other than `pid` (threads are not listed in /proc) is in mount namespace
/// `ns`.
fn shares_mount_namespace(pid: u32, ns: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return true;
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|other| *other != pid)
        .any(|other| mount_namespace(&other.to_string()).is_ok_and(|theirs| theirs == ns))
}

/// Whether the last mount at `mount_point` in `mountinfo` (proc(5)'s format) is in a peer group
/// (`shared:N`), so that it is also seen, and kept, in other mount namespaces.
fn mount_propagates(mountinfo: &str, mount_point: &Path) -> bool {
    mountinfo
        .lines()
        .rev()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let at = Path::new(fields.get(4)?);
            let separator = fields.iter().position(|f| *f == "-")?;
            let optional = fields.get(6..separator)?;
            (at == mount_point).then(|| optional.iter().any(|f| f.starts_with("shared:")))
        })
        .unwrap_or(false)
}

/// Whether `path` is on a BPF filesystem.
fn is_bpffs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|fs| fs.filesystem_type() == nix::sys::statfs::BPF_FS_MAGIC)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_live_under_the_interface_and_layout_version() {
        let pins = PinDir::new(Path::new(abi::PIN_ROOT), "eth0").unwrap();
        let expected = format!("{}/eth0/v{}", abi::PIN_ROOT, abi::MAP_LAYOUT_VERSION);
        assert_eq!(pins.path(), Path::new(&expected));
        assert_eq!(pins.link(), Path::new(&expected).join(abi::PIN_LINK));
        assert_eq!(
            pins.map(abi::MAP_SESSIONS),
            Path::new(&expected).join(abi::MAP_SESSIONS)
        );
    }

    #[test]
    fn other_layouts_are_retired_and_this_one_kept() {
        let root = tempfile::tempdir().expect("temp dir");
        let pins = PinDir::new(root.path(), "eth0").expect("pin dir");
        std::fs::create_dir_all(pins.path()).expect("mkdir");
        std::fs::write(pins.map(abi::MAP_SESSIONS), b"").expect("current pin");
        let old = root.path().join("eth0/v1");
        std::fs::create_dir_all(&old).expect("mkdir v1");
        std::fs::write(old.join(abi::MAP_SESSIONS), b"").expect("old pin");
        std::fs::write(old.join(abi::PIN_LINK), b"").expect("old link");
        let unrelated = root.path().join("eth0/notes");
        std::fs::create_dir_all(&unrelated).expect("mkdir other");
        let retired = pins.retire_other_layouts().expect("retire");
        assert_eq!(retired, vec![old.clone()]);
        assert!(!old.exists(), "the v1 pins are gone");
        assert!(
            pins.map(abi::MAP_SESSIONS).exists(),
            "this layout's pins stay"
        );
        assert!(unrelated.exists(), "only v<N> directories are layouts");
    }

    /// Mountinfo lines as this machine writes them: a private bpffs (no peer group), and one in
    /// a shared peer group as systemd's hosts mount it.
    #[test]
    fn only_a_mount_in_a_peer_group_propagates() {
        let private = "23 27 0:22 / /sys rw,relatime - sysfs sysfs rw\n\
                       45 23 0:40 / /sys/fs/bpf rw,relatime - bpf bpf rw\n";
        let shared = "23 27 0:22 / /sys rw,relatime shared:7 - sysfs sysfs rw\n\
                      45 23 0:40 / /sys/fs/bpf rw,relatime shared:12 master:3 - bpf bpf rw\n";
        let bpf = Path::new(BPFFS_MOUNT);
        assert!(!mount_propagates(private, bpf));
        assert!(mount_propagates(shared, bpf));
        assert!(
            !mount_propagates(shared, Path::new("/sys/fs/cgroup")),
            "not mounted"
        );
        let remounted = format!("{shared}46 23 0:41 / /sys/fs/bpf rw - bpf bpf rw\n");
        assert!(
            !mount_propagates(&remounted, bpf),
            "the last mount is the visible one"
        );
    }

    /// The kernel's own names of mount namespaces: a process that `unshare --mount` started is
    /// alone in a namespace of its own; this test process shares its namespace with its child.
    #[test]
    fn a_process_alone_in_its_mount_namespace_is_told_apart() {
        let own = mount_namespace("self").expect("our mount namespace");
        assert!(own.to_string_lossy().starts_with("mnt:["), "{own:?}");
        let mut plain = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("spawn sleep");
        assert!(shares_mount_namespace(std::process::id(), &own));
        let _ = plain.kill();
        let _ = plain.wait();

        let mut alone = std::process::Command::new("unshare")
            .args(["--mount", "sleep", "5"])
            .spawn()
            .expect("spawn unshare");
        let pid = alone.id();
        // unshare makes the namespace, then execs sleep: wait for the exec.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default() != "sleep\n"
        {
            assert!(
                std::time::Instant::now() < deadline,
                "unshare never ran sleep"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let theirs = mount_namespace(&pid.to_string()).expect("its namespace");
        let alone_there = !shares_mount_namespace(pid, &theirs);
        let _ = alone.kill();
        let _ = alone.wait();
        assert_ne!(theirs, own);
        assert!(alone_there, "{theirs:?}");
    }

    #[test]
    fn names_that_are_not_interfaces_are_refused() {
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../etc",
            "with space",
            "sixteen_chars_xx",
        ] {
            assert!(
                matches!(
                    PinDir::new(Path::new("/x"), bad),
                    Err(DataplaneError::InvalidInterfaceName { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(PinDir::new(Path::new("/x"), "fifteen_chars_x").is_ok());
    }
}
