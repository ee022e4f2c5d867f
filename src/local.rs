//! Thread-per-worker runtimes: every hot-path worker (WebSocket fleet, controller, TLS webhook
//! delivery) is one OS thread running a current-thread tokio runtime and a `LocalSet`, so its
//! state is `Rc`/`RefCell` and nothing on the hot path is shared or locked. Plaintext webhook
//! workers are one OS thread too, on their own epoll loop (`webhook::plain`).

use std::future::Future;

/// Runs `fut` to completion on this thread's own runtime.
pub fn block_on_local<F: Future>(fut: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        // Check the reactor (and so the pacers' timerfds) often, even when busy.
        .event_interval(8)
        .build()
        .expect("a current-thread runtime");
    tokio::task::LocalSet::new().block_on(&rt, fut)
}

/// Starts a named thread that runs `make()`'s future on its own runtime.
pub fn spawn_local_thread<F, T>(
    name: String,
    make: impl FnOnce() -> F + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<T>>
where
    F: Future<Output = T>,
    T: Send + 'static,
{
    std::thread::Builder::new()
        .name(name)
        .spawn(move || block_on_local(make()))
}
