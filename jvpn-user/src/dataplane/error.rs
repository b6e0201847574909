//! The dataplane loader's errors: one variant per thing that can go wrong, each naming the object
//! involved and what the operator should do next.

use std::io;
use std::path::PathBuf;

/// Why a dataplane operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// The process lacks the privileges to load BPF programs or attach XDP.
    #[error(
        "not running as root: {operation} needs root (or CAP_BPF and CAP_NET_ADMIN); \
         run jvpn with sudo"
    )]
    NotPrivileged {
        /// What was being attempted.
        operation: &'static str,
    },

    /// The XDP program's replay window is not proven on this CPU's memory order.
    #[error(
        "refusing to load the XDP dataplane on {arch}: its replay window uses plain loads, proven \
         only under x86-64's memory order (a weakly ordered CPU could accept a replayed nonce); \
         run the gateway on an x86-64 host"
    )]
    UnprovenArchitecture {
        /// The architecture found.
        arch: String,
    },

    /// The running kernel lacks BPF features the XDP program uses.
    #[error(
        "this kernel (Linux {release}) lacks {}, which the jvpn XDP program uses; jvpn needs \
         Linux {} or later: boot a newer kernel (or a distribution kernel with these backported)",
        super::kernel_features::describe_missing(missing),
        super::kernel_features::OLDEST_SUPPORTED_LINUX
    )]
    KernelTooOld {
        /// The running kernel's release (`uname -r`).
        release: String,
        /// What it lacks, each with the mainline version that brought it.
        missing: Vec<super::KernelFeature>,
    },

    /// The verifier refused a call to a BPF helper this kernel does not have (one the feature
    /// list does not name).
    #[error(
        "this kernel (Linux {release}) lacks BPF helper #{helper} (see `enum bpf_func_id` in \
         linux/bpf.h for the version that added it), which the jvpn XDP program uses: boot a \
         newer kernel"
    )]
    KernelLacksHelper {
        /// The running kernel's release (`uname -r`).
        release: String,
        /// The helper's number.
        helper: u32,
    },

    /// The interface name cannot name a network interface (or would escape the pin directory).
    #[error("invalid interface name for the pin directory: {source}")]
    InvalidInterfaceName {
        /// The name given.
        iface: String,
        /// What is wrong with it.
        #[source]
        source: crate::iface::InterfaceNameError,
    },

    /// No interface by that name exists in this network namespace.
    #[error("interface {iface} not found; list interfaces with `ip link`")]
    InterfaceNotFound {
        /// The name given.
        iface: String,
    },

    /// The options do not describe a dataplane that can run.
    #[error("invalid dataplane options: {reason}")]
    InvalidOptions {
        /// What is wrong and how to fix it.
        reason: String,
    },

    /// The pin root is not on a BPF filesystem and one could not be mounted.
    #[error(
        "{path} is not on a BPF filesystem and mounting one failed ({source}); mount it with \
         `mount -t bpf bpf /sys/fs/bpf`"
    )]
    BpffsUnavailable {
        /// The directory that should be on bpffs.
        path: PathBuf,
        /// Why it is not.
        source: io::Error,
    },

    /// A jvpn dataplane is already attached to the interface (its link is pinned).
    #[error(
        "a jvpn dataplane is already attached to {iface} (pinned in {}); adopt it \
         (`Dataplane::open_or_load`) or detach it first",
        pin_dir.display()
    )]
    AlreadyAttached {
        /// The interface.
        iface: String,
        /// Where its pins live.
        pin_dir: PathBuf,
    },

    /// No jvpn dataplane is pinned for the interface, so there is nothing to adopt.
    #[error(
        "no jvpn dataplane is attached to {iface} (no pinned link in {}); load one first",
        pin_dir.display()
    )]
    NotAttached {
        /// The interface.
        iface: String,
        /// Where its pins would live.
        pin_dir: PathBuf,
    },

    /// Another XDP program (not a pinned jvpn one) holds the interface.
    #[error(
        "{iface} already has another XDP program attached; inspect it with `ip link show dev {iface}` \
         and remove it with `ip link set dev {iface} xdp off`"
    )]
    XdpBusy {
        /// The interface.
        iface: String,
    },

    /// The driver does not run XDP natively.
    #[error(
        "{iface} does not support native (driver) XDP; attach in skb mode instead (slower, same \
         enforcement)"
    )]
    DriverModeUnsupported {
        /// The interface.
        iface: String,
    },

    /// A gateway asked for generic XDP on a veth, where a peer's UDP GSO runs arrive whole.
    #[error(
        "{iface} is a veth, which runs XDP natively: start the gateway with `--xdp-mode driver`. \
         Generic XDP on a veth sees each UDP GSO run of its peer (a `jvpn client` sends them) as \
         one frame, which the program drops whole as MERGED_RUN, so the peer's bulk traffic \
         would be lost (docs/datapath.md, \"Merged runs\"); if a program is still attached \
         there in generic mode, remove it first with `jvpn detach --iface {iface}`"
    )]
    GenericXdpOnVeth {
        /// The interface.
        iface: String,
    },

    /// The kernel attached the program without a bpf_link, which cannot be pinned.
    #[error(
        "the kernel attached XDP to {iface} without a bpf_link, so enforcement could not outlive \
         this process; jvpn needs Linux 5.9 or later. Remove the attachment with \
         `ip link set dev {iface} xdp off`"
    )]
    LinkUnsupported {
        /// The interface.
        iface: String,
    },

    /// The embedded object could not be loaded (parse, map creation, BTF).
    #[error(
        "loading the jvpn XDP object failed: {source}; rebuild jvpn (`cargo build`) and check \
         `dmesg` for BPF errors"
    )]
    ObjectLoad {
        /// The loader's error.
        #[source]
        source: Box<aya::EbpfError>,
    },

    /// The object does not contain what the loader expects.
    #[error(
        "the embedded XDP object has no {what} named {name}; the jvpn binary and its XDP object \
         disagree, rebuild with `cargo build`"
    )]
    ObjectIncomplete {
        /// "program" or "map".
        what: &'static str,
        /// The missing name.
        name: &'static str,
    },

    /// The kernel refused the program (usually the verifier).
    #[error(
        "the kernel refused the XDP program {program}: {source}; this is a jvpn bug, report it \
         with the verifier log above"
    )]
    ProgramLoad {
        /// The program name.
        program: &'static str,
        /// The loader's error, with the verifier log.
        #[source]
        source: Box<aya::programs::ProgramError>,
    },

    /// Attaching the program to the interface failed for another reason.
    #[error(
        "attaching XDP to {iface} failed: {source}; check `dmesg` and `ip link show dev {iface}`"
    )]
    Attach {
        /// The interface.
        iface: String,
        /// The attach error.
        #[source]
        source: Box<aya::programs::ProgramError>,
    },

    /// A map operation failed.
    #[error("{operation} on map {map} failed: {source}")]
    Map {
        /// What was being done.
        operation: &'static str,
        /// The map name.
        map: &'static str,
        /// The error.
        #[source]
        source: Box<aya::maps::MapError>,
    },

    /// A pinned map does not have the layout this build expects.
    #[error(
        "pinned map {} does not match this jvpn's layout ({source}); detach the old dataplane \
         (remove its pin directory) and load again",
        path.display()
    )]
    PinnedLayout {
        /// The pin path.
        path: PathBuf,
        /// The mismatch.
        #[source]
        source: Box<aya::maps::MapError>,
    },

    /// The session array could not be mapped into this process, or is not memory-mappable.
    #[error(
        "mapping the session array {map} into memory failed: {source}; it must be a \
         BPF_F_MMAPABLE array of this jvpn's layout (kernel 5.5 or later): detach the old \
         dataplane (remove its pin directory) and load again"
    )]
    SessionArrayMap {
        /// The map's name.
        map: &'static str,
        /// What failed.
        #[source]
        source: io::Error,
    },

    /// Creating, opening or removing a pin failed.
    #[error("{operation} {} failed: {source}; check that it is on a BPF filesystem", path.display())]
    Pin {
        /// What was being done.
        operation: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },

    /// The session table has no room for another session.
    #[error("session table full (capacity {capacity}); raise --max-sessions")]
    TableFull {
        /// The table's capacity.
        capacity: u32,
    },

    /// An update would move a session's state_version backwards.
    #[error(
        "refusing to overwrite session {session_id:#018x} at state_version {current} with older \
         state_version {attempted}; session updates must be applied in version order"
    )]
    StaleUpdate {
        /// The session.
        session_id: u64,
        /// Its version in the table.
        current: u64,
        /// The version of the refused update.
        attempted: u64,
    },

    /// Session id 0 is reserved for HELLO and never names a session.
    #[error("session id 0 is reserved for HELLO and cannot be stored")]
    ReservedSessionId,

    /// The event reader was already taken from this dataplane.
    #[error("the security event reader was already taken; each Dataplane has one reader")]
    EventReaderTaken,

    /// An async reader was requested outside a tokio runtime.
    #[error("{what} needs a tokio runtime; create it from inside one")]
    NoRuntime {
        /// What needed the runtime.
        what: &'static str,
    },

    /// Waiting on a ring buffer failed.
    #[error("waiting on the {what} ring buffer failed: {source}")]
    RingIo {
        /// Which ring buffer.
        what: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },

    /// A system call the loader makes itself failed.
    #[error("{operation} failed: {source}")]
    Sys {
        /// What was being done.
        operation: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
}

impl DataplaneError {
    /// A [`DataplaneError::Map`] from an aya map error.
    pub(crate) fn map(
        operation: &'static str,
        map: &'static str,
    ) -> impl FnOnce(aya::maps::MapError) -> Self {
        move |source| Self::Map {
            operation,
            map,
            source: Box::new(source),
        }
    }

    /// A [`DataplaneError::Pin`] from an I/O error.
    pub(crate) fn pin(operation: &'static str, path: PathBuf) -> impl FnOnce(io::Error) -> Self {
        move |source| Self::Pin {
            operation,
            path,
            source,
        }
    }
}

/// The errno behind an aya map error, if it came from a syscall.
pub(crate) fn map_errno(error: &aya::maps::MapError) -> Option<i32> {
    match error {
        aya::maps::MapError::SyscallError(e) => e.io_error.raw_os_error(),
        aya::maps::MapError::IoError(e) => e.raw_os_error(),
        _ => None,
    }
}
