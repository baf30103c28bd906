//! Call logs: what guests print and what the host does with each call (start, attempts,
//! retries, timeouts, traps) and each web request, kept in the store with a bound per
//! call, streamed live to followers, and stripped of every secret value the call was given.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::{broadcast, mpsc, oneshot};

use crate::engine::{OutputSink, OutputStream};
use crate::store::{LogEntry, LogStream, Store, now};

/// Bytes of log lines kept per function call; past it one marker line says the rest was cut.
pub const CALL_LOG_BYTES: usize = 64 * 1024;

/// What stands in for a secret's value in logs.
pub const REDACTED: &str = "[redacted]";

/// Followers that fall this many lines behind lose the oldest (they are told how many).
const LIVE_BACKLOG: usize = 4096;

/// Marks a call whose log reached [`CALL_LOG_BYTES`].
const FULL: usize = usize::MAX;

enum Write {
    Line(LogEntry),
    Flush(oneshot::Sender<()>),
}

/// The host's log of calls: numbering, the per-call bound, live followers and a writer
/// that stores lines in batches (one transaction for whatever arrived meanwhile).
pub struct Logs {
    /// The last line's number; held while a line is numbered and sent, so followers see
    /// lines in order.
    seq: Mutex<u64>,
    live: broadcast::Sender<Arc<LogEntry>>,
    writer: mpsc::UnboundedSender<Write>,
    /// Bytes kept so far of each call that is running.
    sizes: Mutex<HashMap<String, usize>>,
}

impl Logs {
    /// Starts the writer; numbering continues after the newest stored line.
    pub fn start(store: Arc<Store>) -> Arc<Self> {
        let last = store.last_log_seq().unwrap_or_else(|e| {
            tracing::error!("cannot read the call logs: {e}");
            0
        });
        let (writer, rx) = mpsc::unbounded_channel();
        let spawned = std::thread::Builder::new()
            .name("wasmhost-logs".into())
            .spawn(move || write_loop(&store, rx));
        if let Err(e) = spawned {
            tracing::error!("cannot start the call log writer; call logs are not kept: {e}");
        }
        Arc::new(Self {
            seq: Mutex::new(last),
            live: broadcast::channel(LIVE_BACKLOG).0,
            writer,
            sizes: Mutex::new(HashMap::new()),
        })
    }

    /// Every line from now on, as it is written.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LogEntry>> {
        self.live.subscribe()
    }

    /// Waits until every line pushed so far is in the store.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.writer.send(Write::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// The log of web requests (and other calls without a call id) of `app_id`.
    pub fn for_app(self: &Arc<Self>, app_id: &str) -> Arc<CallLog> {
        Arc::new(CallLog {
            logs: self.clone(),
            app_id: app_id.to_owned(),
            function: String::new(),
            call_id: None,
            secrets: RwLock::new(Vec::new()),
        })
    }

    /// The log of one function call; the call's bound is released when it is dropped.
    pub fn for_call(self: &Arc<Self>, app_id: &str, function: &str, call_id: &str) -> Arc<CallLog> {
        Arc::new(CallLog {
            logs: self.clone(),
            app_id: app_id.to_owned(),
            function: function.to_owned(),
            call_id: Some(call_id.to_owned()),
            secrets: RwLock::new(Vec::new()),
        })
    }

    fn push(&self, log: &CallLog, function: &str, stream: LogStream, text: &str) {
        let cut = format!(
            "[log truncated: a call keeps {} KiB of log lines]",
            CALL_LOG_BYTES / 1024
        );
        for line in text.lines() {
            let line = match &log.call_id {
                Some(call) => match self.admit(call, line) {
                    Admit::Keep => line,
                    Admit::Cut => cut.as_str(),
                    Admit::Drop => return,
                },
                None => line,
            };
            let mut seq = self.seq.lock().unwrap_or_else(|p| p.into_inner());
            *seq += 1;
            let entry = LogEntry {
                seq: *seq,
                time: now(),
                app_id: log.app_id.clone(),
                function: function.to_owned(),
                call_id: log.call_id.clone(),
                stream,
                text: line.to_owned(),
            };
            // No follower is not an error.
            let _ = self.live.send(Arc::new(entry.clone()));
            let _ = self.writer.send(Write::Line(entry));
        }
    }

    /// Whether a line of `call` fits its bound.
    fn admit(&self, call: &str, line: &str) -> Admit {
        let mut sizes = self.sizes.lock().unwrap_or_else(|p| p.into_inner());
        let used = sizes.entry(call.to_owned()).or_insert(0);
        if *used == FULL {
            return Admit::Drop;
        }
        if used.saturating_add(line.len()) > CALL_LOG_BYTES {
            *used = FULL;
            return Admit::Cut;
        }
        *used += line.len();
        Admit::Keep
    }
}

enum Admit {
    Keep,
    Cut,
    Drop,
}

fn write_loop(store: &Store, mut rx: mpsc::UnboundedReceiver<Write>) {
    while let Some(first) = rx.blocking_recv() {
        let mut lines = Vec::new();
        let mut flushes = Vec::new();
        let mut next = Some(first);
        while let Some(w) = next.take() {
            match w {
                Write::Line(e) => lines.push(e),
                Write::Flush(tx) => flushes.push(tx),
            }
            if lines.len() < 4096 {
                next = rx.try_recv().ok();
            }
        }
        if let Err(e) = store.append_logs(&lines) {
            tracing::error!("cannot store {} call log line(s): {e}", lines.len());
        }
        for tx in flushes {
            let _ = tx.send(());
        }
    }
}

/// The log of one call (or of an app's web requests): what its guest prints and what the
/// host does, with the values of the secrets it was given replaced by [`REDACTED`].
pub struct CallLog {
    logs: Arc<Logs>,
    app_id: String,
    function: String,
    call_id: Option<String>,
    secrets: RwLock<Vec<String>>,
}

impl CallLog {
    /// Records a host event.
    pub fn event(&self, text: &str) {
        let text = self.redact(text);
        self.logs
            .push(self, &self.function, LogStream::Event, &text);
    }

    /// From now on, these values never appear in this log (nor in what it hands back).
    pub fn hide(&self, values: impl IntoIterator<Item = String>) {
        let mut secrets = self.secrets.write().unwrap_or_else(|p| p.into_inner());
        secrets.extend(values.into_iter().filter(|v| !v.is_empty()));
        // Longest first, so a value that contains another is hidden whole.
        secrets.sort_by_key(|v| std::cmp::Reverse(v.len()));
        secrets.dedup();
    }

    /// `text` with every hidden value replaced.
    pub fn redact(&self, text: &str) -> String {
        let secrets = self.secrets.read().unwrap_or_else(|p| p.into_inner());
        let mut text = text.to_owned();
        for s in secrets.iter() {
            if text.contains(s.as_str()) {
                text = text.replace(s.as_str(), REDACTED);
            }
        }
        text
    }
}

impl OutputSink for CallLog {
    fn output(&self, function: &str, stream: OutputStream, text: &str) -> String {
        let text = self.redact(text);
        let stream = match stream {
            OutputStream::Stdout => LogStream::Stdout,
            OutputStream::Stderr => LogStream::Stderr,
        };
        self.logs.push(self, function, stream, &text);
        text
    }

    fn failed(&self, function: &str, error: &str) {
        // A function call's attempts are reported by the attempt loop, with their numbers.
        if self.call_id.is_none() {
            let text = self.redact(&format!("request failed: {error}"));
            self.logs.push(self, function, LogStream::Event, &text);
        }
    }
}

impl Drop for CallLog {
    fn drop(&mut self) {
        if let Some(call) = &self.call_id {
            self.logs
                .sizes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(call);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn secrets_are_hidden_and_a_call_keeps_a_bounded_log() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("s.redb")).unwrap());
        let logs = Logs::start(store.clone());
        let mut live = logs.subscribe();
        let call = logs.for_call("ap-1", "f", "fc-1");
        call.hide(["hunter2".to_string(), "hunter".to_string(), String::new()]);
        let shown = call.output("f", OutputStream::Stdout, "pw=hunter2 and hunter\nbye\n");
        assert_eq!(shown, "pw=[redacted] and [redacted]\nbye\n");
        assert_eq!(
            live.recv().await.unwrap().text,
            "pw=[redacted] and [redacted]"
        );
        let big = "x".repeat(1000);
        for _ in 0..100 {
            call.output("f", OutputStream::Stderr, &big);
        }
        call.event("attempt 1 failed: hunter2");
        logs.flush().await;
        let lines = store.call_logs("fc-1").unwrap();
        let kept: usize = lines.iter().map(|l| l.text.len()).sum();
        assert!(kept <= CALL_LOG_BYTES + 100, "{kept}");
        let last = lines.last().unwrap();
        assert!(last.text.starts_with("[log truncated"), "{}", last.text);
        assert!(lines.iter().all(|l| !l.text.contains("hunter")));
        drop(call);
        assert!(logs.sizes.lock().unwrap().is_empty());
        let web = logs.for_app("ap-1");
        web.failed("api", "trapped: boom");
        logs.flush().await;
        let q = crate::store::LogQuery {
            limit: 1,
            ..Default::default()
        };
        let newest = store.app_logs("ap-1", &q).unwrap();
        assert_eq!(newest[0].text, "request failed: trapped: boom");
        assert_eq!(newest[0].call_id, None);
    }
}
