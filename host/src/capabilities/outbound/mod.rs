//! Outbound HTTP: where a guest's `wasi:http` requests may go. Each function or endpoint
//! declares an allow-list in Spin's form (`allowed_outbound_hosts`, see [`AllowedHosts`]);
//! it is checked at deploy ([`Outbound::check`]) and enforced per instance by the
//! send hook [`OutboundHooks`], which also bounds timeouts and response sizes and counts
//! every decision. The decision reads only the manifest's list and the request's own
//! URI, never the inbound request (so a forged `Host` cannot widen it, the Spin
//! CVE-2024-32980 class). `wasi:http` does not follow redirects: a guest sees the 3xx
//! and any request it makes next is checked again.

mod allow;
mod hooks;
pub mod sockets;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use wasmtime::component::Linker;

use super::{Capability, CapabilityViews, Declared, WasiSetup};

pub use allow::{AllowedHosts, HostPatternError, Target};
pub use hooks::OutboundHooks;

/// The host's bounds on every outgoing request; a guest may ask for shorter timeouts.
#[derive(Debug, Clone, Copy)]
pub struct OutboundLimits {
    /// Longest wait for a connection.
    pub connect_timeout: Duration,
    /// Longest wait for the response head.
    pub first_byte_timeout: Duration,
    /// Longest pause between response body frames.
    pub between_bytes_timeout: Duration,
    /// Largest response body a guest may read, in bytes.
    pub max_response_bytes: u64,
}

impl Default for OutboundLimits {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(60),
            between_bytes_timeout: Duration::from_secs(30),
            max_response_bytes: 64 << 20,
        }
    }
}

/// Counters of outbound decisions, shared with `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct OutboundCounters {
    /// Requests let through.
    pub allowed: Counter,
    /// Requests refused with `HTTP-request-denied`.
    pub denied: Counter,
}

/// The outbound HTTP capability: checks allow-lists at deploy and makes each instance's
/// send hook.
#[derive(Debug, Clone, Default)]
pub struct Outbound {
    limits: OutboundLimits,
    counters: OutboundCounters,
}

impl Outbound {
    /// The capability with these bounds, counting into `counters`.
    pub fn new(limits: OutboundLimits, counters: OutboundCounters) -> Self {
        Self { limits, counters }
    }

    /// Checks a declared allow-list at deploy; a bad entry is refused with its reason.
    pub fn check<S: AsRef<str>>(entries: &[S]) -> Result<AllowedHosts, HostPatternError> {
        AllowedHosts::parse(entries)
    }

    /// The send hook of one instance of `who` (`<app>/<function>`) allowed `entries`.
    /// Entries were checked at deploy; should one not parse now, nothing is allowed.
    pub fn prepare<S: AsRef<str>>(&self, who: &str, entries: &[S]) -> OutboundHooks {
        let allowed = AllowedHosts::parse(entries).unwrap_or_else(|e| {
            tracing::warn!(guest = who, "{e}; refusing every outbound request");
            AllowedHosts::default()
        });
        OutboundHooks::new(
            Arc::new(allowed),
            self.limits,
            self.counters.clone(),
            who.into(),
        )
    }

    /// A send hook that refuses everything (deploy-time work: `describe`, init snapshots).
    pub fn deny_all(&self, who: &str) -> OutboundHooks {
        self.prepare::<&str>(who, &[])
    }
}

/// What one instance is granted of the network.
pub struct OutboundGrant {
    /// Its send hook ([`Outbound::prepare`] or [`Outbound::deny_all`]).
    pub hooks: OutboundHooks,
    /// A web server's port mapping (inner, outer): its one loopback port; none for
    /// every other guest, which gets no socket at all.
    pub port_map: Option<(u16, u16)>,
}

impl Capability for Outbound {
    type Config = AllowedHosts;
    type ConfigError = HostPatternError;
    type Grant<'a> = OutboundGrant;
    type Instance = OutboundHooks;

    /// `wasi:http`'s outgoing handler, and web servers' bind of their inner port
    /// rewritten to their outer one (over WASI's sockets, linked before).
    fn link<T: CapabilityViews>(linker: &mut Linker<T>, p3: bool) -> wasmtime::Result<()> {
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
        sockets::add_bind_rewrite(linker)?;
        if p3 {
            wasmtime_wasi_http::p3::add_to_linker(linker)?;
        }
        Ok(())
    }

    fn configure(declared: &Declared<'_>) -> Result<AllowedHosts, HostPatternError> {
        Self::check(declared.allowed_outbound_hosts)
    }

    fn instance(grant: OutboundGrant, wasi: &mut WasiSetup) -> std::io::Result<OutboundHooks> {
        let port_map = grant.port_map;
        wasi.later(move |wasi| sockets::confine(wasi, port_map));
        Ok(grant.hooks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lists_are_checked_at_deploy() {
        let hosts = [
            "https://api.example.com".to_owned(),
            "example.com".to_owned(),
        ];
        let mut declared = Declared {
            what: "endpoint",
            name: "e",
            secrets: &[],
            volumes: &[],
            allowed_outbound_hosts: &hosts[..1],
            gpu: None,
        };
        assert!(Outbound::configure(&declared).is_ok());
        declared.allowed_outbound_hosts = &hosts;
        let err = Outbound::configure(&declared).unwrap_err().to_string();
        assert!(err.contains("example.com"), "{err}");
    }
}
