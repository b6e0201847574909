//! The accept loop of the gateway's two small servers, the control socket and the metrics
//! endpoint: at most a fixed number of connections served at once, each on its own task, until
//! shutdown.
//!
//! A slot is taken before accepting, so an accepted connection is always served at once and
//! further clients wait in the listen backlog. A failed accept (e.g. out of file descriptors) is
//! logged and retried after a pause rather than in a busy loop.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Pause after a failed accept before trying again.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Accepts with `accept` and runs `serve` on each connection, at most `max` at once, until
/// `shutdown` completes. Returns the connections still running, for the caller to end its way.
/// `what` names the listener in logs.
pub async fn serve_bounded<S, Accept, Accepted, Serve, Served>(
    what: &'static str,
    max: usize,
    mut accept: Accept,
    mut serve: Serve,
    shutdown: impl Future<Output = ()>,
) -> JoinSet<()>
where
    Accept: FnMut() -> Accepted,
    Accepted: Future<Output = std::io::Result<S>>,
    Serve: FnMut(S) -> Served,
    Served: Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(max));
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = accept() => match accepted {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "{what}: accept failed; retrying");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
        };
        let served = serve(stream);
        connections.spawn(async move {
            served.await;
            drop(permit);
        });
        // Reap finished connections so the set does not grow with every client ever served.
        while connections.try_join_next().is_some() {}
    }
    connections
}
