//! The manifest decoder: what a hostile guest's `describe` may return, decoded and then
//! used as the host uses it (retry delays, schedules, input checks, DNS names).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmhost::functions::Schedule;

fuzz_target!(|data: &[u8]| {
    let Some(manifest) = wasmhost::fuzzing::fuzz_manifest(data) else {
        return;
    };
    for spec in &manifest.endpoints {
        let _ = spec.dns_name();
    }
    for f in &manifest.functions {
        if let Some(policy) = f.retries {
            for retry in 1..=policy.max_retries.min(80) {
                let _ = policy.delay(retry);
            }
        }
        if let Some(text) = &f.schedule
            && let Ok(schedule) = Schedule::parse(text)
        {
            let _ = schedule.next_after(0);
            let _ = schedule.next_after(i64::MAX - 1);
        }
        let input = serde_json::json!({"args": [1, "a"], "kwargs": {"x": null}});
        let _ = wasmhost::functions::input::check(f, &input);
    }
});
