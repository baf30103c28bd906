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
use crate::http::Body;
use crate::store::{LogEntry, LogQuery};

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

/// What a follower wants and where it is.
struct Follow {
    backlog: VecDeque<LogEntry>,
    live: broadcast::Receiver<Arc<LogEntry>>,
    app_id: String,
    function: Option<String>,
    last_seq: u64,
}

impl Follow {
    /// The next event: a stored line, a new line, a keep-alive, or `None` once the host
    /// stops.
    async fn next(&mut self) -> Option<Bytes> {
        if let Some(entry) = self.backlog.pop_front() {
            return Some(event("log", &entry));
        }
        loop {
            match tokio::time::timeout(KEEP_ALIVE, self.live.recv()).await {
                Err(_) => return Some(Bytes::from_static(b": keep-alive\n\n")),
                Ok(Ok(entry)) => {
                    let ours = entry.app_id == self.app_id
                        && entry.seq > self.last_seq
                        && self.function.as_ref().is_none_or(|f| &entry.function == f);
                    if ours {
                        self.last_seq = entry.seq;
                        return Some(event("log", &*entry));
                    }
                }
                Ok(Err(broadcast::error::RecvError::Lagged(missed))) => {
                    return Some(event("lagged", &json!({ "missed": missed })));
                }
                Ok(Err(broadcast::error::RecvError::Closed)) => return None,
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
            last_seq: lines.last().map_or(0, |l| l.seq),
            backlog: lines.into(),
            live,
            app_id: app.app_id,
            function,
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
