//! The logs API: a call's lines, an app's lines, and an app's lines followed live as
//! server-sent events.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http_body_util::{BodyExt, StreamBody};
use hyper::StatusCode;
use hyper::body::{Frame, Incoming};
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use serde_json::json;
use tokio::sync::broadcast;

use super::ControlPlane;
use super::api::{ApiError, ApiResult, bool_param, number_param, ok, query_param};
use crate::functions::Logs;
use crate::http::Body;
use crate::store::{LogEntry, LogQuery, Store};

/// A comment line this often keeps proxies and browsers from closing a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Lines an app's log answers with when the request names no limit.
const DEFAULT_LINES: usize = 1000;

/// A `text/event-stream` response of `events`.
pub(super) fn event_stream(
    events: impl Stream<Item = Bytes> + Send + 'static,
) -> hyper::Response<Body> {
    let frames = events.map(|b| Ok::<_, std::io::Error>(Frame::data(b)));
    let mut response = hyper::Response::new(BodyExt::boxed_unsync(StreamBody::new(frames.boxed())));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// One server-sent event.
pub(super) fn event(name: &str, data: &impl serde::Serialize) -> Bytes {
    let data = serde_json::to_string(data).unwrap_or_default();
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// `since` as RFC 3339: a time (RFC 3339), or a duration back from now (`10m`, `90s`, `600`).
fn since_param(text: &str) -> Result<String, ApiError> {
    let text = text.trim();
    let back = text
        .parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .or_else(|| humantime::parse_duration(text).ok());
    let time = match back {
        Some(d) => SystemTime::now()
            .checked_sub(d)
            .unwrap_or(SystemTime::UNIX_EPOCH),
        None => humantime::parse_rfc3339_weak(text).map_err(|_| {
            ApiError::bad_request(format!(
                "since {text:?} is neither a time (RFC 3339) nor a duration such as 10m"
            ))
        })?,
    };
    Ok(humantime::format_rfc3339_millis(time).to_string())
}

/// How long a follower waits for a line of this host before it looks for other hosts'
/// lines in the store (cluster mode).
const FOREIGN_LINES: Duration = Duration::from_millis(250);

/// What a follower wants and where it is. Lines come from the store, in its order (one
/// numbering for every host of a cluster); a line written on this host wakes it at once.
struct Follow {
    backlog: VecDeque<LogEntry>,
    live: broadcast::Receiver<Arc<LogEntry>>,
    logs: Arc<Logs>,
    store: Arc<Store>,
    app_id: String,
    function: Option<String>,
    last_seq: u64,
    quiet_since: tokio::time::Instant,
}

impl Follow {
    /// The next event: a line, a keep-alive, or `None` once the host stops or the store
    /// cannot be read.
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(entry) = self.backlog.pop_front() {
                self.last_seq = self.last_seq.max(entry.seq);
                self.quiet_since = tokio::time::Instant::now();
                return Some(event("log", &entry));
            }
            if self.quiet_since.elapsed() >= KEEP_ALIVE {
                self.quiet_since = tokio::time::Instant::now();
                return Some(Bytes::from_static(b": keep-alive\n\n"));
            }
            // Lines missed by a lagging receiver are read from the store below all the same.
            if let Ok(Err(broadcast::error::RecvError::Closed)) =
                tokio::time::timeout(FOREIGN_LINES, self.live.recv()).await
            {
                return None;
            }
            self.logs.flush().await;
            let query = LogQuery {
                function: self.function.as_deref(),
                since: None,
                after_seq: Some(self.last_seq),
                limit: DEFAULT_LINES,
            };
            match self.store.app_logs(&self.app_id, &query) {
                Ok(lines) => self.backlog.extend(lines),
                Err(e) => {
                    tracing::error!("cannot read the log lines a follower waits for: {e}");
                    return None;
                }
            }
        }
    }
}

impl ControlPlane {
    /// `GET /function-calls/{call_id}/logs`.
    pub(super) async fn call_logs(&self, call_id: &str) -> ApiResult {
        self.functions.logs().flush().await;
        let lines = self.store.call_logs(call_id)?;
        // A map's inputs have lines but no record.
        if lines.is_empty() && self.store.get_call(call_id)?.is_none() {
            return Err(ApiError::not_found(format!(
                "no function call with id {call_id}"
            )));
        }
        ok(
            StatusCode::OK,
            &json!({ "call_id": call_id, "data": lines }),
        )
    }

    /// `GET /apps/{app_id}/logs[?follow=true&function=F&since=10m&limit=N]`.
    pub(super) async fn app_logs(&self, app_id: &str, req: &hyper::Request<Incoming>) -> ApiResult {
        let app = self.app(app_id)?;
        let function = query_param(req, "function");
        let since = query_param(req, "since")
            .map(|s| since_param(&s))
            .transpose()?;
        let limit: usize = number_param(req, "limit")?.unwrap_or(DEFAULT_LINES);
        if !(1..=10_000).contains(&limit) {
            return Err(ApiError::bad_request("limit is 1 to 10000"));
        }
        let follow = bool_param(req, "follow")?;
        // Subscribed before reading the store, so no line falls between the two.
        let live = follow.then(|| self.functions.logs().subscribe());
        self.functions.logs().flush().await;
        // Where following starts when no line matches yet: after every line there is now.
        let newest = if follow {
            self.store.last_log_seq()?
        } else {
            0
        };
        let query = LogQuery {
            function: function.as_deref(),
            since: since.as_deref(),
            after_seq: None,
            limit,
        };
        let lines = self.store.app_logs(&app.app_id, &query)?;
        let Some(live) = live else {
            return ok(StatusCode::OK, &json!({ "data": lines }));
        };
        let follow = Follow {
            last_seq: lines.last().map_or(newest, |l| l.seq.max(newest)),
            backlog: lines.into(),
            live,
            logs: self.functions.logs().clone(),
            store: self.store.clone(),
            app_id: app.app_id,
            function,
            quiet_since: tokio::time::Instant::now(),
        };
        let events = futures_util::stream::unfold(follow, |mut f| async move {
            let next = f.next().await?;
            Some((next, f))
        });
        Ok(event_stream(events))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_a_time_or_a_duration_back() {
        assert_eq!(
            since_param("2026-01-02T03:04:05Z").unwrap(),
            "2026-01-02T03:04:05.000Z"
        );
        let ten_minutes_ago = since_param("10m").unwrap();
        let now = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        assert!(ten_minutes_ago < now);
        assert!(since_param("600").unwrap() <= now);
        assert!(since_param("yesterday-ish").is_err());
    }
}
