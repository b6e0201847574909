//! Loading, adopting and detaching the XDP dataplane of one interface.
//!
//! A load creates every map pinned under the interface's [`PinDir`], writes the config, attaches
//! the program through a bpf_link and pins the link, so enforcement outlives this process. An
//! adoption re-opens those pins after a controller restart; enforcement never stopped. Dropping a
//! [`Dataplane`] closes this process's handles and nothing else: only [`Dataplane::detach`] turns
//! enforcement off.

use super::arch::check_this_architecture;
use super::kernel_features::{load_refusal, require_kernel_features};
use super::logs::ProgramLogForwarder;
use super::maps::PinnedMaps;
use super::object::JVPN_XDP_OBJECT;
use super::offload;
use super::options::{DataplaneOptions, XdpAttachMode};
use super::pins::{remove_if_present, PinDir, PINNED_MAPS};
use super::privileges::require_bpf_privileges;
use super::{sys, DataplaneError};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::{ProgramError, Xdp, XdpMode};
use aya::EbpfLoader;
use jvpn_common::maps::CONFIG_FLAG_GENERIC_XDP;
use jvpn_common::{abi, GatewayConfig};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::{Mutex, PoisonError};

/// How this handle came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// This process loaded and attached the program.
    Loaded,
    /// This process re-opened a dataplane attached earlier (by this or another process).
    Adopted,
}

/// The XDP dataplane attached to one interface, with handles on its pinned maps.
pub struct Dataplane {
    pub(super) iface: String,
    pub(super) pins: PinDir,
    /// The pinned link, held so enforcement stays on even if someone removes the pin meanwhile.
    pub(super) link: OwnedFd,
    pub(super) program_id: u32,
    pub(super) origin: Origin,
    pub(super) maps: PinnedMaps,
    pub(super) logs: Mutex<Option<ProgramLogForwarder>>,
}

impl std::fmt::Debug for Dataplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataplane")
            .field("iface", &self.iface)
            .field("pin_dir", &self.pins.path())
            .field("program_id", &self.program_id)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl Dataplane {
    /// Loads the program with the options' capacity, pins its maps, writes the config, attaches
    /// it to the interface through a bpf_link and pins the link.
    ///
    /// Fails with [`DataplaneError::AlreadyAttached`] if a jvpn dataplane is pinned for the
    /// interface already (use [`Dataplane::open_or_load`]). Map pins left by a load that died
    /// before pinning its link are removed first, never reused.
    pub fn load(options: &DataplaneOptions) -> Result<Self, DataplaneError> {
        check_this_architecture()?;
        options.validate()?;
        require_bpf_privileges("loading the XDP dataplane")?;
        require_kernel_features()?;
        let pins = PinDir::new(&options.pin_root, &options.iface)?;
        let if_index = interface_index(&options.iface)?;
        pins.create()?;
        if pins.has_link() {
            return Err(DataplaneError::AlreadyAttached {
                iface: options.iface.clone(),
                pin_dir: pins.path().to_owned(),
            });
        }
        pins.retire_other_layouts()?;
        pins.remove_pins()?;
        let unpin_on_error = UnpinOnError(&pins);

        let mut loader = EbpfLoader::new();
        loader
            .map_max_entries(abi::MAP_SESSIONS, options.max_sessions)
            .map_max_entries(abi::MAP_SESSION_INDEX, options.max_sessions)
            .map_max_entries(abi::MAP_REPLAY, options.max_sessions);
        for name in PINNED_MAPS {
            loader.map_pin_path(name, pins.map(name));
        }
        let mut ebpf =
            loader
                .load(JVPN_XDP_OBJECT)
                .map_err(|source| DataplaneError::ObjectLoad {
                    source: Box::new(source),
                })?;
        if let Some(missing) = PINNED_MAPS.into_iter().find(|n| ebpf.map(n).is_none()) {
            return Err(DataplaneError::ObjectIncomplete {
                what: "map",
                name: missing,
            });
        }
        let program: &mut Xdp = ebpf
            .program_mut(abi::PROGRAM_NAME)
            .ok_or(DataplaneError::ObjectIncomplete {
                what: "program",
                name: abi::PROGRAM_NAME,
            })?
            .try_into()
            .map_err(program_error)?;
        program
            .load()
            .map_err(|e| load_refusal(&e).unwrap_or_else(|| program_error(e)))?;
        let program_id = program.info().map_err(program_error)?.id();

        // Configure before attaching, so the first packet already meets the configured port.
        let maps = PinnedMaps::open(&pins)?;
        write_config(&maps, &options.gateway_config())?;

        let mode = match options.xdp_mode {
            XdpAttachMode::Driver => XdpMode::Driver,
            XdpAttachMode::Skb => XdpMode::Skb,
        };
        let link_id = program
            .attach_to_if_index(if_index, mode)
            .map_err(|e| attach_error(&options.iface, options.xdp_mode, e))?;
        let link = program
            .take_link(link_id)
            .map_err(|e| attach_error(&options.iface, options.xdp_mode, e))?;
        let link = FdLink::try_from(link).map_err(|_| DataplaneError::LinkUnsupported {
            iface: options.iface.clone(),
        })?;
        // If pinning fails, dropping `link` detaches the program again.
        let pinned = link.pin(pins.link()).map_err(|e| DataplaneError::Pin {
            operation: "pinning the XDP link at",
            path: pins.link(),
            source: std::io::Error::other(e),
        })?;
        let link = sys::obj_get(&pins.link())
            .map_err(DataplaneError::pin("opening the pinned link", pins.link()))?;
        drop(pinned);
        std::mem::forget(unpin_on_error);
        offload::after_attach(&options.iface, options.xdp_mode);
        match options.xdp_mode {
            XdpAttachMode::Driver => {}
            XdpAttachMode::Skb => tracing::warn!(
                iface = %options.iface,
                "generic XDP (--xdp-mode skb) runs after GRO and on whole GSO packets: it drops \
                 a run of datagrams longer than one datagram whole (MERGED_RUN) and judges a \
                 shorter run by its first, the rest checked by the controller alone; use driver \
                 mode unless the driver of {} has no native XDP (docs/datapath.md, \"Merged \
                 runs\")",
                options.iface
            ),
        }
        tracing::info!(
            iface = %options.iface,
            program_id,
            pin_dir = %pins.path().display(),
            "XDP dataplane loaded and attached"
        );
        Ok(Self {
            iface: options.iface.clone(),
            pins,
            link,
            program_id,
            origin: Origin::Loaded,
            maps,
            logs: Mutex::new(ProgramLogForwarder::for_program(program_id)),
        })
    }

    /// Re-opens the dataplane pinned for `iface` under [`abi::PIN_ROOT`].
    pub fn adopt(iface: &str) -> Result<Self, DataplaneError> {
        Self::adopt_in(Path::new(abi::PIN_ROOT), iface)
    }

    /// Re-opens the dataplane pinned for `iface` under `pin_root`: its link, maps and program
    /// logs. Fails with [`DataplaneError::NotAttached`] if no link is pinned there.
    pub fn adopt_in(pin_root: &Path, iface: &str) -> Result<Self, DataplaneError> {
        check_this_architecture()?;
        require_bpf_privileges("adopting the XDP dataplane")?;
        let pins = PinDir::new(pin_root, iface)?;
        if !pins.has_link() {
            return Err(DataplaneError::NotAttached {
                iface: iface.to_owned(),
                pin_dir: pins.path().to_owned(),
            });
        }
        let program_id =
            FdLink::from(PinnedLink::from_pin(pins.link()).map_err(link_error(&pins))?)
                .info()
                .map_err(link_error(&pins))?
                .program_id();
        let link = sys::obj_get(&pins.link())
            .map_err(DataplaneError::pin("opening the pinned link", pins.link()))?;
        let maps = PinnedMaps::open(&pins)?;
        tracing::info!(iface, program_id, pin_dir = %pins.path().display(), "XDP dataplane adopted");
        Ok(Self {
            iface: iface.to_owned(),
            pins,
            link,
            program_id,
            origin: Origin::Adopted,
            maps,
            logs: Mutex::new(ProgramLogForwarder::for_program(program_id)),
        })
    }

    /// Adopts the dataplane pinned for `options.iface` if there is one, and then applies the
    /// options' config (port, mode, rate limits); loads a new one otherwise. The capacity of an
    /// adopted table cannot change: a different `max_sessions` is logged and ignored.
    pub fn open_or_load(options: &DataplaneOptions) -> Result<Self, DataplaneError> {
        options.validate()?;
        let pins = PinDir::new(&options.pin_root, &options.iface)?;
        if !pins.has_link() {
            return Self::load(options);
        }
        let dataplane = Self::adopt_in(&options.pin_root, &options.iface)?;
        // The link keeps the mode it was attached in, and the config entry says which.
        let adopted_flags = dataplane.config()?.flags & CONFIG_FLAG_GENERIC_XDP;
        let mut config = options.gateway_config();
        if config.flags & CONFIG_FLAG_GENERIC_XDP != adopted_flags {
            tracing::warn!(
                iface = %options.iface,
                requested = ?options.xdp_mode,
                "the adopted XDP program stays attached in the mode it was loaded in; detach and \
                 load again to change it"
            );
        }
        config.flags = (config.flags & !CONFIG_FLAG_GENERIC_XDP) | adopted_flags;
        if dataplane.session_capacity() != options.max_sessions {
            tracing::warn!(
                iface = %options.iface,
                capacity = dataplane.session_capacity(),
                requested = options.max_sessions,
                "the adopted session table keeps its capacity; detach and load again to change it"
            );
        }
        dataplane.set_config(&config)?;
        Ok(dataplane)
    }

    /// Detaches the program from the interface and removes every pin. Forcing the link off
    /// (`BPF_LINK_DETACH`) means enforcement stops even if another process still holds the link.
    pub fn detach(self) -> Result<(), DataplaneError> {
        match sys::link_detach(self.link.as_fd()) {
            Ok(()) => {}
            // The interface is gone, and the link with it.
            Err(e) if e.raw_os_error() == Some(libc::ENOLINK) => {}
            Err(source) => {
                return Err(DataplaneError::Sys {
                    operation: "detaching the XDP link (BPF_LINK_DETACH)",
                    source,
                })
            }
        }
        remove_if_present(&self.pins.link())?;
        self.pins.remove_all()?;
        tracing::info!(iface = %self.iface, "XDP dataplane detached and unpinned");
        Ok(())
    }

    /// The interface the program is attached to.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// The directory of the pins.
    pub fn pin_dir(&self) -> &Path {
        self.pins.path()
    }

    /// The kernel's id of the XDP program.
    pub fn program_id(&self) -> u32 {
        self.program_id
    }

    /// Whether this handle loaded the program or adopted it.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// The current config entry.
    pub fn config(&self) -> Result<GatewayConfig, DataplaneError> {
        self.maps
            .config
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&0, 0)
            .map_err(DataplaneError::map("reading", abi::MAP_CONFIG))
    }

    /// How the program is attached, as the config entry records it ([`CONFIG_FLAG_GENERIC_XDP`]).
    pub fn attach_mode(&self) -> Result<XdpAttachMode, DataplaneError> {
        Ok(match self.config()?.flags & CONFIG_FLAG_GENERIC_XDP {
            0 => XdpAttachMode::Driver,
            _ => XdpAttachMode::Skb,
        })
    }

    /// Replaces the config entry; the program sees the new one from its next packet.
    pub fn set_config(&self, config: &GatewayConfig) -> Result<(), DataplaneError> {
        write_config(&self.maps, config)
    }

    /// Takes the forwarder of the program's aya-log records into `tracing`; `None` if the object
    /// has no aya-log ring or the forwarder was taken already. Spawn its `run` on the runtime.
    pub fn take_log_forwarder(&self) -> Option<ProgramLogForwarder> {
        self.logs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

// The controller shares one handle between its tasks.
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<Dataplane>();
};

/// Removes the pins of a load that failed before its link was pinned; forgotten on success.
struct UnpinOnError<'a>(&'a PinDir);

impl Drop for UnpinOnError<'_> {
    fn drop(&mut self) {
        if let Err(error) = self.0.remove_all() {
            tracing::warn!(%error, "could not remove the pins of a failed load");
        }
    }
}

fn write_config(maps: &PinnedMaps, config: &GatewayConfig) -> Result<(), DataplaneError> {
    maps.config
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .set(0, config, 0)
        .map_err(DataplaneError::map("writing", abi::MAP_CONFIG))
}

/// The index of `iface` in the calling thread's network namespace.
fn interface_index(iface: &str) -> Result<u32, DataplaneError> {
    nix::net::if_::if_nametoindex(iface).map_err(|_| DataplaneError::InterfaceNotFound {
        iface: iface.to_owned(),
    })
}

fn program_error(source: ProgramError) -> DataplaneError {
    DataplaneError::ProgramLoad {
        program: abi::PROGRAM_NAME,
        source: Box::new(source),
    }
}

/// Names the usual attach failures: something else holds the hook, or no native XDP.
fn attach_error(iface: &str, mode: XdpAttachMode, error: ProgramError) -> DataplaneError {
    let errno = match &error {
        ProgramError::SyscallError(e) => e.io_error.raw_os_error(),
        _ => None,
    };
    match errno {
        Some(libc::EBUSY | libc::EEXIST) => DataplaneError::XdpBusy {
            iface: iface.to_owned(),
        },
        Some(libc::EOPNOTSUPP) if mode == XdpAttachMode::Driver => {
            DataplaneError::DriverModeUnsupported {
                iface: iface.to_owned(),
            }
        }
        _ => DataplaneError::Attach {
            iface: iface.to_owned(),
            source: Box::new(error),
        },
    }
}

fn link_error(pins: &PinDir) -> impl Fn(aya::programs::links::LinkError) -> DataplaneError + '_ {
    move |e| DataplaneError::Pin {
        operation: "opening the pinned link",
        path: pins.link(),
        source: std::io::Error::other(e),
    }
}
