//! Attribute macros of the wasmhost guest SDK; use them through `wasmhost::endpoint` and
//! `wasmhost::function`.

mod apps;
mod capabilities;
mod function;

use function::{FunctionConfig, expand_function};

use proc_macro::TokenStream;
use proc_macro2::{TokenStream as TokenStream2, TokenTree};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::meta::ParseNestedMeta;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    Expr, ExprLit, FnArg, ItemFn, Lit, LitBool, LitInt, LitStr, Meta, Pat, ReturnType, Signature,
    Token, Type, bracketed,
};

/// Methods an endpoint may declare.
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Declares a web endpoint: registers the function with its configuration, argument
/// extraction and JSON schemas so the component serves it.
///
/// Keys: `method = "POST"` (default `GET`), `label = "api"`, `docs = true`,
/// `requires_proxy_auth = true`, `custom_domains = ["a.example.com"]`,
/// `timeout = "30s"` (`ms`, `s`, `m` or `h`), `memory = 64` (MiB),
/// `gpu = "any"` (or an adapter name such as `"H100"`: the endpoint may use `wasmhost::gpu`),
/// `allowed_outbound_hosts = ["https://api.example.com", "http://127.0.0.1:*"]` (where its
/// outgoing `wasi:http` requests may go; nowhere by default),
/// and scaling in Modal's names: `max_inputs`, `min_containers`, `max_containers`,
/// `buffer_containers`, `scaledown_window = "60s"`, `isolation = "per-request"`.
/// The function's doc comment becomes the endpoint's summary.
#[proc_macro_attribute]
pub fn endpoint(attr: TokenStream, item: TokenStream) -> TokenStream {
    attribute(attr, item, Config::parse, expand)
}

/// Parses an attribute's keys with `parse`, then expands the function with `expand`; on an
/// error the function is kept, so its callers do not add errors of their own.
fn attribute<C: Default>(
    attr: TokenStream,
    item: TokenStream,
    parse: fn(&mut C, &ParseNestedMeta) -> syn::Result<()>,
    expand: fn(&C, &ItemFn) -> syn::Result<TokenStream2>,
) -> TokenStream {
    let mut config = C::default();
    let parser = syn::meta::parser(|meta| parse(&mut config, &meta));
    let attr_result = syn::parse::Parser::parse(parser, attr);
    let item = TokenStream2::from(item);
    let func = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(func) => func,
        Err(err) => return err.to_compile_error().into(),
    };
    emit(attr_result.and_then(|()| expand(&config, &func)), item)
}

/// The expansion, or the error next to the unchanged `item`, so its callers do not add
/// errors of their own.
fn emit(expanded: syn::Result<TokenStream2>, item: TokenStream2) -> TokenStream {
    match expanded {
        Ok(tokens) => tokens.into(),
        Err(err) => {
            let err = err.to_compile_error();
            quote!(#err #item).into()
        }
    }
}

/// A parameter that must be a plain name taken by value (`what` names the kind of
/// function, `key` says what the name is used as); returns its pattern and type.
fn plain_param<'a>(
    arg: &'a FnArg,
    what: &str,
    key: &str,
) -> syn::Result<(&'a syn::PatIdent, &'a Type)> {
    let FnArg::Typed(typed) = arg else {
        return Err(syn::Error::new(
            arg.span(),
            format!("{what}s are free functions"),
        ));
    };
    let Pat::Ident(pat) = &*typed.pat else {
        return Err(syn::Error::new(
            typed.pat.span(),
            format!("{what} parameters must be plain names: the name is {key}"),
        ));
    };
    if let Some(by_ref) = &pat.by_ref {
        return Err(syn::Error::new(
            by_ref.span(),
            format!("{what} parameters are taken by value"),
        ));
    }
    Ok((pat, &typed.ty))
}

/// Declares a callable function: registers it with its configuration, input mapping and
/// JSON schemas so the component runs it.
///
/// Keys: `retries = 3` or `retries(max = 3, backoff = 2.0, initial_delay = "1s",
/// max_delay = "60s")`, `timeout = "30s"`, `memory = 64` (MiB),
/// `schedule = "cron(0 * * * *)"` / `"cron(0 9 * * *, Europe/Paris)"` / `"period(5m)"`,
/// `secrets = ["name"]`, `volumes = ["volume:/mount/path"]`, `gpu = "any"`,
/// `allowed_outbound_hosts = ["https://api.example.com"]`.
/// The function's doc comment becomes its summary.
#[proc_macro_attribute]
pub fn function(attr: TokenStream, item: TokenStream) -> TokenStream {
    attribute(attr, item, FunctionConfig::parse, expand_function)
}

/// The attribute's keys.
#[derive(Default)]
pub(crate) struct Config {
    method: Option<String>,
    label: Option<String>,
    docs: Option<bool>,
    requires_proxy_auth: Option<bool>,
    custom_domains: Option<Vec<String>>,
    timeout_ms: Option<u64>,
    memory_mib: Option<u32>,
    /// The endpoint's name when it differs from the function's (class methods).
    name: Option<String>,
    /// Registered as a class method (`#[wasmhost::cls]` sets it).
    class_method: Option<bool>,
    gpu: Option<String>,
    allowed_outbound_hosts: Option<Vec<String>>,
    max_inputs: Option<u32>,
    min_containers: Option<u32>,
    max_containers: Option<u32>,
    buffer_containers: Option<u32>,
    scaledown_window_ms: Option<u64>,
    isolation: Option<String>,
}

impl Config {
    /// Parses one `key = value` (or a bare boolean flag).
    fn parse(&mut self, meta: &ParseNestedMeta) -> syn::Result<()> {
        let key = meta
            .path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        let duplicate = || meta.error(format!("`{key}` is given twice"));
        match key.as_str() {
            "method" => {
                let lit: LitStr = meta.value()?.parse()?;
                let method = lit.value().to_ascii_uppercase();
                if !METHODS.contains(&method.as_str()) {
                    return Err(syn::Error::new(
                        lit.span(),
                        format!("unsupported method; expected one of {}", METHODS.join(", ")),
                    ));
                }
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
                let value = meta.value()?;
                let content;
                bracketed!(content in value);
                let lits = Punctuated::<LitStr, Token![,]>::parse_terminated(&content)?;
                let mut domains = Vec::new();
                for lit in lits {
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
                let gpu = capabilities::parse_gpu(meta)?;
                set(&mut self.gpu, gpu, duplicate)
            }
            "allowed_outbound_hosts" => {
                let hosts = capabilities::parse_hosts(meta)?;
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
            _ => Err(meta.error(
                "unknown key; expected `method`, `label`, `docs`, `requires_proxy_auth`, \
                 `custom_domains`, `timeout`, `memory`, `gpu`, `allowed_outbound_hosts`, \
                 `max_inputs`, `min_containers`, `max_containers`, `buffer_containers`, \
                 `scaledown_window` or `isolation`",
            )),
        }
    }
}

/// A duration key's value in milliseconds; `allow_zero` admits `"0s"`.
fn duration(meta: &ParseNestedMeta, allow_zero: bool) -> syn::Result<u64> {
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
fn memory_mib(meta: &ParseNestedMeta) -> syn::Result<u32> {
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
fn string_list(meta: &ParseNestedMeta) -> syn::Result<Punctuated<LitStr, Token![,]>> {
    let value = meta.value()?;
    let content;
    bracketed!(content in value);
    Punctuated::<LitStr, Token![,]>::parse_terminated(&content)
}

/// Stores a key's value, refusing a second one.
fn set<T>(
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
fn flag(meta: &ParseNestedMeta) -> syn::Result<bool> {
    if meta.input.peek(Token![=]) {
        Ok(meta.value()?.parse::<LitBool>()?.value)
    } else {
        Ok(true)
    }
}

/// Milliseconds of a positive duration such as `500ms`, `30s`, `5m` or `1h`.
fn parse_duration(text: &str) -> Option<u64> {
    parse_duration_ms(text).filter(|&ms| ms > 0)
}

/// Milliseconds of a duration such as `0s`, `500ms`, `30s`, `5m` or `1h`.
fn parse_duration_ms(text: &str) -> Option<u64> {
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
fn is_dns_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    (1..=63).contains(&bytes.len())
        && bytes.iter().all(|b| alnum(b) || *b == b'-')
        && bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
}

/// How a parameter gets its value.
enum Source {
    /// By name, from the query string or the body's fields.
    Named,
    /// The whole JSON body (`Json<T>`).
    Body,
    /// The whole request (`Request`).
    Request,
}

/// One parameter of the function.
struct Param<'a> {
    name: String,
    ty: &'a Type,
    source: Source,
}

/// The function, unchanged, plus its handler, schemas and registration.
fn expand(config: &Config, func: &ItemFn) -> syn::Result<TokenStream2> {
    let sig = &func.sig;
    check_signature(sig, "endpoints")?;

    let params = sig
        .inputs
        .iter()
        .map(param)
        .collect::<syn::Result<Vec<_>>>()?;
    let mut bodies = params.iter().filter(|p| matches!(p.source, Source::Body));
    if let (Some(_), Some(second)) = (bodies.next(), bodies.next()) {
        return Err(syn::Error::new(
            second.ty.span(),
            "only one `Json` parameter can receive the body",
        ));
    }

    let ident = &sig.ident;
    let name = config
        .name
        .clone()
        .unwrap_or_else(|| ident.unraw().to_string());
    let kind = if config.class_method.unwrap_or(false) {
        quote!(::wasmhost::__private::Kind::Method)
    } else {
        quote!(::wasmhost::__private::Kind::Function)
    };
    let method = config.method.as_deref().unwrap_or("GET");
    let label = option(config.label.as_ref());
    let docs = config.docs.unwrap_or(false);
    let requires_proxy_auth = config.requires_proxy_auth.unwrap_or(false);
    let custom_domains = config.custom_domains.as_deref().unwrap_or_default();
    let summary = option(summary(func).as_ref());
    let timeout_ms = option(config.timeout_ms.as_ref());
    let memory_mib = option(config.memory_mib.as_ref());
    let gpu = option(config.gpu.as_ref());
    let outbound = config.allowed_outbound_hosts.as_deref().unwrap_or_default();
    let scaling = config.scaling_tokens();

    // Extraction of each non-`Request` parameter, in order.
    let mut extract = Vec::new();
    let mut values = Vec::new();
    let mut schema = Vec::new();
    for (i, p) in params.iter().enumerate() {
        let value = format_ident!("__wasmhost_arg{i}");
        let (ty, name) = (p.ty, &p.name);
        match p.source {
            Source::Named => {
                extract.push(quote_spanned!(ty.span()=>
                    let #value = __args.named::<#ty>(#name);
                ));
                schema.push(quote_spanned!(ty.span()=> __schema.named::<#ty>(#name);));
            }
            Source::Body => {
                extract.push(quote_spanned!(ty.span()=> let #value = __args.body::<#ty>();));
                schema.push(quote_spanned!(ty.span()=> __schema.body::<#ty>(#name);));
            }
            Source::Request => continue,
        }
        values.push(value);
    }
    // The call's arguments: extracted values, and the request moved into the last
    // `Request` parameter (cloned into any earlier one).
    let last_request = params
        .iter()
        .rposition(|p| matches!(p.source, Source::Request));
    let mut next_value = values.iter();
    let call_args = params.iter().enumerate().map(|(i, p)| match p.source {
        Source::Request if Some(i) == last_request => quote!(__request),
        Source::Request => quote!(::core::clone::Clone::clone(&__request)),
        _ => next_value.next().to_token_stream(),
    });
    let call_args: Vec<_> = call_args.collect();

    let output = match &sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => ty.to_token_stream(),
    };
    let output_span = sig.output.span();
    let result_schema = if mentions_impl(output.clone()) {
        quote!(|| ::core::option::Option::None)
    } else {
        quote_spanned!(output_span=> ::wasmhost::__private::result_schema::<#output>)
    };
    let respond = quote_spanned!(output_span=>
        ::wasmhost::IntoResponse::into_response(#ident(#(#call_args),*))
    );

    Ok(quote! {
        #func

        const _: () = {
            fn __wasmhost_handler(__request: ::wasmhost::Request) -> ::wasmhost::Response {
                let mut __args = ::wasmhost::__private::Args::new(__request);
                #(#extract)*
                match (__args.finish(), #(#values,)*) {
                    (
                        ::core::result::Result::Ok(__request),
                        #(::core::option::Option::Some(#values),)*
                    ) => #respond,
                    (__finished, ..) => ::wasmhost::__private::rejected(__finished),
                }
            }

            fn __wasmhost_args(__schema: &mut ::wasmhost::__private::ArgsSchema) {
                #(#schema)*
            }

            ::wasmhost::__private::inventory::submit! {
                ::wasmhost::__private::Endpoint {
                    app: ::core::env!("CARGO_PKG_NAME"),
                    name: #name,
                    kind: #kind,
                    method: #method,
                    label: #label,
                    docs: #docs,
                    requires_proxy_auth: #requires_proxy_auth,
                    custom_domains: &[#(#custom_domains),*],
                    summary: #summary,
                    timeout_ms: #timeout_ms,
                    memory_mib: #memory_mib,
                    gpu: #gpu,
                    allowed_outbound_hosts: &[#(#outbound),*],
                    scaling: #scaling,
                    args_schema: __wasmhost_args,
                    result_schema: #result_schema,
                    handler: __wasmhost_handler,
                }
            }
        };
    })
}

/// Refuses what neither endpoints nor functions can be: async, unsafe, generic, variadic.
fn check_signature(sig: &Signature, what: &str) -> syn::Result<()> {
    if let Some(asyncness) = &sig.asyncness {
        return Err(syn::Error::new(
            asyncness.span(),
            format!("{what} cannot be `async` yet"),
        ));
    }
    if let Some(unsafety) = &sig.unsafety {
        return Err(syn::Error::new(
            unsafety.span(),
            format!("{what} cannot be `unsafe`"),
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new(
            sig.generics.span(),
            format!("{what} cannot be generic"),
        ));
    }
    if let Some(variadic) = &sig.variadic {
        return Err(syn::Error::new(
            variadic.span(),
            format!("{what} cannot be variadic"),
        ));
    }
    Ok(())
}

/// Reads one parameter's name and source.
fn param(arg: &FnArg) -> syn::Result<Param<'_>> {
    let (pat, ty) = plain_param(arg, "endpoint", "the query or body key")?;
    let source = match last_segment(ty).as_deref() {
        Some("Json") => Source::Body,
        Some("Request") => Source::Request,
        _ => Source::Named,
    };
    Ok(Param {
        name: pat.ident.unraw().to_string(),
        ty,
        source,
    })
}

/// The last path segment of a type such as `wasmhost::Json<T>`.
fn last_segment(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(path) if path.qself.is_none() => {
            path.path.segments.last().map(|s| s.ident.to_string())
        }
        Type::Group(group) => last_segment(&group.elem),
        Type::Paren(paren) => last_segment(&paren.elem),
        _ => None,
    }
}

/// Whether a type mentions `impl Trait`, whose schema cannot be named.
fn mentions_impl(tokens: TokenStream2) -> bool {
    tokens.into_iter().any(|tree| match tree {
        TokenTree::Ident(ident) => ident == "impl",
        TokenTree::Group(group) => mentions_impl(group.stream()),
        _ => false,
    })
}

/// The doc comment, one leading space per line removed, or `None` when empty.
pub(crate) fn summary(func: &ItemFn) -> Option<String> {
    let lines: Vec<String> = func
        .attrs
        .iter()
        .filter(|attr| attr.path().is_ident("doc"))
        .filter_map(|attr| match &attr.meta {
            Meta::NameValue(nv) => match &nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        })
        .flat_map(|doc| {
            doc.split('\n')
                .map(|line| line.strip_prefix(' ').unwrap_or(line).to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    let text = lines.join("\n");
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// `Some(value)` or `None` as tokens.
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

pub(crate) fn option<T: ToTokens>(value: Option<&T>) -> TokenStream2 {
    match value {
        Some(value) => quote!(::core::option::Option::Some(#value)),
        None => quote!(::core::option::Option::None),
    }
}

/// Declares an ASGI-like app: `fn name() -> wasmhost::asgi::App`, built once per instance.
///
/// Keys: `label`, `requires_proxy_auth`, `custom_domains`, `timeout`, `memory`.
#[proc_macro_attribute]
pub fn asgi_app(attr: TokenStream, item: TokenStream) -> TokenStream {
    apps::app_macro(attr, item, "Asgi", quote!(::wasmhost::asgi::App))
}

/// Declares a WSGI-like app: `fn name() -> wasmhost::wsgi::App`, built once per instance.
///
/// Keys: `label`, `requires_proxy_auth`, `custom_domains`, `timeout`, `memory`.
#[proc_macro_attribute]
pub fn wsgi_app(attr: TokenStream, item: TokenStream) -> TokenStream {
    apps::app_macro(attr, item, "Wsgi", quote!(::wasmhost::wsgi::App))
}

/// Turns an `impl` block of a `Default` type into class endpoints: each `#[method(...)]`
/// (same keys as `endpoint`) becomes an endpoint on the instance's one value;
/// `#[enter]` and `#[exit]` methods run once per instance.
#[proc_macro_attribute]
pub fn cls(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = TokenStream2::from(item);
    emit(apps::expand_cls(attr.into(), item.clone()), item)
}

/// Marks pre-initialisation work: `fn name()` or `fn name() -> Result<(), E>` with
/// `E: Display`, run once at deploy and baked into the component's snapshot.
#[proc_macro_attribute]
pub fn init(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = TokenStream2::from(item);
    emit(expand_init(attr.into(), item.clone()), item)
}

fn expand_init(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    if !attr.is_empty() {
        return Err(syn::Error::new(attr.span(), "`init` takes no arguments"));
    }
    let function: ItemFn = syn::parse2(item)?;
    let sig = &function.sig;
    if !sig.inputs.is_empty() || sig.asyncness.is_some() || !sig.generics.params.is_empty() {
        return Err(syn::Error::new(
            sig.span(),
            "an init function takes no arguments: `fn name()` or `fn name() -> Result<(), E>`",
        ));
    }
    let ident = &sig.ident;
    let name = ident.to_string();
    let call = match &sig.output {
        ReturnType::Default => quote!({
            #ident();
            ::core::result::Result::Ok(())
        }),
        ReturnType::Type(..) => quote!(#ident().map_err(|e| e.to_string())),
    };
    Ok(quote! {
        #function

        ::wasmhost::__private::inventory::submit! {
            ::wasmhost::__private::InitHook {
                name: #name,
                run: || -> ::core::result::Result<(), ::std::string::String> { #call },
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::function::{is_schedule, parse_mount};
    use super::*;

    /// Parses a `#[wasmhost::function(...)]` attribute's arguments.
    fn function_config(tokens: TokenStream2) -> syn::Result<FunctionConfig> {
        let mut config = FunctionConfig::default();
        let parser = syn::meta::parser(|meta| config.parse(&meta));
        syn::parse::Parser::parse2(parser, tokens)?;
        Ok(config)
    }

    fn function_error(tokens: TokenStream2) -> String {
        match function_config(tokens) {
            Ok(_) => panic!("expected an error"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn function_keys() {
        let config = function_config(quote!(
            retries = 3,
            timeout = "30s",
            memory = 64,
            schedule = "cron(0 9 * * *, Europe/Paris)",
            secrets = ["a", "b"],
            volumes = ["notes:/data", "c:/var/cache"],
        ))
        .expect("valid keys");
        let retries = config.retries.expect("retries");
        assert_eq!(
            (
                retries.max,
                retries.backoff,
                retries.initial_delay_ms,
                retries.max_delay_ms
            ),
            (3, 2.0, 1000, 60_000)
        );
        assert_eq!(config.timeout_ms, Some(30_000));
        assert_eq!(config.memory_mib, Some(64));
        assert_eq!(
            config.schedule.as_deref(),
            Some("cron(0 9 * * *, Europe/Paris)")
        );
        assert_eq!(config.secrets, Some(vec!["a".into(), "b".into()]));
        assert_eq!(
            config.volumes,
            Some(vec![
                ("notes".into(), "/data".into()),
                ("c".into(), "/var/cache".into())
            ])
        );

        let config = function_config(quote!(retries(
            max = 1,
            backoff = 3,
            initial_delay = "0s",
            max_delay = "2m"
        )))
        .expect("valid retries");
        let retries = config.retries.expect("retries");
        assert_eq!(
            (
                retries.max,
                retries.backoff,
                retries.initial_delay_ms,
                retries.max_delay_ms
            ),
            (1, 3.0, 0, 120_000)
        );
        let config = function_config(quote!(retries(initial_delay = "200ms", max = 3)))
            .expect("valid retries");
        let retries = config.retries.expect("retries");
        assert_eq!((retries.max, retries.initial_delay_ms), (3, 200));
        assert_eq!(retries.max_delay_ms, 60_000);
    }

    #[test]
    fn function_key_errors() {
        assert!(function_error(quote!(retry = 3)).starts_with("unknown key"));
        assert!(function_error(quote!(method = "GET")).starts_with("unknown key"));
        assert!(function_error(quote!(retries(max = 1, factor = 2.0))).starts_with("unknown key"));
        assert!(function_error(quote!(retries(backoff = 2.0))).contains("needs `max"));
        assert!(function_error(quote!(retries(max = 1, backoff = 0.5))).contains("at least 1.0"));
        assert!(function_error(quote!(retries)).starts_with("expected `retries = 3`"));
        assert!(function_error(quote!(timeout = "0s")).contains("positive duration"));
        assert!(function_error(quote!(timeout = "1d")).contains("positive duration"));
        assert!(function_error(quote!(memory = 0)).contains("> 0"));
        assert!(function_error(quote!(schedule = "0 * * * *")).contains("cron(<expression>)"));
        assert!(function_error(quote!(schedule = "cron()")).contains("period(<duration>)"));
        assert!(function_error(quote!(secrets = ["a", "a"])).contains("twice"));
        assert!(function_error(quote!(secrets = [""])).contains("secret's name"));
        assert!(function_error(quote!(volumes = ["data"])).contains("<volume>:"));
        assert!(function_error(quote!(volumes = ["v:data"])).contains("<volume>:"));
        assert!(function_error(quote!(volumes = ["a:/d", "b:/d"])).contains("mounted at"));
        assert!(function_error(quote!(timeout = "1s", timeout = "2s")).contains("twice"));
    }

    #[test]
    fn schedules_and_mounts() {
        assert!(is_schedule("cron(* * * * *)"));
        assert!(is_schedule("period(1s)"));
        assert!(!is_schedule("period()"));
        assert!(!is_schedule("cron(* * * * *"));
        assert!(!is_schedule("every(5m)"));
        assert_eq!(
            parse_mount("notes:/data"),
            Some(("notes".into(), "/data".into()))
        );
        assert_eq!(parse_mount(":/data"), None);
        assert_eq!(parse_mount("a/b:/data"), None);
        assert_eq!(parse_mount("notes:/my data"), None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("0s"), Some(0));
        assert_eq!(parse_duration("500ms"), Some(500));
        assert_eq!(parse_duration("30s"), Some(30_000));
        assert_eq!(parse_duration("2m"), Some(120_000));
        assert_eq!(parse_duration("1h"), Some(3_600_000));
        assert_eq!(parse_duration("0s"), None);
        assert_eq!(parse_duration("30"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("1d"), None);
    }

    #[test]
    fn labels() {
        assert!(is_dns_label("api"));
        assert!(is_dns_label("my-api-2"));
        assert!(!is_dns_label("-api"));
        assert!(!is_dns_label("Api"));
        assert!(!is_dns_label("a_b"));
        assert!(!is_dns_label(""));
    }

    #[test]
    fn sources() {
        let ty: Type = syn::parse_quote!(wasmhost::Json<Vec<u8>>);
        assert_eq!(last_segment(&ty).as_deref(), Some("Json"));
        let ty: Type = syn::parse_quote!(Option<String>);
        assert_eq!(last_segment(&ty).as_deref(), Some("Option"));
        assert!(mentions_impl(quote!(Result<impl Display, String>)));
        assert!(!mentions_impl(quote!(Json<Implement>)));
    }
}
