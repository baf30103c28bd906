//! Schedules: `cron(<expr>)`, `cron(<expr>, <IANA time zone>)` and `period(<duration>)`.

use std::str::FromStr;
use std::time::Duration;

use chrono::{TimeZone, Utc};

/// A parsed schedule.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Runs at the times a cron expression names, in a time zone.
    Cron {
        /// The expression.
        cron: Box<croner::Cron>,
        /// Its time zone (UTC when none is given).
        tz: chrono_tz::Tz,
    },
    /// Runs every `Duration`, counted from the deploy.
    Period(Duration),
}

/// Why a schedule expression was refused; the message quotes it.
#[derive(Debug, thiserror::Error)]
#[error("invalid schedule {text:?}: {reason}")]
pub struct ScheduleError {
    text: String,
    reason: String,
}

impl Schedule {
    /// Parses the manifest's schedule string.
    pub fn parse(text: &str) -> Result<Self, ScheduleError> {
        let fail = |reason: String| ScheduleError {
            text: text.to_owned(),
            reason,
        };
        let t = text.trim();
        if let Some(inner) = t.strip_prefix("period(").and_then(|r| r.strip_suffix(')')) {
            let every = humantime::parse_duration(inner.trim()).map_err(|e| fail(e.to_string()))?;
            if every < Duration::from_secs(1) {
                return Err(fail("a period must be at least 1s".into()));
            }
            return Ok(Schedule::Period(every));
        }
        if let Some(inner) = t.strip_prefix("cron(").and_then(|r| r.strip_suffix(')')) {
            let (expr, tz) = match inner.split_once(',') {
                Some((e, z)) => (e.trim(), Some(z.trim())),
                None => (inner.trim(), None),
            };
            let cron = croner::Cron::from_str(expr).map_err(|e| fail(e.to_string()))?;
            let tz = match tz {
                Some(z) => z
                    .parse::<chrono_tz::Tz>()
                    .map_err(|_| fail(format!("unknown time zone {z:?}")))?,
                None => chrono_tz::UTC,
            };
            return Ok(Schedule::Cron {
                cron: Box::new(cron),
                tz,
            });
        }
        Err(fail(
            "expected cron(<expression>[, <time zone>]) or period(<duration>)".into(),
        ))
    }

    /// The first run strictly after `after_ms` (Unix milliseconds); `None` when there is
    /// none that can be told (a period past the end of time).
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        match self {
            // Checked: cargo fuzz found `period(<hundreds of millions of years>)` wrapping
            // to a time in the past (a run every tick) or panicking the scheduler.
            Schedule::Period(every) => after_ms.checked_add(i64::try_from(every.as_millis()).ok()?),
            Schedule::Cron { cron, tz } => {
                let after = Utc
                    .timestamp_millis_opt(after_ms)
                    .single()?
                    .with_timezone(tz);
                let next = cron.find_next_occurrence(&after, false).ok()?;
                Some(next.with_timezone(&Utc).timestamp_millis())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_and_crons() {
        let p = Schedule::parse("period(5m)").unwrap();
        assert_eq!(p.next_after(1_000), Some(301_000));
        let c = Schedule::parse("cron(0 * * * *)").unwrap();
        // 2026-01-01T00:30:00Z → 01:00:00Z.
        let half_past = 1_767_227_400_000;
        assert_eq!(c.next_after(half_past), Some(half_past + 30 * 60 * 1000));
        let paris = Schedule::parse("cron(0 9 * * *, Europe/Paris)").unwrap();
        // 09:00 in Paris in winter is 08:00 UTC.
        let next = paris.next_after(half_past).unwrap();
        assert_eq!((next - 1_767_225_600_000) / 3_600_000, 8);
        // Found by cargo fuzz (fuzz/fuzz_targets/manifest.rs): no overflow, no run in the past.
        let long = Schedule::parse("period(1s)").unwrap();
        assert_eq!(long.next_after(i64::MAX - 1), None);
        let eons = Schedule::parse("period(500000000years)").unwrap();
        assert_eq!(eons.next_after(half_past), None);
    }

    #[test]
    fn bad_expressions_are_quoted() {
        for bad in [
            "cron(61 * * * *)",
            "every 5 minutes",
            "period(soon)",
            "cron(0 9 * * *, Mars/Base)",
            "period(10ms)",
        ] {
            let e = Schedule::parse(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }
}
