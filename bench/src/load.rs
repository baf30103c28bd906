//! The load generator: an in-process hyper client (HTTP/1.1, keep-alive), `c` connections
//! each sending one request after another, and the statistics of what it saw.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Where requests go.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// Path and query, e.g. `/?name=bench`.
    pub path: String,
}

/// What one load run measured.
#[derive(Debug, Clone, Default)]
pub struct LoadResult {
    pub concurrency: usize,
    /// Successful responses started inside the measured window, per second.
    pub rps: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub ok: u64,
    /// Non-2xx answers and broken connections inside the measured window.
    pub errors: u64,
}

/// An open keep-alive connection.
pub struct Conn {
    sender: SendRequest<Empty<Bytes>>,
}

impl Conn {
    /// Connects (TCP_NODELAY) and runs the HTTP/1 handshake.
    pub async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Self { sender })
    }

    /// Sends `GET path` and times the answer.
    pub async fn get(&mut self, target: &Target) -> anyhow::Result<Reply> {
        self.get_path(target, &target.path).await
    }

    /// Sends `GET path` to `target`'s address and times the answer.
    pub async fn get_path(&mut self, target: &Target, path: &str) -> anyhow::Result<Reply> {
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, target.addr.to_string())
            .body(Empty::new())?;
        self.sender.ready().await?;
        let started = Instant::now();
        let response = self.sender.send_request(request).await?;
        let head = started.elapsed();
        let status = response.status().as_u16();
        let closes = response
            .headers()
            .get(hyper::header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Reply {
            head,
            total: started.elapsed(),
            status,
            body,
            closes,
        })
    }
}

/// One answer, timed from sending the request.
#[derive(Debug)]
pub struct Reply {
    /// To the response head: the first byte.
    pub head: Duration,
    /// To the end of the body.
    pub total: Duration,
    pub status: u16,
    pub body: Bytes,
    /// The server closes the connection after this answer (`Connection: close`), as
    /// gunicorn's sync workers do: the next request needs a new one, which is no error.
    pub closes: bool,
}

impl Reply {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Runs `concurrency` connections against `target` for `warmup + measure`, counting only
/// requests started after the warmup.
pub async fn run(
    target: &Target,
    concurrency: usize,
    warmup: Duration,
    measure: Duration,
) -> anyhow::Result<LoadResult> {
    let start = Instant::now();
    let measured_from = start + warmup;
    let end = measured_from + measure;
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            connection_loop(&target, measured_from, end).await
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (lat, err) = task.await.context("a load task panicked")??;
        latencies.extend(lat);
        errors += err;
    }
    latencies.sort_unstable();
    let ok = latencies.len() as u64;
    Ok(LoadResult {
        concurrency,
        rps: ok as f64 / measure.as_secs_f64(),
        p50: percentile(&latencies, 50.0),
        p99: percentile(&latencies, 99.0),
        ok,
        errors,
    })
}

/// One connection's loop: latencies (ns) of successful requests and the error count.
async fn connection_loop(
    target: &Target,
    measured_from: Instant,
    end: Instant,
) -> anyhow::Result<(Vec<u64>, u64)> {
    let mut latencies = Vec::with_capacity(1 << 14);
    let mut errors = 0;
    let mut conn = None;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let counted = now >= measured_from;
        let c = match &mut conn {
            Some(c) => c,
            None => match Conn::open(target.addr).await {
                Ok(c) => conn.insert(c),
                Err(e) if Instant::now() < end => {
                    // A server that cannot take a connection at all is broken: stop.
                    errors += u64::from(counted);
                    if errors > 1000 {
                        return Err(e.context("too many failed connections"));
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                Err(_) => break,
            },
        };
        match c.get(target).await {
            Ok(reply) => {
                if !reply.ok() {
                    errors += u64::from(counted);
                } else if counted {
                    latencies.push(reply.total.as_nanos() as u64);
                }
                if reply.closes {
                    conn = None;
                }
            }
            Err(_) => {
                errors += u64::from(counted);
                conn = None;
            }
        }
    }
    Ok((latencies, errors))
}

/// The nearest-rank percentile of sorted nanosecond samples.
pub fn percentile(sorted_ns: &[u64], p: f64) -> Duration {
    if sorted_ns.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted_ns.len() as f64).ceil() as usize;
    Duration::from_nanos(sorted_ns[rank.clamp(1, sorted_ns.len()) - 1])
}

/// The median of a few samples (sorted in place).
pub fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    match samples.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => samples[n / 2],
        n => (samples[n / 2 - 1] + samples[n / 2]) / 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&samples, 50.0), Duration::from_nanos(50));
        assert_eq!(percentile(&samples, 99.0), Duration::from_nanos(99));
        assert_eq!(percentile(&samples, 100.0), Duration::from_nanos(100));
        assert_eq!(percentile(&[7], 99.0), Duration::from_nanos(7));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }

    #[test]
    fn medians() {
        let ms = Duration::from_millis;
        assert_eq!(median(&mut [ms(3), ms(1), ms(2)]), ms(2));
        assert_eq!(
            median(&mut [ms(4), ms(1), ms(2), ms(3)]),
            Duration::from_micros(2500)
        );
        assert_eq!(median(&mut []), Duration::ZERO);
    }
}
