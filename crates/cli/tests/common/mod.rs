//! A local HTTP server for the CLI's API tests: answers with `answer(state, request)` on
//! an ephemeral loopback port, on a runtime of its own.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::service::{make_service_fn, service_fn};
use hyper::{Body, Request, Response, Server};

/// A running server: its address, and the runtime that keeps it alive.
pub struct Running<T> {
    /// What the server's answers read and change.
    pub state: Arc<T>,
    pub addr: SocketAddr,
    _rt: tokio::runtime::Runtime,
}

/// Starts a server, with fresh state, that answers every request with
/// `answer(state, request)`.
pub fn serve<T, F, Fut>(answer: F) -> Running<T>
where
    T: Default + Send + Sync + 'static,
    F: Fn(Arc<T>, Request<Body>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let state = Arc::new(T::default());
    let shared = state.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = rt.block_on(async move {
        let state = shared;
        let make = make_service_fn(move |_| {
            let (state, answer) = (state.clone(), answer.clone());
            async move {
                Ok::<_, Infallible>(service_fn(move |req| {
                    let (state, answer) = (state.clone(), answer.clone());
                    async move { Ok::<_, Infallible>(answer(state, req).await) }
                }))
            }
        });
        let server = Server::bind(&([127, 0, 0, 1], 0).into()).serve(make);
        let addr = server.local_addr();
        tokio::spawn(server);
        addr
    });
    Running {
        state,
        addr,
        _rt: rt,
    }
}
