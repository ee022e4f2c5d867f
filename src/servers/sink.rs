//! A minimal HTTP sink: reads each request and answers 204, nothing else. The neutral target for
//! raw-speed comparisons with other load generators (wrk, oha), where the built-in receiver's
//! verification and bookkeeping would only add noise. It still refuses what would hold it:
//! bodies over the cap (413), slow bodies (408), and oversized or slow heads (see
//! [`super::guard`]).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, CONTENT_LENGTH};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::guard::{ConnLimits, Guarded};

/// Bodies larger than this are answered 413.
pub const MAX_BODY_BYTES: u64 = 1 << 20;

fn status(code: StatusCode, close: bool) -> Response<Empty<Bytes>> {
    let mut r = Response::new(Empty::new());
    *r.status_mut() = code;
    if close {
        r.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

/// Reads and discards the body (never buffering it); `Err` carries the refusal.
async fn drain(mut body: Incoming) -> Result<(), StatusCode> {
    let mut seen = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| StatusCode::BAD_REQUEST)?;
        if let Some(data) = frame.data_ref() {
            seen += data.len() as u64;
            if seen > MAX_BODY_BYTES {
                return Err(StatusCode::PAYLOAD_TOO_LARGE);
            }
        }
    }
    Ok(())
}

async fn answer(
    limits: ConnLimits,
    req: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, Infallible> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Ok(status(StatusCode::PAYLOAD_TOO_LARGE, true));
    }
    // Drain the body so keep-alive connections stay usable.
    Ok(
        match tokio::time::timeout(limits.body_timeout, drain(req.into_body())).await {
            Ok(Ok(())) => status(StatusCode::NO_CONTENT, false),
            Ok(Err(code)) => status(code, true),
            Err(_) => status(StatusCode::REQUEST_TIMEOUT, true),
        },
    )
}

/// Serves until `shutdown` completes, with the default [`ConnLimits`]; over TLS only, with
/// `tls`.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_with_limits(listener, ConnLimits::default(), tls, shutdown).await
}

/// [`serve`] with chosen limits on slow and oversized requests.
pub async fn serve_with_limits(
    listener: TcpListener,
    limits: ConnLimits,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    super::accept_loop(listener, shutdown, move |stream| {
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let (stream, conn) = Guarded::new(stream, &limits);
            let service = service_fn(move |req| {
                let busy = conn.busy();
                let reply = answer(limits, req);
                async move {
                    let r = reply.await;
                    drop(busy);
                    r
                }
            });
            match acceptor {
                Some(acceptor) => {
                    // The head timeout bounds a client that never finishes its handshake.
                    let handshake =
                        tokio::time::timeout(limits.head_timeout, acceptor.accept(stream));
                    if let Ok(Ok(stream)) = handshake.await {
                        let _ = limits
                            .http1()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                }
                None => {
                    let _ = limits
                        .http1()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                }
            }
        });
    })
    .await
}
