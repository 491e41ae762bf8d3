//! The emulator's own HTTP server: an accept loop over hyper, so that a fault can
//! close a connection without writing an answer, and so that shutdown is clean
//! (stop accepting, let in-flight requests finish, release held ones).

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::{Emulator, EmulatorError};

/// How long shutdown waits for in-flight requests before it cuts them off.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Handed to each request (as an extension) by the accept loop: lets a handler
/// close its connection, and tells held requests that the server is stopping.
#[derive(Clone, Debug)]
pub(crate) struct ConnControl {
    pub(crate) kill: Arc<Notify>,
    pub(crate) shutdown: watch::Receiver<bool>,
}

/// A running emulator server. Dropping it stops the server too; [`shutdown`]
/// also waits until it has stopped.
///
/// [`shutdown`]: RunningEmulator::shutdown
#[derive(Debug)]
pub struct RunningEmulator {
    addr: SocketAddr,
    emulator: Emulator,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl RunningEmulator {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, the base URL to give an SDK or the gateway.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The emulator behind the server, for reading events and stats directly.
    pub fn emulator(&self) -> &Emulator {
        &self.emulator
    }

    /// Stops accepting, lets in-flight requests finish (up to 5 s), ends held
    /// ones, and returns once the server is gone.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

pub(crate) fn spawn(
    emulator: Emulator,
    listener: TcpListener,
) -> Result<RunningEmulator, EmulatorError> {
    let addr = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    let router = emulator.router();
    let task = tokio::spawn(accept_loop(listener, router, stopped));
    tracing::info!(%addr, "emulator: listening");
    Ok(RunningEmulator {
        addr,
        emulator,
        stop,
        task: Some(task),
    })
}

/// Resolves once the server is told to stop (or its handle is gone). Returns no
/// borrow of the channel, so it can sit in a `select!` next to other awaits.
pub(crate) async fn stopped_signal(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn accept_loop(listener: TcpListener, router: Router, stopped: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    let mut stop_signal = stopped.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    connections.spawn(serve_connection(stream, router.clone(), stopped.clone()));
                }
                Err(error) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tracing::warn!(%error, "emulator: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = stopped_signal(&mut stop_signal) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.shutdown().await;
    }
    tracing::info!("emulator: stopped");
}

async fn serve_connection(stream: TcpStream, router: Router, mut stopped: watch::Receiver<bool>) {
    let kill = Arc::new(Notify::new());
    let control = ConnControl {
        kill: Arc::clone(&kill),
        shutdown: stopped.clone(),
    };
    let service = tower::ServiceExt::map_request(router, move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(control.clone());
        request
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    tokio::pin!(connection);
    let mut draining = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "emulator: connection ended with an error");
                }
                break;
            }
            // Leaving the loop drops the connection: the socket closes and the
            // client gets no answer.
            () = kill.notified() => break,
            () = stopped_signal(&mut stopped), if !draining => {
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}
