//! The measurement tables: throughput, instantiation, cold starts, pre-initialisation
//! and memory.

use std::fmt::Write as _;

use super::{instances_per_request, mib, ms, row, rps, us, warm_instance_kib};
use crate::{Results, Role, ServerResult};

pub(super) fn throughput(w: &mut String, results: &Results) {
    let _ = writeln!(w, "\n## Throughput and latency\n");
    let _ = writeln!(
        w,
        "Each row is the median of the rounds (its p50/p99 are that round's); \"spread\" is \
         half the range of requests/s over the rounds, relative to the median.\n"
    );
    let hyper = row(results, Role::Ceiling);
    let peer = row(results, Role::Peer);
    let _ = writeln!(
        w,
        "| server | c | req/s | spread | p50 µs | p99 µs | errors | × wasmtime serve | \
         % of bare hyper |"
    );
    let _ = writeln!(
        w,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for server in &results.servers {
        for load in &server.loads {
            let ratio =
                |other: Option<&ServerResult>, percent: bool| match rps(other, load.concurrency) {
                    Some(y) if y > 0.0 && percent => format!("{:.0} %", load.rps / y * 100.0),
                    Some(y) if y > 0.0 => format!("{:.2}×", load.rps / y),
                    _ => "–".into(),
                };
            let rounds = server.round_rps(load.concurrency);
            let spread = match rounds.len() {
                0 | 1 => "–".to_string(),
                _ => {
                    let (lo, hi) = rounds
                        .iter()
                        .fold((f64::MAX, f64::MIN), |(l, h), r| (l.min(*r), h.max(*r)));
                    format!("±{:.0} %", (hi - lo) / 2.0 / load.rps.max(1.0) * 100.0)
                }
            };
            let _ = writeln!(
                w,
                "| {} | {} | {:.0} | {spread} | {} | {} | {} | {} | {} |",
                server.spec.label,
                load.concurrency,
                load.rps,
                us(load.p50),
                us(load.p99),
                load.errors,
                ratio(peer, false),
                ratio(hyper, true),
            );
        }
    }
    let _ = writeln!(
        w,
        "\nCommand lines (`{{port}}` is a free port; the wasmhost cache is warm):\n"
    );
    for server in &results.servers {
        let _ = writeln!(w, "- {}: `{}`", server.spec.label, server.spec.display());
    }
    let reuse_rows: Vec<String> = results
        .servers
        .iter()
        .filter_map(|s| Some((s, instances_per_request(s)?)))
        .map(|(s, n)| format!("{}: {n:.3}", s.spec.label))
        .collect();
    if !reuse_rows.is_empty() {
        let _ = writeln!(
            w,
            "\nInstances created per request during the load (wasmhost's `/metrics`): {}.",
            reuse_rows.join("; ")
        );
    }
    if !results.has_isolation_flag {
        let _ = writeln!(
            w,
            "\n`wasmhost run` has no `--isolation` flag: every row runs its default mode."
        );
    }
    let _ = writeln!(
        w,
        "\nAt c=1 every request wakes an idle CPU on each side. On a VM, where an idle vCPU \
         halts, that wake-up latency dominates c=1 and differs between servers (even the \
         bare hyper server can come out slower than wasmhost); c=64 keeps the CPUs busy and \
         measures the servers' own work."
    );
}

pub(super) fn instantiation(w: &mut String, results: &Results) {
    let _ = writeln!(w, "\n## Instantiation from the cached native code\n");
    let _ = writeln!(
        w,
        "In-process, through `Engine::instantiate_once` (`Store::new` + instantiate from the \
         `InstancePre`, pooling allocator, the same engine configuration as `wasmhost run`). \
         \"with drop\" adds freeing the instance (the slot's reset) and the async call.\n"
    );
    let _ = writeln!(
        w,
        "| component | load from cache | n × rounds | mean µs (median round) | rounds' means µs | \
         p50 µs | p99 µs | mean with drop µs |"
    );
    let _ = writeln!(
        w,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for i in &results.instantiation {
        let _ = writeln!(
            w,
            "| {} | {} ms | {} × {} | {} | {}–{} | {} | {} | {} |",
            i.component,
            ms(i.load_from_cache),
            i.count,
            i.rounds,
            us(i.mean),
            us(i.mean_range.0),
            us(i.mean_range.1),
            us(i.p50),
            us(i.p99),
            us(i.mean_with_drop)
        );
    }
}

pub(super) fn cold_start(w: &mut String, results: &Results) {
    let _ = writeln!(
        w,
        "\n## Cold start (`wasmhost run`, milliseconds, medians)\n"
    );
    let _ = writeln!(
        w,
        "\"first byte\" is from sending the request on an open connection to the response \
         head; \"start\" is from spawning the process to its printing the URL (it listens \
         after loading). \"spawn → first byte\" adds connecting and the first request. The \
         runs use `wasmhost run`'s default isolation.\n"
    );
    if let Some(d) = results.exec_floor {
        let _ = writeln!(
            w,
            "For scale: spawning `wasmhost --version` ({:.0} MB binary) until it exits takes \
             {} ms (median).\n",
            results.binary_bytes as f64 / 1e6,
            ms(d)
        );
    }
    let _ = writeln!(
        w,
        "| component | start, empty cache (compiles) | first byte, host up | 2nd request | \
         start, warm cache | first byte after restart, host up | spawn → first byte, warm cache |"
    );
    let _ = writeln!(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for c in &results.cold {
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} | {} |",
            c.component,
            ms(c.startup_cache_cold),
            ms(c.first_byte_after_cold),
            ms(c.second_byte),
            ms(c.startup_cache_warm),
            ms(c.first_byte_after_restart),
            ms(c.spawn_to_first_byte_warm)
        );
    }
}

pub(super) fn memory(w: &mut String, results: &Results) {
    let _ = writeln!(w, "\n## Memory\n");
    let _ = writeln!(
        w,
        "Resident memory (`VmRSS` from `/proc/<pid>/status`) of each server process, in MiB: \
         after startup and one request, idle 1 s after the load, and the peak (`VmHWM`); \
         for wasmhost also the instances alive then (`/metrics`).\n"
    );
    let _ = writeln!(
        w,
        "| server | after start | idle after load | peak | live instances (start → idle) |"
    );
    let _ = writeln!(w, "| --- | ---: | ---: | ---: | ---: |");
    for server in &results.servers {
        let live = match (server.metrics_ready, server.metrics_idle) {
            (Some(a), Some(b)) => format!("{:.0} → {:.0}", a.live, b.live),
            _ => "–".into(),
        };
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {live} |",
            server.spec.label,
            mib(server.rss_ready_kib),
            mib(server.rss_idle_kib),
            mib(server.rss_peak_kib)
        );
    }
    let _ = writeln!(w);
    for component in [crate::PROXY, crate::HELLO] {
        match warm_instance_kib(results, component) {
            Some((kib, live, cross)) => {
                let cross = cross.map_or(String::new(), |c| {
                    format!(
                        " Cross-check from each process's own growth (after start → idle \
                         after the load, reuse minus per-request, over the instances added): \
                         {c:.0} KiB."
                    )
                });
                let _ = writeln!(
                    w,
                    "- Per idle warm instance ({component}): {kib:.0} KiB — the reuse \
                     process's RSS minus the per-request one's, idle after the same load, \
                     over the {live:.0} instances it kept (a difference of two processes: \
                     expect ± a few hundred KiB of noise in the numerator).{cross}"
                );
            }
            None => {
                let _ = writeln!(
                    w,
                    "- Per idle warm instance ({component}): not measurable here — the \
                     reuse process kept no more instances than the per-request one."
                );
            }
        }
    }
    if let Some(memory) = &results.memory {
        for (name, kib) in &memory.per_instance_kib {
            let _ = writeln!(
                w,
                "- Per live instance ({name}, instantiated, never called): {kib:.1} KiB — \
                 growth of the benchmark's own RSS while holding {} instances from the engine \
                 API on a fresh engine (fresh pool slots). A lower bound: memory the process \
                 had already freed and reuses does not show.",
                memory.held_instances
            );
        }
        let _ = writeln!(
            w,
            "- Per loaded component: {:.0} KiB, of which {:.0} KiB anonymous — RSS growth after \
             loading `hello.wasm` {} times from the cache (each a separate mapping of the \
             native code, an `InstancePre` and a `describe` call; {} ms per load): a stand-in \
             for {} deployed functions ({:.0} MiB, {:.0} MiB anonymous; the rest is the mapped \
             native code, shared with the page cache).",
            memory.per_component_kib,
            memory.per_component_anon_kib,
            memory.loaded_components,
            ms(memory.mean_load_from_cache),
            memory.loaded_components,
            memory.per_component_kib * f64::from(memory.loaded_components) / 1024.0,
            memory.per_component_anon_kib * f64::from(memory.loaded_components) / 1024.0
        );
    }
}

pub(super) fn pre_init(w: &mut String, results: &Results) {
    let Some(p) = &results.pre_init else {
        return;
    };
    let _ = writeln!(
        w,
        "\n## Pre-initialisation (`examples/preinit`, milliseconds, medians of {})\n",
        p.runs
    );
    let _ = writeln!(
        w,
        "The guest builds a table of the primes below 1,500,000 by trial division in a \
         `#[wasmhost::init]` function. With a snapshot (the default) the host runs it once \
         at load and wasmtime-wizer bakes the result into the component, so instances start \
         with the table; with `--no-snapshot` every new instance runs it before its first \
         call. \"First byte\" is as in the cold-start table: the endpoint was never called.\n"
    );
    let _ = writeln!(
        w,
        "| start, empty cache (compile, init, snapshot, compile) | first byte from the snapshot, \
         host up | same after a restart | spawn → first byte after a restart | first byte \
         without a snapshot | its 2nd request |"
    );
    let _ = writeln!(w, "| ---: | ---: | ---: | ---: | ---: | ---: |");
    let _ = writeln!(
        w,
        "| {} | {} | {} | {} | {} | {} |",
        ms(p.startup_with_snapshot),
        ms(p.first_byte_snapshot),
        ms(p.first_byte_snapshot_restart),
        ms(p.spawn_to_first_byte_snapshot),
        ms(p.first_byte_no_snapshot),
        ms(p.second_byte_no_snapshot)
    );
}
