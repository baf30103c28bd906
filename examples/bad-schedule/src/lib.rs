//! A function whose cron expression cannot be parsed: deploying it must be refused
//! with the expression quoted (used by the tests).

/// Would run at minute 61, which does not exist.
#[wasmhost::function(schedule = "cron(61 * * * *)")]
fn never() -> i64 {
    0
}
