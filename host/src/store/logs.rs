//! Log lines of calls and web requests: what guests printed and what the host did (attempts,
//! retries, timeouts, traps), findable by app and by call, purged with the calls.

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::embedded::Redb;
use super::{Result, decode, encode};

/// seq → entry; seq grows with time, so the oldest entries come first.
pub(super) const LOGS: TableDefinition<u64, &str> = TableDefinition::new("logs");
/// (app id, seq): an app's entries.
pub(super) const APP_LOGS: TableDefinition<(&str, u64), ()> = TableDefinition::new("app_logs");
/// (call id, seq): a call's entries.
pub(super) const CALL_LOGS: TableDefinition<(&str, u64), ()> = TableDefinition::new("call_logs");

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    /// The guest's standard output.
    Stdout,
    /// The guest's standard error.
    Stderr,
    /// The host: a call started, an attempt failed, a retry, a timeout, a trap.
    Event,
}

/// One log line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Position in the host's log; later lines have larger numbers.
    pub seq: u64,
    /// RFC 3339 with milliseconds.
    pub time: String,
    /// The app.
    pub app_id: String,
    /// The function or web endpoint.
    pub function: String,
    /// The function call, when the line belongs to one (web requests have none).
    pub call_id: Option<String>,
    /// Guest output or host event.
    pub stream: LogStream,
    /// The line, without its newline.
    pub text: String,
}

/// Which of an app's lines to read.
#[derive(Debug, Clone, Default)]
pub struct LogQuery<'a> {
    /// Only this function's lines.
    pub function: Option<&'a str>,
    /// Only lines at or after this time (RFC 3339).
    pub since: Option<&'a str>,
    /// Only lines after this position.
    pub after_seq: Option<u64>,
    /// At most this many (the newest).
    pub limit: usize,
}

impl LogQuery<'_> {
    fn wants(&self, e: &LogEntry) -> bool {
        self.function.is_none_or(|f| e.function == f)
            && self.since.is_none_or(|s| e.time.as_str() >= s)
    }
}

impl Redb {
    /// Appends log lines in one transaction.
    pub(super) fn append_logs(&self, entries: &[LogEntry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let txn = self.write()?;
        {
            let mut logs = txn.open_table(LOGS)?;
            let mut apps = txn.open_table(APP_LOGS)?;
            let mut calls = txn.open_table(CALL_LOGS)?;
            for e in entries {
                logs.insert(e.seq, encode(e).as_str())?;
                apps.insert((e.app_id.as_str(), e.seq), ())?;
                if let Some(call) = &e.call_id {
                    calls.insert((call.as_str(), e.seq), ())?;
                }
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// The position of the newest line (0 when there is none).
    pub(super) fn last_log_seq(&self) -> Result<u64> {
        let txn = self.read()?;
        let logs = txn.open_table(LOGS)?;
        Ok(logs.last()?.map_or(0, |(k, _)| k.value()))
    }

    /// Every line of one call, oldest first.
    pub(super) fn call_logs(&self, call_id: &str) -> Result<Vec<LogEntry>> {
        let txn = self.read()?;
        let index = txn.open_table(CALL_LOGS)?;
        let logs = txn.open_table(LOGS)?;
        let mut out = Vec::new();
        for item in index.range((call_id, 0)..=(call_id, u64::MAX))? {
            let (key, _) = item?;
            if let Some(raw) = logs.get(key.value().1)? {
                out.push(decode("logs", raw.value())?);
            }
        }
        Ok(out)
    }

    /// An app's newest lines that match `query`, oldest first.
    pub(super) fn app_logs(&self, app_id: &str, query: &LogQuery<'_>) -> Result<Vec<LogEntry>> {
        let txn = self.read()?;
        let index = txn.open_table(APP_LOGS)?;
        let logs = txn.open_table(LOGS)?;
        let from = query.after_seq.map_or(0, |s| s.saturating_add(1));
        let mut out = Vec::new();
        for item in index.range((app_id, from)..=(app_id, u64::MAX))?.rev() {
            if out.len() >= query.limit {
                break;
            }
            let (key, _) = item?;
            let Some(raw) = logs.get(key.value().1)? else {
                continue;
            };
            let entry: LogEntry = decode("logs", raw.value())?;
            if query.since.is_some_and(|s| entry.time.as_str() < s) {
                break;
            }
            if query.wants(&entry) {
                out.push(entry);
            }
        }
        out.reverse();
        Ok(out)
    }

    /// Deletes lines written before `cutoff` (RFC 3339); returns how many.
    pub(super) fn purge_logs(&self, cutoff: &str) -> Result<usize> {
        let txn = self.write()?;
        let n = {
            let mut logs = txn.open_table(LOGS)?;
            let mut apps = txn.open_table(APP_LOGS)?;
            let mut calls = txn.open_table(CALL_LOGS)?;
            let mut old = Vec::new();
            for item in logs.iter()? {
                let (_, raw) = item?;
                let entry: LogEntry = decode("logs", raw.value())?;
                if entry.time.as_str() >= cutoff {
                    break;
                }
                old.push(entry);
            }
            for e in &old {
                logs.remove(e.seq)?;
                apps.remove((e.app_id.as_str(), e.seq))?;
                if let Some(call) = &e.call_id {
                    calls.remove((call.as_str(), e.seq))?;
                }
            }
            old.len()
        };
        if n == 0 {
            txn.abort()?;
        } else {
            txn.commit()?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn entry(seq: u64, time: &str, app: &str, function: &str, call: Option<&str>) -> LogEntry {
        LogEntry {
            seq,
            time: time.into(),
            app_id: app.into(),
            function: function.into(),
            call_id: call.map(str::to_owned),
            stream: LogStream::Stdout,
            text: format!("line {seq}"),
        }
    }

    #[test]
    fn lines_are_found_by_app_call_function_and_time_and_purged_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        assert_eq!(store.last_log_seq().unwrap(), 0);
        store
            .append_logs(&[
                entry(1, "2026-01-01T00:00:01.000Z", "a", "f", Some("c1")),
                entry(2, "2026-01-01T00:00:02.000Z", "b", "f", Some("c2")),
                entry(3, "2026-01-01T00:00:03.000Z", "a", "g", None),
                entry(4, "2026-01-01T00:00:04.000Z", "a", "f", Some("c1")),
            ])
            .unwrap();
        assert_eq!(store.last_log_seq().unwrap(), 4);
        let seqs = |v: Vec<LogEntry>| v.iter().map(|e| e.seq).collect::<Vec<_>>();
        assert_eq!(seqs(store.call_logs("c1").unwrap()), [1, 4]);
        let all = LogQuery {
            limit: 100,
            ..Default::default()
        };
        assert_eq!(seqs(store.app_logs("a", &all).unwrap()), [1, 3, 4]);
        let newest = LogQuery {
            limit: 2,
            ..all.clone()
        };
        assert_eq!(seqs(store.app_logs("a", &newest).unwrap()), [3, 4]);
        let f = LogQuery {
            function: Some("f"),
            ..all.clone()
        };
        assert_eq!(seqs(store.app_logs("a", &f).unwrap()), [1, 4]);
        let since = LogQuery {
            since: Some("2026-01-01T00:00:03.000Z"),
            ..all.clone()
        };
        assert_eq!(seqs(store.app_logs("a", &since).unwrap()), [3, 4]);
        let after = LogQuery {
            after_seq: Some(3),
            ..all.clone()
        };
        assert_eq!(seqs(store.app_logs("a", &after).unwrap()), [4]);
        assert_eq!(store.purge_logs("2026-01-01T00:00:03.000Z").unwrap(), 2);
        assert_eq!(seqs(store.call_logs("c1").unwrap()), [4]);
        assert_eq!(seqs(store.app_logs("b", &all).unwrap()), Vec::<u64>::new());
        assert_eq!(store.last_log_seq().unwrap(), 4);
    }
}
