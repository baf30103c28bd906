//! The accept loop and connection limits: request heads must arrive in time (which also
//! closes idle keep-alive connections), the number of open connections is capped with a
//! 503 past it, and running out of file descriptors backs off instead of failing.
//!
//! Accepting runs on a thread of its own, so busy guests cannot delay it. Each accepted
//! connection is then served whole on one of the serving threads (one per core, each a
//! single-threaded runtime): its HTTP and its requests' guests run on the same thread, so
//! a request crosses no thread on its way in or out. A spinning guest yields every epoch
//! tick, so the other connections on its thread keep being served.

use std::convert::Infallible;
use std::io;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::FutureExt;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::{Semaphore, oneshot};

use super::Gateway;
use super::drain::{Drained, drain_this_thread};
use super::strict::{HeadChecker, StrictHeads};
use crate::http::json_error;

/// Limits on connections and request heads.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// How long a connection may take to send a request's head, counted from when it opens
    /// or from the end of its previous exchange: bounds slow senders and idle keep-alives.
    pub header_timeout: Duration,
    /// Connections open at once; past it, new ones get a 503 and are closed.
    pub max_connections: usize,
    /// Longest request target (path and query) accepted; longer ones get 414.
    pub max_url_bytes: usize,
    /// Most bytes of request headers accepted; more get 431.
    pub max_header_bytes: usize,
    /// Threads that serve connections, each its connections' HTTP and requests.
    pub serve_threads: usize,
    /// Whether each serving thread is kept on a core of its own, when there is one core
    /// for each in the process's CPU set.
    pub pin_serve_threads: bool,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(30),
            max_connections: default_max_connections(),
            max_url_bytes: 16 << 10,
            max_header_bytes: 128 << 10,
            serve_threads: crate::engine::cores(),
            pin_serve_threads: true,
        }
    }
}

/// Half the process's file-descriptor limit, leaving the rest to guests, the store and
/// the compile cache.
fn default_max_connections() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let fds = limit.current.unwrap_or(65536);
    usize::try_from(fds / 2)
        .unwrap_or(usize::MAX)
        .clamp(64, 16384)
}

/// Raises the soft file-descriptor limit to the hard one, as most servers do; the
/// default soft limit (often 1024) is far below what a busy host needs.
pub fn raise_fd_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::debug!("cannot raise the file-descriptor limit: {e}");
        }
    }
}

/// The accepting thread and the serving threads, started before there is anything to
/// serve (a restart starts them while its engine is built) or by [`Gateway::serve`].
pub struct ServingThreads {
    cores: Arc<Cores>,
    /// The accepting thread's runtime; always there until dropped.
    front: Option<tokio::runtime::Runtime>,
}

impl ServingThreads {
    /// Starts the threads `limits` asks for.
    pub fn start(limits: &ConnectionLimits) -> io::Result<Self> {
        let cores = Arc::new(Cores::start(
            limits.serve_threads,
            limits.pin_serve_threads,
        )?);
        let front = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("wasmhost-accept")
            .enable_all()
            .build()?;
        Ok(Self {
            cores,
            front: Some(front),
        })
    }
}

impl Drop for ServingThreads {
    fn drop(&mut self) {
        // A runtime dropped plainly blocks on its threads, which tokio forbids (and
        // panics on) inside async code: unused threads are dropped there on errors.
        if let Some(front) = self.front.take() {
            front.shutdown_background();
        }
    }
}

/// Serves `listener` on `threads` until `shutdown`: accepting on a thread of its own,
/// connections on the serving threads.
pub(super) async fn serve(
    gateway: Arc<Gateway>,
    threads: ServingThreads,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let Some(front) = threads.front.as_ref() else {
        return Err(io::Error::other("the accepting thread is gone"));
    };
    let listener = listener.into_std()?;
    let (stop, stopped) = oneshot::channel();
    let cores = threads.cores.clone();
    let accepting = front.spawn(accept_loop(gateway, listener, cores, stopped));
    shutdown.await;
    let _ = stop.send(());
    let result = match accepting.await {
        Ok(result) => result,
        Err(e) => Err(io::Error::other(e)),
    };
    // The accepting runtime is shut down, then the serving threads are stopped.
    drop(threads);
    result
}

/// The serving threads: a single-threaded runtime each; a new connection goes to the one
/// with the fewest open.
struct Cores {
    handles: Vec<Handle>,
    open: Arc<[AtomicUsize]>,
    /// Dropped to stop the threads; their runtimes drop what still runs on them.
    _stop: Vec<oneshot::Sender<()>>,
}

/// Counts a connection on its serving thread while it is open.
struct Seat {
    open: Arc<[AtomicUsize]>,
    index: usize,
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.open[self.index].fetch_sub(1, Ordering::Relaxed);
    }
}

impl Cores {
    fn start(n: usize, pin: bool) -> io::Result<Self> {
        let n = n.max(1);
        let places = if pin { own_cores(n) } else { None };
        let (mut handles, mut stops) = (Vec::new(), Vec::new());
        for i in 0..n {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (stop, stopped) = oneshot::channel::<()>();
            handles.push(runtime.handle().clone());
            stops.push(stop);
            let place = places.as_ref().map(|cpus| cpus[i]);
            std::thread::Builder::new()
                .name(format!("wasmhost-http-{i}"))
                .spawn(move || {
                    if let Some(cpu) = place {
                        keep_on(cpu);
                    }
                    runtime.block_on(async {
                        let _ = stopped.await;
                    });
                    runtime.shutdown_background();
                })?;
        }
        Ok(Self {
            open: (0..handles.len()).map(|_| AtomicUsize::new(0)).collect(),
            handles,
            _stop: stops,
        })
    }

    /// The thread to serve a new connection on, and its seat there.
    fn next(&self) -> (&Handle, Seat) {
        let index = least_loaded(&self.open);
        self.open[index].fetch_add(1, Ordering::Relaxed);
        let seat = Seat {
            open: self.open.clone(),
            index,
        };
        (&self.handles[index], seat)
    }
}

/// The CPUs for `n` serving threads to keep to, one each: the process's CPU set, when it
/// has exactly `n` CPUs. A serving thread's connections can only be served by it, so when
/// the scheduler puts two serving threads on one core (the load balancer moving them
/// around other busy threads), each waits out the other's time slices and its connections'
/// latency jumps by milliseconds. With fewer serving threads than CPUs (a CPU quota, or
/// `--serve-threads` set lower), or more, the scheduler's placement is left alone.
fn own_cores(n: usize) -> Option<Vec<usize>> {
    let set = rustix::thread::sched_getaffinity(None).ok()?;
    let cpus = pick_cores(n, |cpu| set.is_set(cpu));
    if cpus.is_none() {
        tracing::debug!(
            "serving threads not pinned: {n} threads, CPU set of {}",
            set.count()
        );
    }
    cpus
}

/// The CPUs in a set (`has` of each index below [`rustix::thread::CpuSet::MAX_CPU`]) when
/// there are exactly `n` of them.
fn pick_cores(n: usize, has: impl Fn(usize) -> bool) -> Option<Vec<usize>> {
    let cpus = cpus_where(has);
    (cpus.len() == n).then_some(cpus)
}

/// The CPU indices for which `has` holds.
fn cpus_where(has: impl Fn(usize) -> bool) -> Vec<usize> {
    (0..rustix::thread::CpuSet::MAX_CPU)
        .filter(|&cpu| has(cpu))
        .collect()
}

/// Keeps the calling thread on `cpu`; the scheduler's placement stays if it cannot.
fn keep_on(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    if let Err(e) = rustix::thread::sched_setaffinity(None, &set) {
        tracing::debug!("cannot keep a serving thread on CPU {cpu}: {e}");
    }
}

/// The index of the smallest count (the first of equals). Only the accepting thread adds,
/// so a count read here can only have dropped since.
fn least_loaded(open: &[AtomicUsize]) -> usize {
    (0..open.len())
        .min_by_key(|&i| open[i].load(Ordering::Relaxed))
        .unwrap_or(0)
}

/// The HTTP/1 and HTTP/2 settings every connection gets. The protocol is known before
/// hyper sees a byte ([`speaks_first`]), so each connection gets its own protocol's
/// connection directly, without hyper-util's auto-detecting wrapper around every read.
struct Builders {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
}

impl Builders {
    fn new(limits: &ConnectionLimits) -> Self {
        let mut http1 = http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            // The head must fit in the read buffer: past it hyper answers 431 itself.
            .max_buf_size((limits.max_url_bytes + limits.max_header_bytes + 1024).max(8192));
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
            .keep_alive_interval(limits.header_timeout)
            .keep_alive_timeout(limits.header_timeout);
        Self { http1, http2 }
    }
}

/// Accepts connections until `stop`, handing each to the least loaded serving thread,
/// then waits for the open ones to finish.
async fn accept_loop(
    gateway: Arc<Gateway>,
    listener: std::net::TcpListener,
    cores: Arc<Cores>,
    mut stop: oneshot::Receiver<()>,
) -> io::Result<()> {
    let listener = TcpListener::from_std(listener)?;
    let limits = gateway.config.connections.clone();
    let builders = Arc::new(Builders::new(&limits));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // One descriptor held back so that, out of descriptors, a connection can still be
    // accepted and told to come back later instead of waiting in the backlog.
    let mut reserve = std::fs::File::open("/dev/null").ok();
    let mut backoff = Duration::ZERO;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut stop => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => {
                backoff = Duration::ZERO;
                pair
            }
            Err(e) => {
                back_off(&e, &listener, &mut reserve, &mut backoff).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tokio::spawn(refuse(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        // Registered again on the serving thread's own reactor: left on this one, every
        // readiness event would cross threads to reach the connection.
        let Ok(stream) = stream.into_std() else {
            continue;
        };
        let (gateway, builders) = (gateway.clone(), builders.clone());
        let header_timeout = limits.header_timeout;
        let max_head = limits.max_url_bytes + limits.max_header_bytes + 1024;
        let (core, seat) = cores.next();
        core.spawn(async move {
            let _slot = (slot, seat);
            serve_connection(gateway, builders, stream, peer, header_timeout, max_head).await;
        });
    }
    drop(listener);
    drain_connections(&gateway, &cores, &slots, limits.max_connections).await;
    Ok(())
}

/// After a failed accept: waits a little longer each time and, out of descriptors, uses
/// the one held back to tell a waiting connection to come back later.
async fn back_off(
    e: &io::Error,
    listener: &TcpListener,
    reserve: &mut Option<std::fs::File>,
    backoff: &mut Duration,
) {
    if backoff.is_zero() {
        tracing::warn!("accept failed: {e}; backing off");
    }
    if out_of_descriptors(e) && reserve.take().is_some() {
        if let Ok(Ok((stream, _))) =
            tokio::time::timeout(Duration::from_millis(10), listener.accept()).await
        {
            refuse_now(stream);
        }
        *reserve = std::fs::File::open("/dev/null").ok();
    }
    *backoff = (*backoff * 2).clamp(Duration::from_millis(5), Duration::from_secs(1));
    tokio::time::sleep(*backoff).await;
}

/// Serves one accepted connection on the serving thread it was handed to, in the
/// protocol its first bytes speak.
#[inline]
async fn serve_connection(
    gateway: Arc<Gateway>,
    builders: Arc<Builders>,
    stream: std::net::TcpStream,
    peer: std::net::SocketAddr,
    header_timeout: Duration,
    max_head: usize,
) {
    let Ok(stream) = TcpStream::from_std(stream) else {
        return;
    };
    let Some(http2) = speaks_first(&stream, header_timeout).await else {
        return;
    };
    let checker = if http2 {
        HeadChecker::off()
    } else {
        HeadChecker::new(max_head)
    };
    let stream = StrictHeads::new(stream, checker);
    // Each request holds the gateway through a count of this connection's own: a
    // count of the shared one would be written by both serving threads on every
    // request.
    let gateway = Arc::new(gateway);
    let service = service_fn(move |req| {
        let gateway = gateway.clone();
        async move {
            // In place: dropping this future (the client went away) cancels the
            // request. A panic is caught here so the connection gets a 500.
            let handled = AssertUnwindSafe(gateway.handle(req, peer)).catch_unwind();
            let response = handled.await.unwrap_or_else(|_| {
                tracing::error!(%peer, "request handler panicked");
                json_error(
                    hyper::StatusCode::INTERNAL_SERVER_ERROR,
                    "the host failed while handling this request",
                )
            });
            Ok::<_, Infallible>(response)
        }
    });
    let io = TokioIo::new(stream);
    let ended = if http2 {
        Drained::new(builders.http2.serve_connection(io, service)).await
    } else {
        let conn = builders.http1.serve_connection(io, service);
        Drained::new(conn.with_upgrades()).await
    };
    if let Err(e) = ended {
        tracing::debug!(%peer, "connection ended: {e}");
    }
}

/// At shutdown: each serving thread drains its own connections; a connection's slot is
/// given back when it has closed, so all slots free means all connections are done.
async fn drain_connections(
    gateway: &Gateway,
    cores: &Cores,
    slots: &Semaphore,
    max_connections: usize,
) {
    for core in &cores.handles {
        core.spawn(async { drain_this_thread() });
    }
    let all = u32::try_from(max_connections.max(1)).unwrap_or(u32::MAX);
    tokio::select! {
        _ = slots.acquire_many(all) => {}
        () = tokio::time::sleep(gateway.config.shutdown_grace) => {
            tracing::warn!("shutdown grace period over; dropping open connections");
        }
    }
}

fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(code) if code == rustix::io::Errno::MFILE.raw_os_error()
            || code == rustix::io::Errno::NFILE.raw_os_error()
    )
}

/// Waits until the client sends enough to tell HTTP/1 from an HTTP/2 preface (hyper's own
/// head timer starts only after that): whether it is HTTP/2, or `None` when it does not
/// send in time or hangs up.
async fn speaks_first(stream: &TcpStream, limit: Duration) -> Option<bool> {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let wait = async {
        let mut buf = [0u8; PREFACE.len()];
        loop {
            match stream.peek(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) if n == PREFACE.len() || buf[..n] != PREFACE[..n] => {
                    return Some(buf[..n] == *PREFACE);
                }
                // Part of a preface: peeking again at once would spin on the same bytes.
                Ok(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    };
    tokio::time::timeout(limit, wait).await.ok().flatten()
}

const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 70\r\n\r\n\
{\"detail\":\"the host has too many open connections; retry in a moment\"}";

/// Answers 503 to a connection over the cap, then closes it once the client had a moment
/// to read the answer (closing with its request unread would reset the connection).
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(REFUSAL).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        while tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await? > 0 {}
        io::Result::Ok(())
    })
    .await;
}

/// Answers 503 without waiting: the descriptor is needed back at once.
fn refuse_now(stream: TcpStream) {
    let _ = stream.try_write(REFUSAL);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_goes_to_the_thread_with_the_fewest_open() {
        let open: Vec<AtomicUsize> = [3, 1, 1, 2].into_iter().map(AtomicUsize::new).collect();
        assert_eq!(least_loaded(&open), 1);
        open[1].store(5, Ordering::Relaxed);
        assert_eq!(least_loaded(&open), 2);
    }

    #[tokio::test]
    async fn a_closed_connection_gives_its_seat_back() {
        let cores = Cores::start(2, false).unwrap();
        let (_, first) = cores.next();
        let (_, second) = cores.next();
        assert_eq!((first.index, second.index), (0, 1));
        drop(first);
        let (_, third) = cores.next();
        assert_eq!(third.index, 0);
        let served = cores.handles[third.index].spawn(async { 7 }).await.unwrap();
        assert_eq!(served, 7);
    }

    #[test]
    fn threads_are_pinned_only_with_one_cpu_each() {
        let set = |cpus: &'static [usize]| move |cpu| cpus.contains(&cpu);
        assert_eq!(pick_cores(2, set(&[0, 1])), Some(vec![0, 1]));
        assert_eq!(pick_cores(2, set(&[2, 5])), Some(vec![2, 5]));
        assert_eq!(pick_cores(2, set(&[0, 1, 2, 3])), None);
        assert_eq!(pick_cores(3, set(&[0, 1])), None);
    }

    /// The CPUs the thread running a task on `handle` may use.
    async fn cpus_of(handle: &Handle) -> Vec<usize> {
        handle
            .spawn(async {
                let set = rustix::thread::sched_getaffinity(None).unwrap();
                cpus_where(|cpu| set.is_set(cpu))
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn each_serving_thread_keeps_to_a_cpu_of_its_own() {
        let set = rustix::thread::sched_getaffinity(None).unwrap();
        let all = cpus_where(|cpu| set.is_set(cpu));
        let cores = Cores::start(all.len(), true).unwrap();
        for (i, handle) in cores.handles.iter().enumerate() {
            assert_eq!(cpus_of(handle).await, vec![all[i]]);
        }
        // One thread more than CPUs: the scheduler places them.
        let cores = Cores::start(all.len() + 1, true).unwrap();
        for handle in &cores.handles {
            assert_eq!(cpus_of(handle).await, all);
        }
        let cores = Cores::start(all.len(), false).unwrap();
        assert_eq!(cpus_of(&cores.handles[0]).await, all);
    }

    #[test]
    fn refusal_declares_its_length() {
        let text = std::str::from_utf8(REFUSAL).unwrap();
        let (_, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(text.contains(&format!("content-length: {}\r\n", body.len())));
    }
}
