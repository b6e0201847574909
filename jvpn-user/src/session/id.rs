//! Session identifiers: random 64-bit values that name their owning node and are never 0.
//!
//! Layout (see [`jvpn_common::abi::SESSION_ID_NODE_BITS`]):
//!
//! ```text
//!  63             48 47                                            0
//! +-----------------+-----------------------------------------------+
//! |  owner node id  |        random, never all zero (48 bits)       |
//! +-----------------+-----------------------------------------------+
//! ```
//!
//! The node bits leave room for sticky ownership in a cluster (spec section 7): any node can tell
//! which node is authoritative for a session from its id alone. A single gateway is node 0. The
//! random part is drawn from the operating system's generator, so ids cannot be guessed; that an id
//! is never reused on a gateway is enforced by the store, which remembers every id it ever issued.

use jvpn_common::abi::SESSION_ID_NODE_BITS;
use rand::RngCore;
use std::fmt;
use std::str::FromStr;

/// Number of random low bits of a session id.
pub const SESSION_ID_RANDOM_BITS: u32 = 64 - SESSION_ID_NODE_BITS;
const RANDOM_MASK: u64 = (1 << SESSION_ID_RANDOM_BITS) - 1;

/// The node that owns a session: the high [`SESSION_ID_NODE_BITS`] bits of its id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(u16);

const _: () = assert!(SESSION_ID_NODE_BITS == u16::BITS);

impl NodeId {
    /// The node of a single, unclustered gateway.
    pub const SINGLE: NodeId = NodeId(0);

    /// A node id.
    pub const fn new(id: u16) -> Self {
        Self(id)
    }

    /// The numeric node id.
    pub const fn get(self) -> u16 {
        self.0
    }
}

/// A session id: never 0 (0 is the id a HELLO carries), printed as 16 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(u64);

/// The longest slice of a hostile argument echoed back in an error message.
const ECHO_LIMIT: usize = 40;

/// Why a piece of text is not a session id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionIdError {
    /// Empty, or a character that is not a hex digit.
    #[error("{text:?} is not a session id: expected up to 16 hex digits, as printed by `jvpn sessions list`")]
    NotHex {
        /// The offending text, shortened.
        text: String,
    },
    /// More than 16 significant hex digits: does not fit in 64 bits.
    #[error("{text:?} is not a session id: longer than 16 hex digits (session ids are 64-bit)")]
    TooLong {
        /// The offending text, shortened.
        text: String,
    },
    /// Zero is never assigned (it is the id a HELLO carries).
    #[error("session id 0 is never assigned; copy the id from `jvpn sessions list`")]
    Zero,
}

impl SessionId {
    /// A raw id as printed everywhere (16 hex digits), for logs and messages that hold the `u64`.
    pub const fn show(raw: u64) -> ShownId {
        ShownId(raw)
    }

    /// The id with this value, or `None` for 0.
    pub const fn new(value: u64) -> Option<Self> {
        if value == 0 {
            None
        } else {
            Some(Self(value))
        }
    }

    /// The id with this owner node and random part, or `None` if the random part is 0 or wider
    /// than [`SESSION_ID_RANDOM_BITS`].
    pub const fn from_parts(node: NodeId, random: u64) -> Option<Self> {
        if random == 0 || random & !RANDOM_MASK != 0 {
            return None;
        }
        Some(Self(((node.0 as u64) << SESSION_ID_RANDOM_BITS) | random))
    }

    /// A fresh random id owned by `node`. Uniqueness against ids already issued is the store's
    /// job: creating a session is a compare-and-set from "absent" that refuses any issued id.
    pub fn generate(node: NodeId, rng: &mut impl RngCore) -> Self {
        loop {
            if let Some(id) = Self::from_parts(node, rng.next_u64() & RANDOM_MASK) {
                return id;
            }
        }
    }

    /// The id as carried on the wire and used as a map key.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The node that owns this session.
    pub const fn node(self) -> NodeId {
        NodeId((self.0 >> SESSION_ID_RANDOM_BITS) as u16)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A raw session id (as a header or a map key carries it, 0 included) shown as [`SessionId`]
/// shows it; from [`SessionId::show`].
#[derive(Clone, Copy, Debug)]
pub struct ShownId(u64);

impl fmt::Display for ShownId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match SessionId::new(self.0) {
            Some(id) => id.fmt(f),
            // The id a HELLO carries: printed in the same width.
            None => write!(f, "{:016x}", 0),
        }
    }
}

impl FromStr for SessionId {
    type Err = SessionIdError;

    /// Parses the hex form printed by [`fmt::Display`], with or without a `0x` prefix.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let echo = || text.chars().take(ECHO_LIMIT).collect::<String>();
        let digits = text
            .strip_prefix("0x")
            .or_else(|| text.strip_prefix("0X"))
            .unwrap_or(text);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(SessionIdError::NotHex { text: echo() });
        }
        let significant = digits.trim_start_matches('0');
        if significant.len() > 16 {
            return Err(SessionIdError::TooLong { text: echo() });
        }
        // At most 16 hex digits: cannot overflow. An all-zero string parses to 0, refused below.
        let value = u64::from_str_radix(significant, 16).unwrap_or(0);
        Self::new(value).ok_or(SessionIdError::Zero)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::mock::StepRng;

    #[test]
    fn layout_puts_the_node_in_the_high_bits() {
        let id = SessionId::from_parts(NodeId::new(0xabcd), 0x1234).unwrap();
        assert_eq!(id.get(), 0xabcd_0000_0000_1234);
        assert_eq!(id.node(), NodeId::new(0xabcd));
    }

    #[test]
    fn zero_and_oversized_random_parts_are_refused() {
        assert_eq!(SessionId::new(0), None);
        assert_eq!(SessionId::from_parts(NodeId::SINGLE, 0), None);
        assert_eq!(SessionId::from_parts(NodeId::SINGLE, 1 << 48), None);
    }

    #[test]
    fn generate_skips_a_zero_random_part() {
        // The first draw has a zero random part (only node-width bits set), the second does not.
        let mut rng = StepRng::new(0xffff_0000_0000_0000, 1);
        let id = SessionId::generate(NodeId::new(7), &mut rng);
        assert_eq!(id.get(), 0x0007_0000_0000_0001);
    }

    #[test]
    fn generated_ids_are_never_zero_and_keep_their_node() {
        let mut rng = rand::thread_rng();
        for _ in 0..10_000 {
            let id = SessionId::generate(NodeId::new(3), &mut rng);
            assert_ne!(id.get() & RANDOM_MASK, 0);
            assert_eq!(id.node(), NodeId::new(3));
        }
    }

    #[test]
    fn display_and_parse_round_trip() {
        let id = SessionId::new(0x00ab_0000_0000_00ff).unwrap();
        assert_eq!(id.to_string(), "00ab0000000000ff");
        assert_eq!("00ab0000000000ff".parse::<SessionId>(), Ok(id));
        assert_eq!("0xab0000000000ff".parse::<SessionId>(), Ok(id));
        assert_eq!("0".parse::<SessionId>(), Err(SessionIdError::Zero));
        assert!(matches!(
            "xyz".parse::<SessionId>(),
            Err(SessionIdError::NotHex { .. })
        ));
        assert!(matches!(
            "10000000000000000".parse::<SessionId>(),
            Err(SessionIdError::TooLong { .. })
        ));
    }
}
