//! The accept loop: serves the app on each connection with the limits a
//! production server needs and `axum::serve` does not set — a header-read
//! timeout (which, since hyper 1.6, also runs while a keep-alive connection
//! waits idle for its next request) and a cap on open connections — and
//! closes gracefully: no new connections, open ones finish their responses.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Limits on the connections of one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// How long a client has to send a request's headers, counted from the
    /// connection's start or the end of the previous response: a client
    /// that trickles its headers, or leaves a keep-alive connection idle,
    /// is disconnected after it.
    pub header_read_timeout: Duration,
    /// Open connections at most; further clients wait in the listen backlog
    /// until one closes, so a flood of connections cannot exhaust the
    /// node's file descriptors or memory.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(30),
            max_connections: 1024,
        }
    }
}

/// Serves `app` on `listener` until `stop` is cancelled; then stops
/// accepting at once and waits for the open connections to finish their
/// responses.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    stop: CancellationToken,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // Above the API's own limit, which answers in JSON.
        .max_headers(crate::head_limits::HYPER_MAX_HEADERS)
        // Also the most hyper queues for a client that reads slowly: the
        // rest of an answer waits in its transcript, not in memory per
        // connection.
        .max_buf_size(crate::stream::follow::MEMORY_LIMIT);
    // HTTP/2 clients are probed with pings while idle and dropped when they
    // stop answering.
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.header_read_timeout)
        .keep_alive_timeout(Duration::from_secs(20));
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut warned_full = false;
    loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if !warned_full {
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "the connection limit is reached; new clients wait until a connection closes"
                    );
                    warned_full = true;
                }
                tokio::select! {
                    permit = permits.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                    () = stop.cancelled() => break,
                }
            }
        };
        let (socket, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: pause rather
                    // than spin.
                    tracing::warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        if permits.available_permits() > 0 {
            warned_full = false;
        }
        // Lines of a stream go out as they are made.
        let _ = socket.set_nodelay(true);
        // The login lockout keys on the client's address.
        let service = tower::ServiceExt::map_request(
            app.clone(),
            move |mut request: axum::http::Request<Incoming>| {
                request
                    .extensions_mut()
                    .insert(ConnectInfo::<SocketAddr>(remote));
                request
            },
        );
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(socket), TowerToHyperService::new(service))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, client = %remote, "connection closed with an error");
            }
            drop(permit);
        });
    }
    // Closing the listener now makes new clients fail fast (another node
    // takes them) instead of waiting in the backlog.
    drop(listener);
    graceful.shutdown().await;
}
