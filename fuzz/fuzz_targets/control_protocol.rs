//! The control-socket protocol decoder (`control::protocol`): the line reader on an arbitrary byte
//! stream, and every line as a `Request` (what the daemon reads) and a `Response` (what the CLI
//! reads).
//!
//! Invariants: nothing panics; the reader never returns a line longer than its limit or one with a
//! newline in it, and either consumes the stream or stops at an error; a request or response that
//! decodes re-encodes to a line that decodes to the same value.
#![no_main]

use jvpn_user::control::protocol::{read_line, to_line, FrameError};
use jvpn_user::control::{Request, Response};
use libfuzzer_sys::fuzz_target;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

fuzz_target!(|data: &[u8]| {
    // The first byte picks a small line limit so the too-long path is reached too.
    let Some((&limit, stream)) = data.split_first() else {
        return;
    };
    let limit = usize::from(limit).max(1);
    let mut reader = stream;
    loop {
        let before = reader.len();
        match ready(read_line(&mut reader, limit)) {
            Ok(None) => {
                assert!(reader.is_empty(), "end of stream before its end");
                break;
            }
            Ok(Some(line)) => {
                assert!(
                    line.len() < limit,
                    "a line of {} bytes under limit {limit}",
                    line.len()
                );
                assert!(!line.contains('\n'));
                assert_eq!(
                    before - reader.len(),
                    line.len() + 1,
                    "consumed the line and its newline"
                );
                decode(&line);
            }
            Err(FrameError::TooLong { limit: l }) => {
                assert_eq!(l, limit);
                break;
            }
            Err(FrameError::Truncated) => {
                assert!(reader.is_empty(), "truncated before the end of the stream");
                break;
            }
            Err(FrameError::NotUtf8) => {}
            Err(FrameError::Io(error)) => panic!("reading a byte slice failed: {error}"),
        }
    }
    if let Ok(text) = std::str::from_utf8(stream) {
        decode(text);
    }
});

/// Decodes `line` both ways and checks that what decodes round-trips.
fn decode(line: &str) {
    if let Ok(request) = serde_json::from_str::<Request>(line) {
        let again = to_line(&request);
        let back: Request = serde_json::from_str(&again)
            .unwrap_or_else(|e| panic!("request {again:?} does not read back: {e}"));
        assert_eq!(back, request);
    }
    if let Ok(response) = serde_json::from_str::<Response>(line) {
        let again = to_line(&response);
        let back: Response = serde_json::from_str(&again)
            .unwrap_or_else(|e| panic!("response {again:?} does not read back: {e}"));
        assert_eq!(back, response);
        assert!(!response.name().is_empty());
    }
}

/// Runs a future that cannot wait: reading from a byte slice is always ready.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("reading from a byte slice waited"),
    }
}
