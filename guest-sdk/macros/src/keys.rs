//! The keys of `#[wasmhost::endpoint]` (and `#[method]` of classes) and the parsers of
//! values every attribute shares: durations, memory, flags, string lists.

use super::*;

/// Methods an endpoint may declare.
pub(crate) const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// The attribute's keys.
#[derive(Default)]
pub(crate) struct Config {
    pub(crate) method: Option<String>,
    pub(crate) label: Option<String>,
    pub(crate) docs: Option<bool>,
    pub(crate) requires_proxy_auth: Option<bool>,
    pub(crate) custom_domains: Option<Vec<String>>,
    pub(crate) timeout_ms: Option<u64>,
    pub(crate) memory_mib: Option<u32>,
    /// The endpoint's name when it differs from the function's (class methods).
    pub(crate) name: Option<String>,
    /// Registered as a class method (`#[wasmhost::cls]` sets it).
    pub(crate) class_method: Option<bool>,
    pub(crate) gpu: Option<String>,
    pub(crate) allowed_outbound_hosts: Option<Vec<String>>,
    pub(crate) max_inputs: Option<u32>,
    pub(crate) min_containers: Option<u32>,
    pub(crate) max_containers: Option<u32>,
    pub(crate) buffer_containers: Option<u32>,
    pub(crate) scaledown_window_ms: Option<u64>,
    pub(crate) isolation: Option<String>,
    /// `batched(max_batch_size = N, wait_ms = M)`.
    pub(crate) batched: Option<(u32, u64)>,
}

impl Config {
    /// Parses one `key = value` (or a bare boolean flag).
    pub(crate) fn parse(&mut self, meta: &ParseNestedMeta) -> syn::Result<()> {
        let key = key_name(meta);
        let duplicate = || meta.error(format!("`{key}` is given twice"));
        match key.as_str() {
            "method" => {
                let method = method(meta)?;
                set(&mut self.method, method, duplicate)
            }
            "label" => {
                let lit: LitStr = meta.value()?.parse()?;
                let label = lit.value();
                if !is_dns_label(&label) {
                    return Err(syn::Error::new(
                        lit.span(),
                        "a label must be 1 to 63 lower-case letters, digits or `-`, \
                         starting and ending with a letter or digit",
                    ));
                }
                set(&mut self.label, label, duplicate)
            }
            "docs" => {
                let value = flag(meta)?;
                set(&mut self.docs, value, duplicate)
            }
            "requires_proxy_auth" => {
                let value = flag(meta)?;
                set(&mut self.requires_proxy_auth, value, duplicate)
            }
            "custom_domains" => {
                let domains = custom_domains(meta)?;
                set(&mut self.custom_domains, domains, duplicate)
            }
            "timeout" => {
                let ms = duration(meta, false)?;
                set(&mut self.timeout_ms, ms, duplicate)
            }
            "memory" => {
                let mib = memory_mib(meta)?;
                set(&mut self.memory_mib, mib, duplicate)
            }
            "__name" => {
                let lit: LitStr = meta.value()?.parse()?;
                set(&mut self.name, lit.value(), duplicate)
            }
            "__class_method" => {
                let value = flag(meta)?;
                set(&mut self.class_method, value, duplicate)
            }
            "gpu" => {
                let gpu = crate::capabilities::parse_gpu(meta)?;
                set(&mut self.gpu, gpu, duplicate)
            }
            "allowed_outbound_hosts" => {
                let hosts = crate::capabilities::parse_hosts(meta)?;
                set(&mut self.allowed_outbound_hosts, hosts, duplicate)
            }
            "max_inputs" | "min_containers" | "max_containers" | "buffer_containers" => {
                let lit: LitInt = meta.value()?.parse()?;
                let n = lit.base10_parse::<u32>()?;
                let slot = match key.as_str() {
                    "max_inputs" => &mut self.max_inputs,
                    "min_containers" => &mut self.min_containers,
                    "buffer_containers" => &mut self.buffer_containers,
                    _ => &mut self.max_containers,
                };
                if n == 0 && (key == "max_inputs" || key == "max_containers") {
                    return Err(syn::Error::new(lit.span(), "must be at least 1"));
                }
                set(slot, n, duplicate)
            }
            "scaledown_window" => {
                let ms = duration(meta, false)?;
                set(&mut self.scaledown_window_ms, ms, duplicate)
            }
            "isolation" => {
                let lit: LitStr = meta.value()?.parse()?;
                let value = lit.value();
                if value != "per-request" && value != "reuse" {
                    return Err(syn::Error::new(
                        lit.span(),
                        "expected \"per-request\" or \"reuse\"",
                    ));
                }
                set(&mut self.isolation, value, duplicate)
            }
            "batched" => {
                let batched = crate::batched::parse_batched(meta)?;
                set(&mut self.batched, batched, duplicate)
            }
            _ => Err(meta.error(
                "unknown key; expected `method`, `label`, `docs`, `requires_proxy_auth`, \
                 `custom_domains`, `timeout`, `memory`, `gpu`, `allowed_outbound_hosts`, \
                 `max_inputs`, `min_containers`, `max_containers`, `buffer_containers`, \
                 `scaledown_window`, `isolation` or `batched`",
            )),
        }
    }
}

/// An HTTP method endpoints may declare, upper-cased.
fn method(meta: &ParseNestedMeta) -> syn::Result<String> {
    let lit: LitStr = meta.value()?.parse()?;
    let method = lit.value().to_ascii_uppercase();
    if !METHODS.contains(&method.as_str()) {
        return Err(syn::Error::new(
            lit.span(),
            format!("unsupported method; expected one of {}", METHODS.join(", ")),
        ));
    }
    Ok(method)
}

/// `["a.example.com", ...]`: bare host names.
fn custom_domains(meta: &ParseNestedMeta) -> syn::Result<Vec<String>> {
    let mut domains = Vec::new();
    for lit in string_list(meta)? {
        let domain = lit.value();
        if domain.is_empty()
            || domain
                .chars()
                .any(|c| c.is_whitespace() || matches!(c, '/' | ':' | '?' | '#'))
        {
            return Err(syn::Error::new(lit.span(), "expected a bare host name"));
        }
        domains.push(domain);
    }
    Ok(domains)
}

/// A duration key's value in milliseconds; `allow_zero` admits `"0s"`.
pub(crate) fn duration(meta: &ParseNestedMeta, allow_zero: bool) -> syn::Result<u64> {
    let lit: LitStr = meta.value()?.parse()?;
    let parsed = if allow_zero {
        parse_duration_ms(&lit.value())
    } else {
        parse_duration(&lit.value())
    };
    match parsed {
        Some(ms) => Ok(ms),
        _ => Err(syn::Error::new(
            lit.span(),
            if allow_zero {
                "expected a duration such as \"0s\", \"500ms\", \"30s\", \"5m\" or \"1h\""
            } else {
                "expected a positive duration such as \"500ms\", \"30s\", \"5m\" or \"1h\""
            },
        )),
    }
}

/// A memory cap in MiB, at least 1.
pub(crate) fn memory_mib(meta: &ParseNestedMeta) -> syn::Result<u32> {
    let lit: LitInt = meta.value()?.parse()?;
    let mib = lit.base10_parse::<u32>()?;
    if mib == 0 {
        return Err(syn::Error::new(
            lit.span(),
            "memory is in MiB and must be > 0",
        ));
    }
    Ok(mib)
}

/// `["a", "b"]` as string literals.
pub(crate) fn string_list(meta: &ParseNestedMeta) -> syn::Result<Punctuated<LitStr, Token![,]>> {
    let value = meta.value()?;
    let content;
    bracketed!(content in value);
    Punctuated::<LitStr, Token![,]>::parse_terminated(&content)
}

/// The key's name (`retries` in `retries = 3`); empty for a path such as `a::b`, which no
/// key matches.
pub(crate) fn key_name(meta: &ParseNestedMeta) -> String {
    meta.path
        .get_ident()
        .map(ToString::to_string)
        .unwrap_or_default()
}

/// Stores a key's value, refusing a second one.
pub(crate) fn set<T>(
    slot: &mut Option<T>,
    value: T,
    duplicate: impl FnOnce() -> syn::Error,
) -> syn::Result<()> {
    if slot.is_some() {
        return Err(duplicate());
    }
    *slot = Some(value);
    Ok(())
}

/// A boolean key: `key = true|false`, or `key` alone for `true`.
pub(crate) fn flag(meta: &ParseNestedMeta) -> syn::Result<bool> {
    if meta.input.peek(Token![=]) {
        Ok(meta.value()?.parse::<LitBool>()?.value)
    } else {
        Ok(true)
    }
}

/// Milliseconds of a positive duration such as `500ms`, `30s`, `5m` or `1h`.
pub(crate) fn parse_duration(text: &str) -> Option<u64> {
    parse_duration_ms(text).filter(|&ms| ms > 0)
}

/// Milliseconds of a duration such as `0s`, `500ms`, `30s`, `5m` or `1h`.
pub(crate) fn parse_duration_ms(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let scale = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    number.checked_mul(scale)
}

/// Whether `label` is a DNS label of lower-case letters, digits and inner dashes.
pub(crate) fn is_dns_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    (1..=63).contains(&bytes.len())
        && bytes.iter().all(|b| alnum(b) || *b == b'-')
        && bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
}

impl Config {
    /// The `Scaling` value the attribute asks for.
    pub(crate) fn scaling_tokens(&self) -> TokenStream2 {
        let max_inputs = option(self.max_inputs.as_ref());
        let min_containers = option(self.min_containers.as_ref());
        let max_containers = option(self.max_containers.as_ref());
        let buffer_containers = option(self.buffer_containers.as_ref());
        let window = option(self.scaledown_window_ms.as_ref());
        let per_request = self.isolation.as_deref() == Some("per-request");
        quote!(::wasmhost::__private::Scaling {
            max_inputs: #max_inputs,
            min_containers: #min_containers,
            max_containers: #max_containers,
            buffer_containers: #buffer_containers,
            scaledown_window_ms: #window,
            per_request: #per_request,
        })
    }
}

/// `Some(value)` or `None` as tokens.
pub(crate) fn option<T: ToTokens>(value: Option<&T>) -> TokenStream2 {
    match value {
        Some(value) => quote!(::core::option::Option::Some(#value)),
        None => quote!(::core::option::Option::None),
    }
}
