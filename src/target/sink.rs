//! A minimal HTTP sink: reads each request and answers 204, nothing else. The neutral target for
//! raw-speed comparisons with other load generators (wrk, oha), where the built-in receiver's
//! verification and bookkeeping would only add noise.

use std::convert::Infallible;
use std::future::Future;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

async fn answer(req: Request<Incoming>) -> Result<Response<Empty<Bytes>>, Infallible> {
    // Drain the body so keep-alive connections stay usable.
    let _ = req.into_body().collect().await;
    let mut r = Response::new(Empty::new());
    *r.status_mut() = StatusCode::NO_CONTENT;
    Ok(r)
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    super::accept_loop(listener, shutdown, |stream| {
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(answer))
                .await;
        });
    })
    .await
}
