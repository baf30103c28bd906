//! Attribute macros of the wasmhost guest SDK; use them through `wasmhost::endpoint` and
//! `wasmhost::function`.

mod apps;
mod batched;
mod capabilities;
mod endpoint;
mod function;
mod init;
mod keys;
#[cfg(test)]
mod tests;

use endpoint::*;
use function::{FunctionConfig, expand_function};
use init::expand_init;
use keys::*;

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
/// `buffer_containers`, `scaledown_window = "60s"`, `isolation = "per-request"`;
/// `batched(max_batch_size = 8, wait_ms = 50)` (every query/body parameter a `Vec`, one
/// `IntoResponse` result per request).
/// The function's doc comment becomes the endpoint's summary. An `async fn` may await
/// I/O while the instance takes other requests (the SDK's `async` feature).
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

/// Declares a callable function: registers it with its configuration, input mapping and
/// JSON schemas so the component runs it.
///
/// Keys: `retries = 3` or `retries(max = 3, backoff = 2.0, initial_delay = "1s",
/// max_delay = "60s")`, `timeout = "30s"`, `memory = 64` (MiB),
/// `schedule = "cron(0 * * * *)"` / `"cron(0 9 * * *, Europe/Paris)"` / `"period(5m)"`,
/// `secrets = ["name"]`, `volumes = ["volume:/mount/path"]`, `gpu = "any"`,
/// `allowed_outbound_hosts = ["https://api.example.com"]`,
/// `batched(max_batch_size = 8, wait_ms = 50)` (every parameter a `Vec`, one result per
/// call). The function's doc comment becomes its summary; it may be an `async fn`.
#[proc_macro_attribute]
pub fn function(attr: TokenStream, item: TokenStream) -> TokenStream {
    attribute(attr, item, FunctionConfig::parse, expand_function)
}

/// Declares an ASGI-like app: `fn name() -> wasmhost::asgi::App`, built once per instance.
///
/// Keys: `label`, `requires_proxy_auth`, `custom_domains`, `timeout`, `memory`.
#[proc_macro_attribute]
pub fn asgi_app(attr: TokenStream, item: TokenStream) -> TokenStream {
    needs_apps(
        apps::app_macro(attr, item, "Asgi", quote!(::wasmhost::asgi::App)),
        "asgi_app",
    )
}

/// Declares a WSGI-like app: `fn name() -> wasmhost::wsgi::App`, built once per instance.
///
/// Keys: `label`, `requires_proxy_auth`, `custom_domains`, `timeout`, `memory`.
#[proc_macro_attribute]
pub fn wsgi_app(attr: TokenStream, item: TokenStream) -> TokenStream {
    needs_apps(
        apps::app_macro(attr, item, "Wsgi", quote!(::wasmhost::wsgi::App)),
        "wsgi_app",
    )
}

/// Turns an `impl` block of a `Default` type into class endpoints: each `#[method(...)]`
/// (same keys as `endpoint`) becomes an endpoint on the instance's one value;
/// `#[enter]` and `#[exit]` methods run once per instance.
#[proc_macro_attribute]
pub fn cls(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = TokenStream2::from(item);
    needs_apps(
        emit(apps::expand_cls(attr.into(), item.clone()), item),
        "cls",
    )
}

/// Appends the check that the SDK was built with its `apps` feature, whose exports serve
/// apps and class endpoints; without it the crate fails to compile with a clear message
/// instead of deploying a component that cannot serve them.
fn needs_apps(expanded: TokenStream, what: &str) -> TokenStream {
    let mut expanded = TokenStream2::from(expanded);
    expanded.extend(quote!(::wasmhost::__requires_apps!(#what);));
    expanded.into()
}

/// Marks pre-initialisation work: `fn name()` or `fn name() -> Result<(), E>` with
/// `E: Display`, run once at deploy and baked into the component's snapshot.
#[proc_macro_attribute]
pub fn init(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = TokenStream2::from(item);
    emit(expand_init(attr.into(), item.clone()), item)
}
