//! The capability keys endpoints and functions share: `gpu = "any"` and
//! `allowed_outbound_hosts = ["https://api.example.com", "http://127.0.0.1:*"]`, checked
//! here for their form (the host checks them again at deploy).

use super::*;

/// `gpu = "any"` or an adapter name.
pub(crate) fn parse_gpu(meta: &ParseNestedMeta) -> syn::Result<String> {
    let lit: LitStr = meta.value()?.parse()?;
    let gpu = lit.value();
    if gpu.trim().is_empty() {
        return Err(syn::Error::new(
            lit.span(),
            "expected \"any\" or an adapter name such as \"H100\"",
        ));
    }
    Ok(gpu)
}

/// Parses the list, refusing entries that are not `scheme://host[:port]`.
pub(crate) fn parse_hosts(meta: &ParseNestedMeta) -> syn::Result<Vec<String>> {
    let mut hosts: Vec<String> = Vec::new();
    for lit in string_list(meta)? {
        let host = lit.value();
        if let Err(why) = check(&host) {
            return Err(syn::Error::new(
                lit.span(),
                format!(
                    "{why}; expected \"<scheme>://<host>[:<port>]\" such as \
                     \"https://api.example.com\" or \"http://127.0.0.1:*\""
                ),
            ));
        }
        if hosts.contains(&host) {
            return Err(syn::Error::new(lit.span(), "this host is listed twice"));
        }
        hosts.push(host);
    }
    Ok(hosts)
}

/// The form of one entry; the host's parser decides the rest.
fn check(entry: &str) -> Result<(), &'static str> {
    let Some((scheme, rest)) = entry.split_once("://") else {
        return Err("missing `://`");
    };
    if !matches!(scheme, "http" | "https" | "*") {
        return Err("the scheme must be `http`, `https` or `*`");
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
        return Err("give a host (and port), without a path");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn entries_need_a_scheme_and_a_bare_authority() {
        assert!(check("https://api.example.com").is_ok());
        assert!(check("http://127.0.0.1:*").is_ok());
        assert!(check("*://*.example.com:8080").is_ok());
        assert!(check("api.example.com").is_err());
        assert!(check("ftp://x").is_err());
        assert!(check("https://x/path").is_err());
        assert!(check("https://").is_err());
    }
}
