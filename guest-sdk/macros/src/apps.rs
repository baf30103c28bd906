//! `asgi_app`, `wsgi_app` and `cls`: registrations of apps and class methods.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::{ToTokens, format_ident, quote};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, Meta, Pat};

use crate::{Config, option, summary};

pub(crate) fn app_macro(
    attr: TokenStream,
    item: TokenStream,
    kind: &str,
    app: TokenStream2,
) -> TokenStream {
    let mut config = Config::default();
    let parser = syn::meta::parser(|meta| config.parse(&meta));
    let attr_result = syn::parse::Parser::parse(parser, attr);
    let item = TokenStream2::from(item);
    let func = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(func) => func,
        Err(err) => return err.to_compile_error().into(),
    };
    let checked = attr_result.and_then(|()| {
        if config.method.is_some() || config.docs.is_some() {
            return Err(syn::Error::new(
                func.sig.ident.span(),
                "an app routes every method itself and has no generated docs: \
                 `method` and `docs` do not apply",
            ));
        }
        if !func.sig.inputs.is_empty() || func.sig.asyncness.is_some() {
            return Err(syn::Error::new(
                func.sig.inputs.span(),
                "an app factory takes no arguments and is not async",
            ));
        }
        Ok(())
    });
    if let Err(err) = checked {
        return crate::emit(Err(err), item);
    }
    let ident = &func.sig.ident;
    let name = ident.unraw().to_string();
    let kind = format_ident!("{kind}");
    let label = option(config.label.as_ref());
    let requires_proxy_auth = config.requires_proxy_auth.unwrap_or(false);
    let custom_domains = config.custom_domains.as_deref().unwrap_or_default();
    let summary = option(summary(&func).as_ref());
    let timeout_ms = option(config.timeout_ms.as_ref());
    let memory_mib = option(config.memory_mib.as_ref());
    let outbound = config.allowed_outbound_hosts.as_deref().unwrap_or_default();
    let scaling = config.scaling_tokens();
    quote! {
        #func

        const _: () = {
            fn __wasmhost_factory() -> #app {
                #ident()
            }

            fn __wasmhost_not_a_function(_: ::wasmhost::Request) -> ::wasmhost::Response {
                ::wasmhost::Response::error(404, "this endpoint is an app, not a function")
            }

            ::wasmhost::__private::inventory::submit! {
                ::wasmhost::__private::Endpoint {
                    app: ::core::env!("CARGO_PKG_NAME"),
                    name: #name,
                    kind: ::wasmhost::__private::Kind::#kind(__wasmhost_factory),
                    method: "*",
                    label: #label,
                    docs: false,
                    requires_proxy_auth: #requires_proxy_auth,
                    custom_domains: &[#(#custom_domains),*],
                    summary: #summary,
                    timeout_ms: #timeout_ms,
                    memory_mib: #memory_mib,
                    gpu: ::core::option::Option::None,
                    allowed_outbound_hosts: &[#(#outbound),*],
                    scaling: #scaling,
                    args_schema: |_| {},
                    result_schema: || ::core::option::Option::None,
                    handler: __wasmhost_not_a_function,
                    async_handler: ::core::option::Option::None,
                    batching: ::core::option::Option::None,
                }
            }
        };
    }
    .into()
}

pub(crate) fn expand_cls(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    if !attr.is_empty() {
        return Err(syn::Error::new(attr.span(), "`cls` takes no keys"));
    }
    let mut block = syn::parse2::<syn::ItemImpl>(item)?;
    if block.trait_.is_some() || !block.generics.params.is_empty() {
        return Err(syn::Error::new(
            block.self_ty.span(),
            "`cls` goes on an inherent `impl` of a non-generic type",
        ));
    }
    let self_ty = block.self_ty.clone();
    let class_name = self_ty.to_token_stream().to_string().replace(' ', "");
    // One cell per class, so several classes can live in one module.
    let cell = format_ident!(
        "__WASMHOST_CLASS_{}",
        class_name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            })
            .collect::<String>()
    );
    let mut enter = None;
    let mut exit = None;
    let mut wrappers = Vec::new();
    for item in &mut block.items {
        let syn::ImplItem::Fn(method) = item else {
            continue;
        };
        let mut role = None;
        let mut kept = Vec::new();
        for attr in std::mem::take(&mut method.attrs) {
            let path = attr.path();
            if path.is_ident("enter") || path.is_ident("exit") || path.is_ident("method") {
                role = Some(attr);
            } else {
                kept.push(attr);
            }
        }
        method.attrs = kept;
        let Some(role) = role else { continue };
        let ident = method.sig.ident.clone();
        let takes_self =
            matches!(method.sig.inputs.first(), Some(FnArg::Receiver(r)) if r.reference.is_some());
        if !takes_self {
            return Err(syn::Error::new(
                method.sig.span(),
                "class methods take `&self` or `&mut self`",
            ));
        }
        if role.path().is_ident("enter") {
            enter = Some(ident);
        } else if role.path().is_ident("exit") {
            exit = Some(ident);
        } else {
            let keys = match &role.meta {
                Meta::List(list) => list.tokens.clone(),
                _ => TokenStream2::new(),
            };
            let name = ident.unraw().to_string();
            let wrapper = format_ident!("__wasmhost_cls_{}", ident.unraw());
            let docs: Vec<_> = method
                .attrs
                .iter()
                .filter(|a| a.path().is_ident("doc"))
                .collect();
            let params: Vec<_> = method.sig.inputs.iter().skip(1).collect();
            let mut names = Vec::new();
            for p in &params {
                let FnArg::Typed(typed) = p else { continue };
                let Pat::Ident(pat) = &*typed.pat else {
                    return Err(syn::Error::new(
                        typed.pat.span(),
                        "method parameters must be plain names",
                    ));
                };
                names.push(pat.ident.clone());
            }
            let output = &method.sig.output;
            let comma = if keys.is_empty() { quote!() } else { quote!(,) };
            wrappers.push(quote! {
                #(#docs)*
                #[::wasmhost::endpoint(#keys #comma __name = #name, __class_method = true)]
                #[allow(non_snake_case)]
                fn #wrapper(#(#params),*) #output {
                    #cell.with(|__this: &mut #self_ty| __this.#ident(#(#names),*))
                }
            });
        }
    }
    let run_enter = enter.map(|m| quote!(#cell.with(|__this: &mut #self_ty| { __this.#m(); });));
    let run_exit = exit.map(|m| quote!(#cell.with(|__this: &mut #self_ty| { __this.#m(); });));
    Ok(quote! {
        #block

        static #cell: ::wasmhost::__private::ClassCell<#self_ty> =
            ::wasmhost::__private::ClassCell::new();

        #(#wrappers)*

        const _: () = {
            fn __wasmhost_enter() -> ::core::result::Result<(), ::std::string::String> {
                #cell.reset();
                #run_enter
                ::core::result::Result::Ok(())
            }

            fn __wasmhost_exit() {
                #run_exit
            }

            ::wasmhost::__private::inventory::submit! {
                ::wasmhost::__private::ClassHooks {
                    class: #class_name,
                    enter: __wasmhost_enter,
                    exit: __wasmhost_exit,
                }
            }
        };
    })
}
