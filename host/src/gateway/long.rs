//! Long web requests (Modal's 303 pattern): a call still running when the request cap
//! passes is answered `303 See Other` to the same URL plus `__wasmhost_call_id`;
//! following it waits another period, until the result is there.

use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::Mutex;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::header::{HeaderMap, HeaderValue, LOCATION};
use hyper::{StatusCode, Uri};
use tokio::sync::watch;

use crate::http::{Body, full, json_error};

/// The query parameter that names a pending call.
pub const CALL_ID_PARAM: &str = "__wasmhost_call_id";

/// How long a finished result waits to be collected.
const KEEP: Duration = Duration::from_secs(3600);

/// A response held whole, so it can be handed to a later request.
#[derive(Clone)]
struct Buffered {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Buffered {
    fn into_response(self) -> hyper::Response<Body> {
        let mut r = hyper::Response::new(full(self.body));
        *r.status_mut() = self.status;
        *r.headers_mut() = self.headers;
        r
    }
}

struct Pending {
    host: String,
    done: watch::Receiver<Option<Buffered>>,
    created: Instant,
}

/// Calls that outlived their request, by id.
#[derive(Default)]
pub(crate) struct LongRequests {
    pending: Mutex<HashMap<String, Pending>>,
}

async fn buffer(response: hyper::Response<Body>) -> Buffered {
    let (parts, body) = response.into_parts();
    match body.collect().await {
        Ok(collected) => Buffered {
            status: parts.status,
            headers: parts.headers,
            body: collected.to_bytes(),
        },
        Err(e) => Buffered {
            status: StatusCode::BAD_GATEWAY,
            headers: HeaderMap::new(),
            body: Bytes::from(format!("{{\"detail\":\"the response body failed: {e}\"}}")),
        },
    }
}

/// The id in a request's query, if it follows a 303.
pub(crate) fn call_id_of(uri: &Uri) -> Option<String> {
    url::form_urlencoded::parse(uri.query()?.as_bytes())
        .find(|(k, _)| k == CALL_ID_PARAM)
        .map(|(_, v)| v.into_owned())
}

fn see_other(location: &str) -> hyper::Response<Body> {
    let mut r = hyper::Response::new(full(Bytes::new()));
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

impl LongRequests {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `call`, which started at `started`; if it is not done within `cap` of that,
    /// parks it and answers 303.
    pub(crate) async fn run<F>(
        &self,
        host: &str,
        uri: &Uri,
        (started, cap): (Instant, Duration),
        call: F,
    ) -> hyper::Response<Body>
    where
        F: Future<Output = hyper::Response<Body>> + Send + 'static,
    {
        // Runs in this request's task: a spawned task and a channel per request cost more
        // than the call itself for a small endpoint. The call's future is boxed so that,
        // should it outlive the cap, it moves into a task of its own still running.
        let mut work = Box::pin(call);
        crate::anchor::keep_warm(std::mem::size_of_val(&*work));
        // Most calls finish at their first poll; they need no timer. A response is held
        // whole only when it is parked, for the requests that collect it.
        if let Poll::Ready(done) = poll_fn(|cx| Poll::Ready(work.as_mut().poll(cx))).await {
            return done;
        }
        let deadline = tokio::time::Instant::from_std(started) + cap;
        if let Ok(done) = tokio::time::timeout_at(deadline, &mut work).await {
            return done;
        }
        let work = async move { buffer(work.await).await };
        let (tx, rx) = watch::channel(None);
        tokio::spawn(async move {
            let _ = tx.send(Some(work.await));
        });
        let id = crate::ids::new_id("wc");
        let location = {
            let sep = if uri.query().is_some() { "&" } else { "?" };
            let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
            format!("{path_and_query}{sep}{CALL_ID_PARAM}={id}")
        };
        let mut pending = self.lock();
        pending.retain(|_, p| p.created.elapsed() < KEEP);
        pending.insert(
            id,
            Pending {
                host: host.to_owned(),
                done: rx,
                created: Instant::now(),
            },
        );
        see_other(&location)
    }

    /// Serves a request that follows a 303: the result if ready within `cap`, else 303 again.
    pub(crate) async fn follow(
        &self,
        host: &str,
        id: &str,
        uri: &Uri,
        cap: Duration,
    ) -> hyper::Response<Body> {
        let rx = match self.lock().get(id) {
            Some(p) if p.host == host => p.done.clone(),
            _ => {
                return json_error(
                    StatusCode::NOT_FOUND,
                    &format!(
                        "no pending call {id:?} for this endpoint (results are kept for an hour)"
                    ),
                );
            }
        };
        let mut rx = rx;
        let ready = rx.borrow().clone();
        let ready = match ready {
            Some(done) => Some(done),
            None => match tokio::time::timeout(cap, rx.changed()).await {
                Ok(Ok(())) => rx.borrow().clone(),
                _ => None,
            },
        };
        match ready {
            Some(done) => {
                self.lock().remove(id);
                done.into_response()
            }
            None => see_other(uri.path_and_query().map_or("/", |p| p.as_str())),
        }
    }
}
