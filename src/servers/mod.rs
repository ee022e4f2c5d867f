//! Built-in targets: real servers on a bound listener with a shutdown signal, so the CLI
//! (`pushbench serve ...`), the harness (as a child process) and tests start them the same way.

pub mod guard;
pub mod launch;
pub mod long_poll;
pub mod receiver;
pub mod sink;
pub mod sse_stream;
pub mod ws_server;

use std::future::Future;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// Accepts connections until `shutdown` completes, handing each (Nagle off) to `handle`.
pub async fn accept_loop(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    mut handle: impl FnMut(TcpStream),
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of descriptors and the like: back off instead of spinning.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        handle(stream);
    }
}
