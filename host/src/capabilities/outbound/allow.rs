//! The allow-list of outgoing requests, in Spin's form: `scheme://host[:port]`, where the
//! scheme is `http`, `https` or `*`, the host a name, an IP literal, `*.example.com`
//! (subdomains only) or `*`, and the port a number or `*` (absent: the scheme's default).
//! A request is allowed when its own scheme, host and port match one entry; nothing else
//! (headers, the inbound request) takes part in the decision.

use std::fmt;

/// An entry of `allowed_outbound_hosts` that is not in the accepted form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "allowed_outbound_hosts entry {entry:?}: {reason}; expected \"<scheme>://<host>[:<port>]\" such as \"https://api.example.com\" or \"http://127.0.0.1:*\""
)]
pub struct HostPatternError {
    /// The entry as written.
    pub entry: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SchemePattern {
    Any,
    Http,
    Https,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPart {
    Any,
    /// `*.example.com`: stored as `.example.com`.
    Subdomains(String),
    Exact(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortPattern {
    Any,
    /// The request's scheme's default port.
    Default,
    Exact(u16),
}

/// One parsed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostPattern {
    scheme: SchemePattern,
    host: HostPart,
    port: PortPattern,
}

/// Where a guest's outgoing requests may go; empty allows nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    patterns: Vec<HostPattern>,
    written: Vec<String>,
}

/// The parts of a request's target that the decision reads.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// `http` or `https`.
    pub scheme: &'a str,
    /// Host name or IP literal (IPv6 with or without brackets).
    pub host: &'a str,
    /// The explicit port, if the URI has one.
    pub port: Option<u16>,
}

impl AllowedHosts {
    /// Parses every entry; the first bad one is the error.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, HostPatternError> {
        let mut patterns = Vec::with_capacity(entries.len());
        for entry in entries {
            patterns.push(parse_one(entry.as_ref())?);
        }
        Ok(Self {
            patterns,
            written: entries.iter().map(|e| e.as_ref().to_owned()).collect(),
        })
    }

    /// True when nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether a request to `target` is allowed.
    pub fn allows(&self, target: Target<'_>) -> bool {
        let scheme = target.scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return false,
        };
        let port = target.port.unwrap_or(default_port);
        let host = normalise_host(target.host);
        if host.is_empty() {
            return false;
        }
        self.patterns.iter().any(|p| {
            let scheme_ok = match p.scheme {
                SchemePattern::Any => true,
                SchemePattern::Http => scheme == "http",
                SchemePattern::Https => scheme == "https",
            };
            let host_ok = match &p.host {
                HostPart::Any => true,
                HostPart::Exact(h) => *h == host,
                HostPart::Subdomains(suffix) => {
                    host.len() > suffix.len() && host.ends_with(suffix.as_str())
                }
            };
            let port_ok = match p.port {
                PortPattern::Any => true,
                PortPattern::Default => port == default_port,
                PortPattern::Exact(n) => port == n,
            };
            scheme_ok && host_ok && port_ok
        })
    }
}

impl fmt::Display for AllowedHosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.written.is_empty() {
            f.write_str("nothing")
        } else {
            f.write_str(&self.written.join(", "))
        }
    }
}

/// Lower-case, brackets of an IPv6 literal and one trailing dot removed.
fn normalise_host(host: &str) -> String {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

fn parse_one(entry: &str) -> Result<HostPattern, HostPatternError> {
    let bad = |reason| HostPatternError {
        entry: entry.to_owned(),
        reason,
    };
    let (scheme, rest) = entry.split_once("://").ok_or(bad("missing `://`"))?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "*" => SchemePattern::Any,
        "http" => SchemePattern::Http,
        "https" => SchemePattern::Https,
        _ => return Err(bad("the scheme must be `http`, `https` or `*`")),
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
        return Err(bad("give a host (and port), without a path, query or user"));
    }
    // `[::1]:8080`, `[::1]`, `host:port`, `host`.
    let (host, port) = if let Some(after) = authority.strip_prefix('[') {
        let (ip, tail) = after.split_once(']').ok_or(bad("unclosed `[`"))?;
        let port = match tail {
            "" => None,
            t => Some(t.strip_prefix(':').ok_or(bad("junk after `]`"))?),
        };
        if ip.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad("not an IPv6 address in `[...]`"));
        }
        (ip.to_ascii_lowercase(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_ascii_lowercase(), Some(p)),
            None => (authority.to_ascii_lowercase(), None),
        }
    };
    let port = match port {
        None => PortPattern::Default,
        Some("*") => PortPattern::Any,
        Some(p) => PortPattern::Exact(
            p.parse::<u16>()
                .ok()
                .filter(|n| *n != 0)
                .ok_or(bad("the port must be 1-65535 or `*`"))?,
        ),
    };
    if port == PortPattern::Default && scheme == SchemePattern::Any {
        return Err(bad("`*://` needs a port (a number or `*`)"));
    }
    let host = if host == "*" {
        HostPart::Any
    } else if let Some(suffix) = host.strip_prefix("*.") {
        if !valid_name(suffix) {
            return Err(bad("`*.` must be followed by a domain name"));
        }
        HostPart::Subdomains(format!(".{}", suffix.strip_suffix('.').unwrap_or(suffix)))
    } else if valid_name(&host) || host.parse::<std::net::IpAddr>().is_ok() {
        HostPart::Exact(host.strip_suffix('.').unwrap_or(&host).to_owned())
    } else {
        return Err(bad(
            "the host must be a name, an IP address, `*` or `*.domain`",
        ));
    };
    Ok(HostPattern { scheme, host, port })
}

/// A DNS name: labels of letters, digits, `-` and `_`, dot-separated.
fn valid_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(scheme: &'static str, host: &'static str, port: Option<u16>) -> Target<'static> {
        Target { scheme, host, port }
    }

    #[test]
    fn exact_host_with_the_default_port() {
        let a = AllowedHosts::parse(&["https://api.example.com"]).unwrap();
        assert!(a.allows(t("https", "api.example.com", None)));
        assert!(a.allows(t("https", "API.Example.com.", Some(443))));
        assert!(!a.allows(t("http", "api.example.com", None)));
        assert!(!a.allows(t("https", "api.example.com", Some(8443))));
        assert!(!a.allows(t("https", "example.com", None)));
        assert!(!a.allows(t("https", "api.example.com.evil.net", None)));
        assert!(!a.allows(t("https", "evilapi.example.com", None)));
    }

    #[test]
    fn wildcard_ports_and_subdomains() {
        let a = AllowedHosts::parse(&["http://127.0.0.1:*", "https://*.example.com"]).unwrap();
        assert!(a.allows(t("http", "127.0.0.1", Some(1234))));
        assert!(a.allows(t("http", "127.0.0.1", None)));
        assert!(!a.allows(t("https", "127.0.0.1", Some(1234))));
        assert!(!a.allows(t("http", "localhost", Some(1234))));
        assert!(a.allows(t("https", "a.example.com", None)));
        assert!(a.allows(t("https", "a.b.example.com", None)));
        assert!(!a.allows(t("https", "example.com", None)));
        assert!(!a.allows(t("https", "badexample.com", None)));
    }

    #[test]
    fn any_scheme_needs_a_port_and_ipv6_literals_match() {
        assert!(AllowedHosts::parse(&["*://example.com"]).is_err());
        let a = AllowedHosts::parse(&["*://[::1]:8080", "*://*:9000"]).unwrap();
        assert!(a.allows(t("http", "[::1]", Some(8080))));
        assert!(a.allows(t("https", "::1", Some(8080))));
        assert!(!a.allows(t("http", "::1", Some(8081))));
        assert!(a.allows(t("http", "anything.test", Some(9000))));
        assert!(!a.allows(t("ftp", "anything.test", Some(9000))));
    }

    #[test]
    fn nothing_is_allowed_by_an_empty_list() {
        let a = AllowedHosts::parse::<&str>(&[]).unwrap();
        assert!(a.is_empty());
        assert!(!a.allows(t("https", "example.com", None)));
        assert!(
            !AllowedHosts::parse(&["https://x.test"])
                .unwrap()
                .allows(t("https", "", None))
        );
    }

    #[test]
    fn malformed_entries_say_why() {
        for (entry, reason) in [
            ("api.example.com", "://"),
            ("ftp://x.test", "scheme"),
            ("https://x.test/path", "path"),
            ("https://user@x.test", "user"),
            ("https://x.test:0", "port"),
            ("https://x.test:http", "port"),
            ("https://*x.test", "host"),
            ("https://*.", "domain"),
            ("https://[nope]:1", "IPv6"),
        ] {
            let err = AllowedHosts::parse(&[entry]).unwrap_err();
            assert!(err.to_string().contains(reason), "{entry}: {err}");
        }
    }
}
