//! The control socket server: accepts CLI connections and answers them from a [`GatewayApi`].
//!
//! [`run`] is the testable entry point (as in tokio's mini-redis): it takes a bound listener, the
//! API and a shutdown future, and returns once shutdown has fired and every connection has ended.
//! Connections are capped at [`MAX_CONNECTIONS`]; API calls run on the blocking pool because they
//! may touch the durable store; an `events --follow` stream ends with `end_of_events` at shutdown.

use super::protocol::{read_line, to_line, FrameError, Request, Response, MAX_REQUEST_LINE};
use super::{ApiError, GatewayApi};
use crate::events::EventFilter;
use std::future::Future;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

/// Connections served at once; further clients wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 64;

/// Serves `api` on `listener` until `shutdown` completes, then waits for open connections to end.
pub async fn run(
    listener: UnixListener,
    api: Arc<dyn GatewayApi>,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = crate::accept::serve_bounded(
        "control socket",
        MAX_CONNECTIONS,
        || async { listener.accept().await.map(|(stream, _)| stream) },
        |stream| {
            let (api, stop) = (Arc::clone(&api), stop_rx.clone());
            async move {
                if let Err(e) = serve_connection(stream, api, stop).await {
                    tracing::debug!(error = %e, "control connection ended with an error");
                }
            }
        },
        shutdown,
    )
    .await;
    // Receivers only fail to see this if they already ended.
    let _ = stop_tx.send(true);
    while connections.join_next().await.is_some() {}
}

async fn serve_connection(
    stream: UnixStream,
    api: Arc<dyn GatewayApi>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), std::io::Error> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    loop {
        let line = tokio::select! {
            _ = stop.changed() => return Ok(()),
            line = read_line(&mut read, MAX_REQUEST_LINE) => line,
        };
        let request = match line {
            Ok(None) => return Ok(()),
            Ok(Some(line)) => serde_json::from_str::<Request>(&line)
                .map_err(|e| bad_request(format!("not a valid request: {e}"))),
            Err(FrameError::Io(e)) => return Err(e),
            Err(e) => Err(bad_request(e.to_string())),
        };
        match request {
            Err(error) => {
                // After a framing or parse error the stream cannot be trusted: answer, then close.
                write
                    .write_all(to_line(&Response::Error(error)).as_bytes())
                    .await?;
                return Ok(());
            }
            Ok(Request::Events { follow, filter }) => {
                stream_events(&api, follow, filter, &mut read, &mut write, &mut stop).await?;
                if follow {
                    return Ok(());
                }
            }
            Ok(request) => {
                let response = answer(Arc::clone(&api), request).await;
                write.write_all(to_line(&response).as_bytes()).await?;
            }
        }
    }
}

fn bad_request(problem: String) -> ApiError {
    ApiError::BadRequest { problem }
}

/// Answers a one-shot request on the blocking pool.
async fn answer(api: Arc<dyn GatewayApi>, request: Request) -> Response {
    let operation = request_name(&request);
    tokio::task::spawn_blocking(move || dispatch(api.as_ref(), request))
        .await
        .unwrap_or_else(|e| {
            Response::Error(ApiError::Internal {
                operation: operation.to_string(),
                problem: format!("the handler panicked: {e}"),
            })
        })
}

fn request_name(request: &Request) -> &'static str {
    match request {
        Request::Status => "report status",
        Request::ListSessions => "list sessions",
        Request::ShowSession { .. } => "show a session",
        Request::TerminateSession { .. } => "terminate a session",
        Request::Stats => "collect counters",
        Request::Audit { .. } => "read the audit history",
        Request::Events { .. } => "stream events",
        Request::Show => "show clients and sessions",
        Request::Reload => "reload the config",
    }
}

/// Maps one request to the API call that answers it.
pub fn dispatch(api: &dyn GatewayApi, request: Request) -> Response {
    match request {
        Request::Status => Response::Status(api.status()),
        Request::ListSessions => Response::Sessions(api.sessions()),
        Request::ShowSession { id } => match api.session(id) {
            Some(detail) => Response::Session(detail),
            None => Response::Error(ApiError::UnknownSession { id }),
        },
        Request::TerminateSession { id } => match api.terminate(id) {
            Ok(summary) => Response::Terminated(summary),
            Err(e) => Response::Error(e),
        },
        Request::Stats => Response::Stats(api.stats()),
        Request::Audit { id } => match api.audit(id) {
            Ok(entries) => Response::Audit(entries),
            Err(e) => Response::Error(e),
        },
        Request::Show => Response::Show(api.show()),
        Request::Reload => match api.reload() {
            Ok(report) => Response::Reloaded(report),
            Err(e) => Response::Error(e),
        },
        Request::Events { .. } => Response::Error(ApiError::BadRequest {
            problem: "events are streamed, not dispatched".to_string(),
        }),
    }
}

/// Sends the history (and with `follow`, live records) that pass `filter`, then `end_of_events`.
/// A follower whose client hangs up is noticed at once, not at the next record.
async fn stream_events(
    api: &Arc<dyn GatewayApi>,
    follow: bool,
    filter: EventFilter,
    read: &mut BufReader<OwnedReadHalf>,
    write: &mut OwnedWriteHalf,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), std::io::Error> {
    let mut subscription = api.subscribe();
    for record in subscription.take_backlog() {
        if filter.matches(&record) {
            write
                .write_all(to_line(&Response::Event(record)).as_bytes())
                .await?;
        }
    }
    if follow {
        let mut probe = [0u8; 1];
        loop {
            let record = tokio::select! {
                _ = stop.changed() => break,
                // A follower sends nothing more; any read result means it hung up or misbehaved.
                _ = read.read(&mut probe) => return Ok(()),
                record = subscription.recv() => match record {
                    Some(record) => record,
                    None => break,
                },
            };
            if filter.matches(&record) {
                write
                    .write_all(to_line(&Response::Event(record)).as_bytes())
                    .await?;
            }
        }
    }
    write
        .write_all(to_line(&Response::EndOfEvents).as_bytes())
        .await
}
