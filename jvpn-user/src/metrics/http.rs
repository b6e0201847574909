//! A minimal HTTP/1.1 responder for the Prometheus scrape: `GET /metrics` and nothing else.
//!
//! A scrape endpoint needs one route, one verb and `Connection: close`, so this reads the request
//! head (bounded in size and time), answers, and closes, rather than pulling in an HTTP stack.
//! Rendering calls the [`GatewayApi`](crate::control::GatewayApi), which may block, so it runs on
//! the blocking pool.

use super::{render, CONTENT_TYPE};
use prometheus_client::registry::Registry;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The longest request head read; scrapers send a few hundred bytes.
const MAX_HEAD: usize = 8 * 1024;
/// How long a client may take to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Scrapes served at once.
const MAX_SCRAPES: usize = 8;

/// Serves `registry` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    shutdown: impl Future<Output = ()>,
) {
    let mut scrapes = crate::accept::serve_bounded(
        "metrics endpoint",
        MAX_SCRAPES,
        || async { listener.accept().await.map(|(stream, _)| stream) },
        |stream| {
            let registry = Arc::clone(&registry);
            async move {
                if let Err(e) = answer(stream, registry).await {
                    tracing::debug!(error = %e, "metrics request ended with an error");
                }
            }
        },
        shutdown,
    )
    .await;
    scrapes.shutdown().await;
}

async fn answer(mut stream: TcpStream, registry: Arc<Registry>) -> std::io::Result<()> {
    let head = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream)).await {
        Ok(head) => head?,
        Err(_) => return Ok(()),
    };
    let Some(head) = head else {
        return respond(
            &mut stream,
            "431 Request Header Fields Too Large",
            "text/plain",
            "",
        )
        .await;
    };
    let mut parts = head.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") => {
            let body = tokio::task::spawn_blocking(move || render(&registry))
                .await
                .map_err(std::io::Error::other)?;
            respond(&mut stream, "200 OK", CONTENT_TYPE, &body).await
        }
        (_, "/metrics") => respond(&mut stream, "405 Method Not Allowed", "text/plain", "").await,
        _ => {
            let body = "jvpn gateway metrics are at /metrics\n";
            respond(&mut stream, "404 Not Found", "text/plain", body).await
        }
    }
}

/// Reads up to the end of the request head; returns its first line, or `None` if the head does not
/// end within [`MAX_HEAD`] bytes.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() >= MAX_HEAD {
            return Ok(None);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line_end = buf
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(buf.len());
    Ok(Some(String::from_utf8_lossy(&buf[..line_end]).into_owned()))
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
