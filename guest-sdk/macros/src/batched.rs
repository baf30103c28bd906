//! `#[wasmhost::function(batched(max_batch_size = 8, wait_ms = 50))]` (Modal's
//! `@batched`): every parameter is a `Vec` of what one call passes, and the function
//! returns one result per call: `Vec<T>`, `Vec<Result<T, E>>` (an `Err` fails only its
//! call) or `Result<Vec<T>, E>` (an `Err` fails the whole batch).
//!
//! `#[wasmhost::endpoint(batched(...))]` is the same for a typed endpoint: every
//! parameter taken from the query or body is a `Vec`, and the function returns `Vec<R>`
//! with one `R: IntoResponse` per request (`Result<T, E>` answers each with its own
//! status).

use super::function::Expansion;
use super::*;

/// The largest batch (Modal's limit).
const MAX_BATCH_SIZE: u32 = 1000;

/// `batched(max_batch_size = N, wait_ms = M)`, both required.
pub(crate) fn parse_batched(meta: &ParseNestedMeta) -> syn::Result<(u32, u64)> {
    if !meta.input.peek(syn::token::Paren) {
        return Err(meta.error("expected `batched(max_batch_size = 8, wait_ms = 50)`"));
    }
    let (mut size, mut wait) = (None, None);
    meta.parse_nested_meta(|inner| {
        let key = key_name(&inner);
        let duplicate = || inner.error(format!("`{key}` is given twice"));
        match key.as_str() {
            "max_batch_size" => {
                let lit: LitInt = inner.value()?.parse()?;
                let n = lit.base10_parse::<u32>()?;
                if n == 0 || n > MAX_BATCH_SIZE {
                    return Err(syn::Error::new(
                        lit.span(),
                        format!("max_batch_size must be 1 to {MAX_BATCH_SIZE}"),
                    ));
                }
                set(&mut size, n, duplicate)
            }
            "wait_ms" => {
                let lit: LitInt = inner.value()?.parse()?;
                set(&mut wait, lit.base10_parse::<u64>()?, duplicate)
            }
            _ => Err(inner.error("unknown key; expected `max_batch_size` or `wait_ms`")),
        }
    })?;
    match (size, wait) {
        (Some(size), Some(wait)) => Ok((size, wait)),
        _ => Err(meta.error("`batched(...)` needs both `max_batch_size = N` and `wait_ms = M`")),
    }
}

/// How the function's result maps onto its calls.
enum Results<'a> {
    /// `Vec<T>`: one value per call.
    Values(&'a Type),
    /// `Vec<Result<T, E>>`: one outcome per call.
    PerCall(&'a Type),
    /// `Result<Vec<T>, E>`: the whole batch succeeds or fails.
    Whole(&'a Type),
}

/// The first generic argument of a type such as `Vec<T>` whose last segment is `outer`.
fn generic_of<'a>(ty: &'a Type, outer: &str) -> Option<&'a Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != outer {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    args.args.iter().find_map(|a| match a {
        syn::GenericArgument::Type(t) => Some(t),
        _ => None,
    })
}

fn results(sig: &Signature) -> syn::Result<Results<'_>> {
    let wrong = || {
        syn::Error::new(
            sig.output.span(),
            "a batched function returns one result per call: `Vec<T>`, \
             `Vec<Result<T, E>>` or `Result<Vec<T>, E>`",
        )
    };
    let ReturnType::Type(_, ty) = &sig.output else {
        return Err(wrong());
    };
    if let Some(item) = generic_of(ty, "Vec") {
        return Ok(match generic_of(item, "Result") {
            Some(ok) => Results::PerCall(ok),
            None => Results::Values(item),
        });
    }
    let ok = generic_of(ty, "Result").ok_or_else(wrong)?;
    generic_of(ok, "Vec").map(Results::Whole).ok_or_else(wrong)
}

/// The handler's body: reads each call of `{"batch": [...]}`, calls the function once
/// with a list per parameter, and answers each call.
pub(crate) fn expand_batched(
    sig: &Signature,
    params: &[(String, &Type)],
    names: &[&str],
) -> syn::Result<Expansion> {
    let ident = &sig.ident;
    if params.is_empty() {
        return Err(syn::Error::new(
            sig.ident.span(),
            "a batched function takes at least one `Vec` parameter",
        ));
    }
    let mut items = Vec::new();
    for (name, ty) in params {
        let item = generic_of(ty, "Vec").ok_or_else(|| {
            syn::Error::new(
                ty.span(),
                format!("a batched function's parameters are `Vec`s: `{name}: Vec<T>` gets one T per call"),
            )
        })?;
        items.push((name, item));
    }
    let results = results(sig)?;
    let (result_item, finish) = match results {
        Results::Values(t) => (t, quote!(finish_values)),
        Results::PerCall(t) => (t, quote!(finish)),
        Results::Whole(t) => (t, quote!(finish_batch)),
    };
    let result_schema = if mentions_impl(result_item.to_token_stream()) {
        quote!(|| ::core::option::Option::None)
    } else {
        quote_spanned!(result_item.span()=> ::wasmhost::__private::output_schema::<#result_item>)
    };
    let mut lists = Vec::new();
    let mut declare = Vec::new();
    let mut extract = Vec::new();
    let mut values = Vec::new();
    let mut schema = Vec::new();
    for (i, (name, item)) in items.iter().enumerate() {
        let list = format_ident!("__wasmhost_list{i}");
        let value = format_ident!("__wasmhost_arg{i}");
        declare.push(quote_spanned!(item.span()=>
            let mut #list: ::std::vec::Vec<#item> = ::std::vec::Vec::new();
        ));
        extract.push(quote_spanned!(item.span()=>
            let #value = __input.param::<#item>(#i);
        ));
        schema.push(quote_spanned!(item.span()=> __schema.named::<#item>(#name);));
        lists.push(list);
        values.push(value);
    }
    let awaited = sig.asyncness.map(|_| quote!(.await));
    let body = quote! {
        let __items = ::wasmhost::__private::batch_inputs(__input)?;
        let mut __outcomes = ::wasmhost::__private::BatchOutcomes::new(__items.len());
        #(#declare)*
        for (__index, __item) in __items.iter().enumerate() {
            let mut __input = ::wasmhost::__private::Input::new(__item, &[#(#names),*]);
            #(#extract)*
            match (__input.finish(), #(#values,)*) {
                (
                    ::core::result::Result::Ok(()),
                    #(::core::option::Option::Some(#values),)*
                ) => {
                    __outcomes.accept(__index);
                    #(#lists.push(#values);)*
                }
                (__finished, ..) => __outcomes.reject(
                    __index,
                    ::wasmhost::__private::input_rejected(__finished),
                ),
            }
        }
        if __outcomes.accepted() == 0 {
            return __outcomes.finish_values(::std::vec::Vec::<()>::new());
        }
        __outcomes.#finish(#ident(#(#lists),*) #awaited)
    };
    Ok(Expansion {
        body,
        schema,
        result_schema,
    })
}

/// The expansion of an endpoint, batched when `config` says so (else `plain`), and its
/// registered `batching`.
pub(crate) fn endpoint_expansion(
    config: &crate::Config,
    sig: &Signature,
    params: &[crate::endpoint::Param<'_>],
    plain: Expansion,
) -> syn::Result<(Expansion, TokenStream2)> {
    let Some((max_batch_size, wait_ms)) = config.batched else {
        return Ok((plain, quote!(::core::option::Option::None)));
    };
    if config.class_method == Some(true) {
        return Err(syn::Error::new(
            sig.ident.span(),
            "class methods cannot be batched yet; batch a free `#[wasmhost::endpoint]`",
        ));
    }
    let batching = quote!(::core::option::Option::Some(::wasmhost::__private::Batching {
        max_batch_size: #max_batch_size,
        wait_ms: #wait_ms,
    }));
    Ok((expand_batched_endpoint(sig, params)?, batching))
}

/// The handler's body of a batched endpoint: reads each request of `{"batch": [...]}`
/// (a bad one gets its own 422), calls the function once with a list per parameter,
/// and answers every request.
fn expand_batched_endpoint(
    sig: &Signature,
    params: &[crate::endpoint::Param<'_>],
) -> syn::Result<Expansion> {
    use crate::endpoint::Source;
    let ident = &sig.ident;
    if params.is_empty() {
        return Err(syn::Error::new(
            sig.ident.span(),
            "a batched endpoint takes at least one `Vec` parameter",
        ));
    }
    let wrong_result = || {
        syn::Error::new(
            sig.output.span(),
            "a batched endpoint returns one result per request: `Vec<R>` with \
             `R: IntoResponse` (e.g. `Vec<Json<T>>` or `Vec<Result<Json<T>, (u16, String)>>`)",
        )
    };
    let ReturnType::Type(_, output) = &sig.output else {
        return Err(wrong_result());
    };
    let result_item = generic_of(output, "Vec").ok_or_else(wrong_result)?;
    let result_schema = if mentions_impl(result_item.to_token_stream()) {
        quote!(|| ::core::option::Option::None)
    } else {
        quote_spanned!(result_item.span()=> ::wasmhost::__private::result_schema::<#result_item>)
    };
    let (mut lists, mut declare, mut extract, mut values, mut schema) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut bodies = params
        .iter()
        .filter_map(|p| generic_of(p.ty, "Vec"))
        .filter(|item| crate::endpoint::last_segment(item).as_deref() == Some("Json"));
    if let Some(second) = bodies.nth(1) {
        return Err(syn::Error::new(
            second.span(),
            "only one `Vec<Json<T>>` parameter can receive the bodies",
        ));
    }
    for (i, p) in params.iter().enumerate() {
        let (name, ty) = (&p.name, p.ty);
        let item = generic_of(ty, "Vec").ok_or_else(|| {
            syn::Error::new(
                ty.span(),
                format!("a batched endpoint's parameters are `Vec`s: `{name}: Vec<T>` gets one T per request"),
            )
        })?;
        let list = format_ident!("__wasmhost_list{i}");
        let value = format_ident!("__wasmhost_arg{i}");
        declare.push(quote_spanned!(item.span()=>
            let mut #list: ::std::vec::Vec<#item> = ::std::vec::Vec::new();
        ));
        // Where a request's value comes from is read off the list's item type.
        let source = match crate::endpoint::last_segment(item).as_deref() {
            Some("Json") => Source::Body,
            Some("Request") => Source::Request,
            _ => Source::Named,
        };
        match source {
            Source::Named => {
                extract
                    .push(quote_spanned!(item.span()=> let #value = __args.named::<#item>(#name);));
                schema.push(quote_spanned!(item.span()=> __schema.named::<#item>(#name);));
            }
            Source::Body => {
                extract.push(quote_spanned!(item.span()=> let #value = __args.body::<#item>();));
                schema.push(quote_spanned!(item.span()=> __schema.body::<#item>(#name);));
            }
            Source::Request => {
                return Err(syn::Error::new(
                    ty.span(),
                    "a batched endpoint takes `Vec`s of query or body values, not requests",
                ));
            }
        }
        lists.push(list);
        values.push(value);
    }
    let awaited = sig.asyncness.map(|_| quote!(.await));
    let body = quote! {
        let __requests = match ::wasmhost::__private::batch_requests(&__request) {
            ::core::result::Result::Ok(__requests) => __requests,
            ::core::result::Result::Err(__response) => return __response,
        };
        let mut __responses = ::wasmhost::__private::BatchResponses::new(__requests.len());
        #(#declare)*
        for (__index, __request) in __requests.into_iter().enumerate() {
            let mut __args = ::wasmhost::__private::Args::new(__request);
            #(#extract)*
            match (__args.finish(), #(#values,)*) {
                (
                    ::core::result::Result::Ok(_),
                    #(::core::option::Option::Some(#values),)*
                ) => {
                    __responses.accept(__index);
                    #(#lists.push(#values);)*
                }
                (__finished, ..) => __responses.reject(
                    __index,
                    ::wasmhost::__private::rejected(__finished),
                ),
            }
        }
        if __responses.accepted() == 0 {
            return __responses.finish(::std::vec::Vec::<::wasmhost::Response>::new());
        }
        __responses.finish(#ident(#(#lists),*) #awaited)
    };
    Ok(Expansion {
        body,
        schema,
        result_schema,
    })
}
