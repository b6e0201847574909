//! Network interface names: the one rule every `--iface`, `--tun`, `tun =` and pin path is
//! checked by.
//!
//! The rule is the kernel's (`dev_valid_name` in `net/core/dev.c`): 1 to `IFNAMSIZ - 1` bytes,
//! not `.` or `..`, and no `/`, `:` or byte the kernel's `isspace` matches (tab to carriage return,
//! space, and 0xA0, which its Latin-1 table counts as a space, so a UTF-8 name whose encoding holds
//! that byte is refused by the kernel too). One addition: no control characters, which the kernel
//! would take but which could not be printed back on one line. A name that passes is also a safe
//! path component (the pin directory).

/// The longest interface name the kernel accepts (`IFNAMSIZ` less the terminating NUL).
pub const MAX_IFACE_NAME: usize = libc::IFNAMSIZ - 1;

/// How much of a refused name is echoed back.
const ECHO_LIMIT: usize = 40;

/// Why a name cannot name a network interface.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InterfaceNameError {
    /// The name is empty.
    #[error("an interface name cannot be empty")]
    Empty,
    /// The name is longer than [`MAX_IFACE_NAME`] bytes.
    #[error("{name:?} is longer than {MAX_IFACE_NAME} bytes, the limit for interface names")]
    TooLong {
        /// The name, shortened.
        name: String,
    },
    /// `.`, `..`, or a character the kernel refuses.
    #[error(
        "{name:?} is not a valid interface name: no '/', ':', spaces or control characters, and \
         not '.' or '..'; list interfaces with `ip link`"
    )]
    Invalid {
        /// The name, shortened.
        name: String,
    },
}

/// Whether the kernel's `isspace` matches `byte` (its ctype table: `\t` to `\r`, space, 0xA0).
const fn kernel_space(byte: u8) -> bool {
    matches!(byte, b'\t'..=b'\r' | b' ' | 0xA0)
}

/// Checks `name` by the kernel's rule (see the module doc).
pub fn check_interface_name(name: &str) -> Result<(), InterfaceNameError> {
    let echo = || name.chars().take(ECHO_LIMIT).collect::<String>();
    if name.is_empty() {
        return Err(InterfaceNameError::Empty);
    }
    if name.len() > MAX_IFACE_NAME {
        return Err(InterfaceNameError::TooLong { name: echo() });
    }
    let bad_byte = name
        .bytes()
        .any(|b| b == b'/' || b == b':' || b == 0 || kernel_space(b));
    if name == "." || name == ".." || bad_byte || name.chars().any(char::is_control) {
        return Err(InterfaceNameError::Invalid { name: echo() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_kernels_rule() {
        let long = "a".repeat(MAX_IFACE_NAME);
        let cases: &[(&str, bool)] = &[
            ("eth0", true),
            ("wlp2s0.100", true),
            ("veth-a_b@x", true),
            (&long, true),
            ("", false),
            ("sixteen-bytes-xx", false),
            (".", false),
            ("..", false),
            ("...", true),
            ("a/b", false),
            ("a:1", false),
            ("a b", false),
            ("a\tb", false),
            ("a\u{b}b", false),
            ("a\u{1}b", false),
            ("a\0b", false),
            // U+00E0 is C3 A0 in UTF-8: the kernel reads the 0xA0 byte as a space.
            ("\u{e0}", false),
            ("\u{e9}", true),
        ];
        for (name, valid) in cases {
            assert_eq!(check_interface_name(name).is_ok(), *valid, "{name:?}");
        }
        assert_eq!(check_interface_name(""), Err(InterfaceNameError::Empty));
        assert!(matches!(
            check_interface_name("averyveryverylongname"),
            Err(InterfaceNameError::TooLong { .. })
        ));
    }
}
