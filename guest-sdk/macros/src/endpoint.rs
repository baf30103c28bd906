//! `#[wasmhost::endpoint]`: its expansion into a registered handler with argument
//! extraction and schemas, and the signature checks functions share.

use super::*;

/// A parameter that must be a plain name taken by value (`what` names the kind of
/// function, `key` says what the name is used as); returns its pattern and type.
pub(crate) fn plain_param<'a>(
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

/// How a parameter gets its value.
pub(crate) enum Source {
    /// By name, from the query string or the body's fields.
    Named,
    /// The whole JSON body (`Json<T>`).
    Body,
    /// The whole request (`Request`).
    Request,
}

/// One parameter of the function.
pub(crate) struct Param<'a> {
    pub(crate) name: String,
    pub(crate) ty: &'a Type,
    pub(crate) source: Source,
}

/// The function, unchanged, plus its handler, schemas and registration.
pub(crate) fn expand(config: &Config, func: &ItemFn) -> syn::Result<TokenStream2> {
    let sig = &func.sig;
    check_signature(sig, "endpoints")?;
    if let (Some(asyncness), Some(true)) = (&sig.asyncness, config.class_method) {
        return Err(syn::Error::new(
            asyncness.span(),
            "class methods cannot be `async` yet: their instance serves one call at a time",
        ));
    }

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
    let awaited = sig.asyncness.map(|_| quote!(.await));
    let respond = quote_spanned!(output_span=>
        ::wasmhost::IntoResponse::into_response(#ident(#(#call_args),*) #awaited)
    );
    let plain = crate::function::Expansion {
        body: plain_body(&extract, &values, &respond),
        schema,
        result_schema,
    };
    let (expansion, batching) = crate::batched::endpoint_expansion(config, sig, &params, plain)?;
    let crate::function::Expansion {
        body,
        schema,
        result_schema,
    } = expansion;
    // An `async fn` is boxed into a future for the async export; the synchronous export
    // blocks on it.
    let (handlers, async_handler) = match sig.asyncness {
        None => (
            quote! {
                fn __wasmhost_handler(__request: ::wasmhost::Request) -> ::wasmhost::Response {
                    #body
                }
            },
            quote!(::core::option::Option::None),
        ),
        Some(_) => (
            quote! {
                fn __wasmhost_async(
                    __request: ::wasmhost::Request,
                ) -> ::wasmhost::__private::BoxFuture<::wasmhost::Response> {
                    ::std::boxed::Box::pin(async move { #body })
                }

                fn __wasmhost_handler(__request: ::wasmhost::Request) -> ::wasmhost::Response {
                    ::wasmhost::block_on(__wasmhost_async(__request))
                }
            },
            quote!(::core::option::Option::Some(__wasmhost_async)),
        ),
    };

    Ok(quote! {
        #func

        const _: () = {
            #handlers

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
                    async_handler: #async_handler,
                    batching: #batching,
                }
            }
        };
    })
}

/// The handler's body of a plain endpoint: extracts the arguments, calls the function
/// and turns its result into the response (or answers the 422).
fn plain_body(
    extract: &[TokenStream2],
    values: &[syn::Ident],
    respond: &TokenStream2,
) -> TokenStream2 {
    quote! {
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
}

/// Refuses what neither endpoints nor functions can be: unsafe, generic, variadic.
pub(crate) fn check_signature(sig: &Signature, what: &str) -> syn::Result<()> {
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
pub(crate) fn param(arg: &FnArg) -> syn::Result<Param<'_>> {
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
pub(crate) fn last_segment(ty: &Type) -> Option<String> {
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
pub(crate) fn mentions_impl(tokens: TokenStream2) -> bool {
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
