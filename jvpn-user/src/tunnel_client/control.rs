//! The running client's control socket: `jvpn client jump` asks it to reattach now.
//!
//! One line per connection on a Unix stream socket at `/run/jvpn/client-<tun>.sock`: the request
//! `jump` or `jump <uplink>`, the answer `ok <version>` or `error <message>`. Only root can reach
//! it (the directory is root's), which is who may move the tunnel.

use super::TunnelClientError;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// Where the client of TUN device `tun` listens for control requests.
pub fn control_socket_path(tun: &str) -> PathBuf {
    PathBuf::from(format!("/run/jvpn/client-{tun}.sock"))
}

/// A parsed control request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlRequest {
    /// Reattach now, from `uplink` (an interface) or, without one, from the current uplink.
    Jump {
        /// The interface to send from after the jump.
        uplink: Option<String>,
    },
}

impl ControlRequest {
    /// Parses one request line.
    pub fn parse(line: &str) -> Option<Self> {
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("jump"), uplink, None) => Some(Self::Jump {
                uplink: uplink.map(str::to_owned),
            }),
            _ => None,
        }
    }

    /// The request as one line.
    pub fn to_line(&self) -> String {
        match self {
            Self::Jump { uplink: Some(u) } => format!("jump {u}\n"),
            Self::Jump { uplink: None } => "jump\n".to_owned(),
        }
    }
}

/// Asks the client listening at `socket` to jump; returns the session's new version.
pub fn request_jump(socket: &Path, uplink: Option<&str>) -> Result<u64, TunnelClientError> {
    let control = |source| TunnelClientError::Control {
        path: socket.to_owned(),
        source,
    };
    let mut stream = UnixStream::connect(socket).map_err(control)?;
    let request = ControlRequest::Jump {
        uplink: uplink.map(str::to_owned),
    };
    stream
        .write_all(request.to_line().as_bytes())
        .map_err(control)?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .map_err(control)?;
    let answer = answer.trim();
    match answer.strip_prefix("ok ").map(str::parse::<u64>) {
        Some(Ok(version)) => Ok(version),
        _ => Err(TunnelClientError::JumpRefused(
            answer.strip_prefix("error ").unwrap_or(answer).to_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_garbage_is_refused() {
        let cases = [
            ("jump\n", Some(ControlRequest::Jump { uplink: None })),
            (
                "jump lte\n",
                Some(ControlRequest::Jump {
                    uplink: Some("lte".into()),
                }),
            ),
            ("jump a b\n", None),
            ("terminate\n", None),
            ("", None),
        ];
        for (line, expected) in cases {
            let parsed = ControlRequest::parse(line);
            assert_eq!(parsed, expected, "{line:?}");
            if let Some(request) = parsed {
                assert_eq!(request.to_line(), line);
            }
        }
    }
}
