//! `pushbench serve webhook|ws|sink`: the built-in targets as standalone servers. They listen on
//! loopback unless `--listen` names another address, and then say so on stderr: they are test
//! targets with no authentication, and `/stats` hands the receiver's figures to anyone.

use std::net::SocketAddr;

use crate::cli::WebhookServeArgs;
use crate::scenario::{ReceiverConfig, SignatureScheme, Stall};
use crate::servers::receiver::{self, ReceiverOptions};

/// Turns the command line into receiver options; errors are usage errors (exit 2).
pub fn webhook_options(args: &WebhookServeArgs) -> Result<(SocketAddr, ReceiverOptions), String> {
    let scheme = args.signature;
    let secret = match &args.secret_env {
        Some(var) => Some(
            std::env::var(var)
                .map_err(|_| format!("--secret-env: environment variable `{var}` is not set"))?,
        ),
        None => None,
    };
    if scheme != SignatureScheme::None && secret.is_none() && !args.no_verify {
        return Err(format!(
            "--signature {}: give the secret with --secret-env NAME, or use --no-verify",
            scheme.name()
        ));
    }
    let stall = match (args.stall_at, args.stall_for) {
        (Some(at_ns), Some(for_ns)) => Some(Stall { at_ns, for_ns }),
        _ => None,
    };
    let config = ReceiverConfig {
        delay_ns: args.delay,
        fail_rate: args.fail_rate,
        stall,
        outages: args.outage.clone(),
        throttle: args.throttle,
        gone_fraction: args.gone,
        max_body_bytes: args.max_body_bytes,
        verify: !args.no_verify,
    };
    let tls = server_tls(&args.tls)?;
    let key = if args.no_verify {
        None
    } else {
        receiver::key_for(scheme, secret.as_deref())?
    };
    Ok((
        args.listen,
        ReceiverOptions {
            config,
            key,
            seed: args.seed,
            tls,
        },
    ))
}

/// The TLS configuration `--tls-cert/--tls-key` or `--tls-self-signed` ask for (the latter
/// writes the CA to trust into the temporary directory and says where, on stderr).
pub fn server_tls(
    args: &crate::cli::TlsServeArgs,
) -> Result<Option<std::sync::Arc<rustls::ServerConfig>>, String> {
    server_identity(args)?
        .map(|id| id.server_config())
        .transpose()
}

/// The certificate and key `--tls-cert/--tls-key` or `--tls-self-signed` ask for, checked.
pub fn server_identity(
    args: &crate::cli::TlsServeArgs,
) -> Result<Option<crate::tls::Identity>, String> {
    match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let id = crate::tls::Identity::from_files(cert, key, args.tls_ticket_key.as_deref())
                .map_err(|e| format!("--tls-cert/--tls-key: {e}"))?;
            id.server_config()
                .map_err(|e| format!("--tls-cert/--tls-key: {e}"))?;
            Ok(Some(id))
        }
        _ if args.tls_self_signed => {
            let id = crate::tls::Identity::generate()?;
            let ca = std::env::temp_dir().join(format!("pushbench-ca-{}.pem", std::process::id()));
            std::fs::write(&ca, id.ca_pem.as_deref().unwrap_or_default())
                .map_err(|e| format!("cannot write {}: {e}", ca.display()))?;
            eprintln!(
                "TLS with a certificate for localhost and 127.0.0.1 made now; trust its CA: {}",
                ca.display()
            );
            Ok(Some(id))
        }
        _ => Ok(None),
    }
}

/// Serves until SIGINT or SIGTERM. Prints `listening on http://ADDR` first (the harness reads it).
pub async fn serve_webhook(addr: SocketAddr, opts: ReceiverOptions) -> std::io::Result<()> {
    let listener = bind(addr)?;
    let local = listener.local_addr()?;
    warn_if_exposed(local);
    let scheme = if opts.tls.is_some() { "https" } else { "http" };
    println!("pushbench webhook receiver listening on {scheme}://{local}");
    use std::io::Write;
    std::io::stdout().flush()?;
    receiver::serve(listener, opts, shutdown_signal()).await
}

/// `serve ws`: one server process here, or several children sharing the port.
/// With `token`, upgrades without it get 401; with `tls`, it serves `wss://`.
pub fn serve_ws(
    addr: SocketAddr,
    control_ip: std::net::IpAddr,
    processes: usize,
    token: Option<String>,
    tls: Option<crate::tls::Identity>,
) -> Result<(), String> {
    warn_if_exposed(addr);
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    if processes <= 1 {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let local = tokio::task::LocalSet::new();
        return local.block_on(&rt, async move {
            let (listener, control) = crate::servers::ws_server::bind(addr, control_ip)
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            let tls = tls.map(|id| id.server_config()).transpose()?;
            println!(
                "pushbench websocket server listening on {scheme}://{} control {}",
                listener.local_addr().map_err(|e| e.to_string())?,
                control.local_addr().map_err(|e| e.to_string())?
            );
            use std::io::Write;
            let _ = std::io::stdout().flush();
            crate::servers::ws_server::serve(
                listener,
                control,
                crate::servers::ws_server::WsServerOptions {
                    token,
                    tls,
                    ..Default::default()
                },
                shutdown_signal(),
            )
            .await
            .map_err(|e| e.to_string())
        });
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let servers = crate::servers::launch::launch_ws_servers(
        &crate::servers::launch::TargetLaunch::Child(exe),
        processes,
        addr.ip(),
        token.as_deref(),
        tls.as_ref(),
        None,
    )?;
    println!(
        "pushbench websocket server: {processes} processes on {scheme}://{}",
        servers.addr
    );
    for c in &servers.controls {
        println!("  control {c}");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(shutdown_signal());
    servers.stop();
    Ok(())
}

/// Serves the 204 sink until SIGINT or SIGTERM, over TLS with `tls`.
pub async fn serve_sink(
    addr: SocketAddr,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
) -> std::io::Result<()> {
    let listener = bind(addr)?;
    let local = listener.local_addr()?;
    warn_if_exposed(local);
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("pushbench sink listening on {scheme}://{local}");
    use std::io::Write;
    std::io::stdout().flush()?;
    crate::servers::sink::serve(listener, tls, shutdown_signal()).await
}

/// The warning for a server that other machines can reach, `None` for a loopback address.
pub fn exposure_warning(addr: SocketAddr) -> Option<String> {
    if addr.ip().is_loopback() {
        return None;
    }
    let everywhere = if addr.ip().is_unspecified() {
        " (every interface)"
    } else {
        ""
    };
    Some(format!(
        "warning: listening on {addr}{everywhere}, reachable from other machines; the built-in \
         servers have no authentication (use --listen 127.0.0.1:PORT to keep them local)"
    ))
}

/// Whether this process listens in an emulated link's namespace: every interface there but
/// loopback is one of the link's own (`pb-...`), so nothing from outside can reach it.
/// (`/proc/self/net/dev` lists the interfaces of the caller's namespace.)
fn in_private_netns() -> bool {
    let Ok(dev) = std::fs::read_to_string("/proc/self/net/dev") else {
        return false;
    };
    let mut names = dev
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(name, _)| name.trim())
        .filter(|n| *n != "lo")
        .peekable();
    names.peek().is_some() && names.all(|n| n.starts_with("pb-"))
}

fn warn_if_exposed(addr: SocketAddr) {
    if in_private_netns() {
        return;
    }
    if let Some(w) = exposure_warning(addr) {
        eprintln!("{w}");
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command, ServeTarget};
    use crate::scenario::{Outage, OutageMode, Throttle};
    use crate::servers::launch::receiver_args;

    #[test]
    fn a_child_receiver_gets_every_fault_of_the_scenario() {
        let s = 1_000_000_000;
        let config = ReceiverConfig {
            delay_ns: 5_000_000,
            fail_rate: 0.25,
            stall: Some(Stall {
                at_ns: s,
                for_ns: s,
            }),
            outages: vec![
                Outage {
                    at_ns: 2 * s,
                    for_ns: s / 2,
                    mode: OutageMode::Drop,
                },
                Outage {
                    at_ns: 4 * s,
                    for_ns: s,
                    mode: OutageMode::Unavailable {
                        retry_after_s: Some(3),
                    },
                },
                Outage {
                    at_ns: 6 * s,
                    for_ns: s,
                    mode: OutageMode::Unavailable {
                        retry_after_s: None,
                    },
                },
            ],
            throttle: Some(Throttle {
                rate: 0.1,
                retry_after_s: 2,
            }),
            gone_fraction: 0.01,
            max_body_bytes: 4096,
            verify: false,
        };
        let args = receiver_args(
            &config,
            SignatureScheme::None,
            7,
            "127.0.0.1:0".parse().unwrap(),
        );
        let cli = Cli::try_parse_from(std::iter::once("pushbench".to_string()).chain(args))
            .expect("the child's command line parses");
        let Command::Serve {
            target: ServeTarget::Webhook(serve),
        } = cli.command
        else {
            panic!("serve webhook")
        };
        let (_, opts) = webhook_options(&serve).unwrap();
        assert_eq!(opts.config, config);
        assert_eq!(opts.seed, 7);
    }

    #[test]
    fn only_loopback_listeners_go_without_a_warning() {
        for quiet in ["127.0.0.1:8080", "127.3.2.1:1", "[::1]:8080"] {
            assert_eq!(exposure_warning(quiet.parse().unwrap()), None, "{quiet}");
        }
        for (loud, says) in [
            ("0.0.0.0:8080", "0.0.0.0:8080 (every interface), reachable"),
            ("[::]:8081", "[::]:8081 (every interface), reachable"),
            ("192.168.1.20:8080", "192.168.1.20:8080, reachable"),
        ] {
            let w = exposure_warning(loud.parse().unwrap()).expect(loud);
            assert!(w.starts_with("warning: listening on "), "{w}");
            assert!(w.contains(says), "{w}");
        }
    }
}
