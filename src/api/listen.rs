//! The HTTP listener of the REST API and the web console: accepts connections within the
//! configured caps (`api.max_connections`, `api.max_connections_per_host`), serves each one with
//! hyper's HTTP/1 (over TLS when configured), closes a connection that does not send a request's
//! headers in time (a new one, or a kept-alive one between requests), and on shutdown lets the
//! requests under way finish.
//!
//! Every peer is unauthenticated until its request has been read: without the caps and the
//! timeout, one host holding idle connections took every descriptor of the daemon (the API and
//! the SFTP server then accepted nothing).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};

/// How long a client may take over its TLS handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);
/// How long the requests under way may take to finish once the daemon stops.
const DRAIN: Duration = Duration::from_secs(10);

/// What a peer may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once, all peers together.
    pub max_connections: usize,
    /// Connections open at once from one address.
    pub max_per_host: usize,
    /// Time to send a request's headers, counted from when the connection is ready for them.
    pub header_timeout: Duration,
}

/// The connections each address holds now.
#[derive(Default)]
struct PerHost(Mutex<HashMap<IpAddr, usize>>);

/// One connection counted against its address; uncounted when dropped.
struct HostSlot {
    hosts: Arc<PerHost>,
    ip: IpAddr,
}

impl PerHost {
    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<HostSlot> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(HostSlot {
            hosts: self.clone(),
            ip,
        })
    }
}

impl Drop for HostSlot {
    fn drop(&mut self) {
        let mut m = self.hosts.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// Serves `router` on `listener` (over TLS with `tls`) until `shutdown` resolves, then waits
/// up to [`DRAIN`] for the connections' requests under way.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let open = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let hosts = Arc::new(PerHost::default());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        // At the cap, nothing more is accepted until a connection ends (the kernel's backlog
        // holds the next ones).
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = open.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                // Out of descriptors and the like: wait a little rather than spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(slot) = hosts.take(peer.ip(), limits.max_per_host.max(1)) else {
            tracing::debug!(peer = %peer.ip(), "API connection refused: the address holds its share");
            continue;
        };
        let app = router.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _held = (permit, slot);
            match tls {
                None => serve_connection(tcp, peer, app, limits, watcher).await,
                Some(acceptor) => {
                    if let Ok(Ok(s)) = tokio::time::timeout(HANDSHAKE, acceptor.accept(tcp)).await {
                        serve_connection(s, peer, app, limits, watcher).await;
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN, graceful.shutdown()).await;
    Ok(())
}

/// HTTP/1 over one connection from `peer`, its header timeout in force, until it closes or
/// the server stops. Each request carries the peer as axum's `ConnectInfo`.
async fn serve_connection<S>(
    io: S,
    peer: SocketAddr,
    app: Router,
    limits: Limits,
    watcher: hyper_util::server::graceful::Watcher,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    use tower::ServiceExt as _;
    let app = app.map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        req
    });
    let svc = hyper_util::service::TowerToHyperService::new(app);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let conn = http.serve_connection(TokioIo::new(io), svc);
    let _ = watcher.watch(conn).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpStream;

    /// Reads until the server closes the connection (`Ok(bytes)`), or gives up after `wait`.
    async fn closed_within(s: &mut TcpStream, wait: Duration) -> Option<Vec<u8>> {
        let mut got = Vec::new();
        let read = tokio::time::timeout(wait, s.read_to_end(&mut got)).await;
        read.ok().map(|_| got)
    }

    /// A server answering `hello` at `/` within `limits` on a free port, its stop switch and
    /// its task.
    async fn started(
        limits: Limits,
    ) -> (
        SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/", axum::routing::get(|| async { "hello" }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, app, None, limits, async move {
            let _ = stopped.await;
        }));
        (addr, stop, server)
    }

    /// A peer that sends nothing, or stops in the middle of its headers, or is kept alive
    /// after an answer and sends nothing more, is closed after the header timeout; an address
    /// holds at most its share of connections, and the server at most its cap; a request
    /// still gets its answer throughout.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_and_slow_peers_are_closed_and_capped() {
        let (addr, stop, server) = started(Limits {
            max_connections: 4,
            max_per_host: 3,
            header_timeout: Duration::from_secs(1),
        })
        .await;

        let mut silent = TcpStream::connect(addr).await.unwrap();
        let mut partial = TcpStream::connect(addr).await.unwrap();
        partial
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let mut kept = TcpStream::connect(addr).await.unwrap();
        kept.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        // A fourth connection from the same address is past its share: closed at once.
        let mut fourth = TcpStream::connect(addr).await.unwrap();
        let refused = closed_within(&mut fourth, Duration::from_secs(5)).await;
        assert_eq!(refused.as_deref(), Some(&b""[..]), "the fourth was served");

        // Each of the three is closed after the header timeout, the kept-alive one with its
        // answer before.
        for (name, s) in [("silent", &mut silent), ("partial", &mut partial)] {
            let got = closed_within(s, Duration::from_secs(5)).await;
            assert!(got.is_some(), "{name} still open");
        }
        let answer = closed_within(&mut kept, Duration::from_secs(5)).await;
        let answer = String::from_utf8(answer.expect("kept-alive still open")).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("hello"),
            "{answer}"
        );

        // With their slots back, a request is answered.
        let mut again = TcpStream::connect(addr).await.unwrap();
        again
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let got = closed_within(&mut again, Duration::from_secs(5)).await;
        assert!(String::from_utf8(got.unwrap()).unwrap().ends_with("hello"));

        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(15), server)
            .await
            .expect("the server stopped")
            .unwrap()
            .unwrap();
    }

    /// At the server's cap the next connection waits in the backlog, and is served once a
    /// connection ends.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_the_cap_a_connection_waits_for_a_slot() {
        let (addr, stop, server) = started(Limits {
            max_connections: 2,
            max_per_host: 10,
            header_timeout: Duration::from_secs(2),
        })
        .await;
        let _a = TcpStream::connect(addr).await.unwrap();
        let _b = TcpStream::connect(addr).await.unwrap();
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let t0 = std::time::Instant::now();
        let got = closed_within(&mut c, Duration::from_secs(10)).await;
        assert!(String::from_utf8(got.unwrap()).unwrap().ends_with("hello"));
        // Served only when the two silent ones were closed by their header timeout.
        assert!(
            t0.elapsed() >= Duration::from_millis(1500),
            "{:?}",
            t0.elapsed()
        );
        let _ = stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(15), server).await;
    }

    #[test]
    fn an_address_holds_at_most_its_share_and_gets_it_back() {
        let hosts = Arc::new(PerHost::default());
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let first = hosts.take(a, 2).unwrap();
        let second = hosts.take(a, 2).unwrap();
        assert!(hosts.take(a, 2).is_none());
        // Another address has its own share.
        let other = hosts.take(b, 2).unwrap();
        drop(first);
        let again = hosts.take(a, 2).unwrap();
        drop((second, again, other));
        assert!(hosts.0.lock().unwrap().is_empty());
    }
}
