//! jvpn userspace: the dataplane loader, and (to come) the gateway controller, client and CLI.
#![deny(missing_docs)]
