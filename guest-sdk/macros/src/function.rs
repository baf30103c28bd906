//! `#[wasmhost::function]`: its attribute keys (retries, timeout, memory, schedule,
//! secrets, volumes, gpu, allowed_outbound_hosts, batched) and its expansion into a registered, JSON-in/JSON-out
//! function (see `batched.rs` for batched ones).

use super::*;

/// A retry policy: `max` retries and Modal's defaults for the rest.
pub(crate) struct Retries {
    pub(crate) max: u32,
    pub(crate) backoff: f64,
    pub(crate) initial_delay_ms: u64,
    pub(crate) max_delay_ms: u64,
}

impl Retries {
    /// `max` retries with backoff 2.0, first delay 1 s, at most 60 s.
    fn new(max: u32) -> Self {
        Self {
            max,
            backoff: 2.0,
            initial_delay_ms: 1_000,
            max_delay_ms: 60_000,
        }
    }
}

/// The keys of `#[wasmhost::function]`.
#[derive(Default)]
pub(crate) struct FunctionConfig {
    pub(crate) retries: Option<Retries>,
    pub(crate) timeout_ms: Option<u64>,
    pub(crate) memory_mib: Option<u32>,
    pub(crate) schedule: Option<String>,
    pub(crate) secrets: Option<Vec<String>>,
    pub(crate) volumes: Option<Vec<(String, String)>>,
    /// `batched(max_batch_size = N, wait_ms = M)`.
    pub(crate) batched: Option<(u32, u64)>,
    pub(crate) gpu: Option<String>,
    pub(crate) allowed_outbound_hosts: Option<Vec<String>>,
}

impl FunctionConfig {
    /// Parses one `key = value` or `retries(...)`.
    pub(crate) fn parse(&mut self, meta: &ParseNestedMeta) -> syn::Result<()> {
        let key = key_name(meta);
        let duplicate = || meta.error(format!("`{key}` is given twice"));
        match key.as_str() {
            "retries" => {
                let retries = parse_retries(meta)?;
                set(&mut self.retries, retries, duplicate)
            }
            "timeout" => {
                let ms = duration(meta, false)?;
                set(&mut self.timeout_ms, ms, duplicate)
            }
            "memory" => {
                let mib = memory_mib(meta)?;
                set(&mut self.memory_mib, mib, duplicate)
            }
            "schedule" => {
                let lit: LitStr = meta.value()?.parse()?;
                let schedule = lit.value().trim().to_owned();
                if !is_schedule(&schedule) {
                    return Err(syn::Error::new(
                        lit.span(),
                        "expected \"cron(<expression>)\", \"cron(<expression>, <time zone>)\" \
                         or \"period(<duration>)\"",
                    ));
                }
                set(&mut self.schedule, schedule, duplicate)
            }
            "secrets" => {
                let mut secrets: Vec<String> = Vec::new();
                for lit in string_list(meta)? {
                    let secret = lit.value();
                    if secret.trim().is_empty() || secret.trim() != secret {
                        return Err(syn::Error::new(lit.span(), "expected a secret's name"));
                    }
                    if secrets.contains(&secret) {
                        return Err(syn::Error::new(lit.span(), "this secret is listed twice"));
                    }
                    secrets.push(secret);
                }
                set(&mut self.secrets, secrets, duplicate)
            }
            "volumes" => {
                let mut volumes: Vec<(String, String)> = Vec::new();
                for lit in string_list(meta)? {
                    let Some((volume, path)) = parse_mount(&lit.value()) else {
                        return Err(syn::Error::new(
                            lit.span(),
                            "expected \"<volume>:<absolute mount path>\", e.g. \"notes:/data\"",
                        ));
                    };
                    if volumes.iter().any(|(_, p)| *p == path) {
                        return Err(syn::Error::new(
                            lit.span(),
                            "another volume is mounted at this path",
                        ));
                    }
                    volumes.push((volume, path));
                }
                set(&mut self.volumes, volumes, duplicate)
            }
            "gpu" => {
                let gpu = crate::capabilities::parse_gpu(meta)?;
                set(&mut self.gpu, gpu, duplicate)
            }
            "allowed_outbound_hosts" => {
                let hosts = crate::capabilities::parse_hosts(meta)?;
                set(&mut self.allowed_outbound_hosts, hosts, duplicate)
            }
            "batched" => {
                let batched = crate::batched::parse_batched(meta)?;
                set(&mut self.batched, batched, duplicate)
            }
            _ => Err(meta.error(
                "unknown key; expected `retries`, `timeout`, `memory`, `schedule`, `secrets`, \
                 `volumes`, `gpu`, `allowed_outbound_hosts` or `batched`",
            )),
        }
    }
}

/// `retries = N` or `retries(max = N, backoff = F, initial_delay = "..", max_delay = "..")`.
fn parse_retries(meta: &ParseNestedMeta) -> syn::Result<Retries> {
    if meta.input.peek(Token![=]) {
        let lit: LitInt = meta.value()?.parse()?;
        return Ok(Retries::new(lit.base10_parse::<u32>()?));
    }
    if !meta.input.peek(syn::token::Paren) {
        return Err(meta.error(
            "expected `retries = 3` or `retries(max = 3, backoff = 2.0, \
             initial_delay = \"1s\", max_delay = \"60s\")`",
        ));
    }
    let (mut max, mut backoff, mut initial, mut max_delay) = (None, None, None, None);
    meta.parse_nested_meta(|inner| {
        let key = key_name(&inner);
        let duplicate = || inner.error(format!("`{key}` is given twice"));
        match key.as_str() {
            "max" => {
                let lit: LitInt = inner.value()?.parse()?;
                set(&mut max, lit.base10_parse::<u32>()?, duplicate)
            }
            "backoff" => {
                let lit: Lit = inner.value()?.parse()?;
                let value = match &lit {
                    Lit::Float(f) => f.base10_parse::<f64>()?,
                    Lit::Int(i) => i.base10_parse::<f64>()?,
                    _ => return Err(syn::Error::new(lit.span(), "expected a number such as 2.0")),
                };
                if !(value.is_finite() && value >= 1.0) {
                    return Err(syn::Error::new(lit.span(), "backoff must be at least 1.0"));
                }
                set(&mut backoff, value, duplicate)
            }
            "initial_delay" => {
                let ms = duration(&inner, true)?;
                set(&mut initial, ms, duplicate)
            }
            "max_delay" => {
                let ms = duration(&inner, false)?;
                set(&mut max_delay, ms, duplicate)
            }
            _ => Err(inner
                .error("unknown key; expected `max`, `backoff`, `initial_delay` or `max_delay`")),
        }
    })?;
    let Some(max) = max else {
        return Err(meta.error("`retries(...)` needs `max = <retries after the first attempt>`"));
    };
    let mut retries = Retries::new(max);
    retries.backoff = backoff.unwrap_or(retries.backoff);
    retries.initial_delay_ms = initial.unwrap_or(retries.initial_delay_ms);
    retries.max_delay_ms = max_delay.unwrap_or(retries.max_delay_ms);
    Ok(retries)
}

/// Whether `text` has the shape of a schedule: `cron(...)` or `period(...)`, not empty.
pub(crate) fn is_schedule(text: &str) -> bool {
    ["cron(", "period("].iter().any(|prefix| {
        text.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(')'))
            .is_some_and(|inner| !inner.trim().is_empty())
    })
}

/// `volume:/path` as `(volume, path)`: a name without `/` or `:` and an absolute path.
pub(crate) fn parse_mount(text: &str) -> Option<(String, String)> {
    let (volume, path) = text.split_once(':')?;
    let volume_ok = !volume.is_empty()
        && !volume
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '/' | ':'));
    let path_ok = path.starts_with('/') && !path.chars().any(char::is_whitespace);
    (volume_ok && path_ok).then(|| (volume.to_owned(), path.to_owned()))
}

/// The function, unchanged, plus its input mapping, schemas and registration.
pub(crate) fn expand_function(config: &FunctionConfig, func: &ItemFn) -> syn::Result<TokenStream2> {
    let sig = &func.sig;
    check_signature(sig, "functions")?;
    let params = sig
        .inputs
        .iter()
        .map(function_param)
        .collect::<syn::Result<Vec<_>>>()?;

    let ident = &sig.ident;
    let name = ident.unraw().to_string();
    let summary = option(summary(func).as_ref());
    let timeout_ms = option(config.timeout_ms.as_ref());
    let memory_mib = option(config.memory_mib.as_ref());
    let schedule = option(config.schedule.as_ref());
    let secrets = config.secrets.as_deref().unwrap_or_default();
    let gpu = option(config.gpu.as_ref());
    let outbound = config.allowed_outbound_hosts.as_deref().unwrap_or_default();
    let (volumes, mounts): (Vec<_>, Vec<_>) = config
        .volumes
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|(v, p)| (v, p))
        .unzip();
    let retries = match &config.retries {
        Some(r) => {
            let (max, backoff, initial, max_delay) =
                (r.max, r.backoff, r.initial_delay_ms, r.max_delay_ms);
            quote!(::core::option::Option::Some(::wasmhost::RetryPolicy {
                max_retries: #max,
                backoff_coefficient: #backoff,
                initial_delay_ms: #initial,
                max_delay_ms: #max_delay,
            }))
        }
        None => quote!(::core::option::Option::None),
    };

    let names: Vec<&str> = params.iter().map(|(name, _)| name.as_str()).collect();
    let awaited = sig.asyncness.map(|_| quote!(.await));
    let Expansion {
        body,
        schema,
        result_schema,
    } = match config.batched {
        Some(_) => crate::batched::expand_batched(sig, &params, &names)?,
        None => plain(sig, &params, &names, awaited),
    };
    let batching = match config.batched {
        Some((max_batch_size, wait_ms)) => quote!(::core::option::Option::Some(
            ::wasmhost::__private::Batching { max_batch_size: #max_batch_size, wait_ms: #wait_ms }
        )),
        None => quote!(::core::option::Option::None),
    };
    // An `async fn` is boxed into a future for the async export; the synchronous export
    // blocks on it.
    let (handlers, async_handler) = match sig.asyncness {
        None => (
            quote! {
                #[allow(unused_mut)]
                fn __wasmhost_call(
                    __input: &str,
                ) -> ::core::result::Result<::std::string::String, ::wasmhost::CallError> {
                    #body
                }
            },
            quote!(::core::option::Option::None),
        ),
        Some(_) => (
            quote! {
                #[allow(unused_mut)]
                fn __wasmhost_async(
                    __input: ::std::string::String,
                ) -> ::wasmhost::__private::BoxFuture<
                    ::core::result::Result<::std::string::String, ::wasmhost::CallError>,
                > {
                    ::std::boxed::Box::pin(async move {
                        let __input: &str = &__input;
                        #body
                    })
                }

                fn __wasmhost_call(
                    __input: &str,
                ) -> ::core::result::Result<::std::string::String, ::wasmhost::CallError> {
                    ::wasmhost::block_on(__wasmhost_async(__input.to_owned()))
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
                ::wasmhost::__private::Function {
                    app: ::core::env!("CARGO_PKG_NAME"),
                    name: #name,
                    summary: #summary,
                    params: &[#(#names),*],
                    retries: #retries,
                    timeout_ms: #timeout_ms,
                    memory_mib: #memory_mib,
                    schedule: #schedule,
                    secrets: &[#(#secrets),*],
                    volumes: &[#((#volumes, #mounts)),*],
                    gpu: #gpu,
                    allowed_outbound_hosts: &[#(#outbound),*],
                    args_schema: __wasmhost_args,
                    result_schema: #result_schema,
                    handler: __wasmhost_call,
                    async_handler: #async_handler,
                    batching: #batching,
                }
            }
        };
    })
}

/// What differs between a plain and a batched function: the handler's body (which reads
/// `__input: &str` and returns the JSON result), the parameters' schema and the result's.
pub(crate) struct Expansion {
    pub(crate) body: TokenStream2,
    pub(crate) schema: Vec<TokenStream2>,
    pub(crate) result_schema: TokenStream2,
}

/// A plain function: the input's parameters, one call, its result.
fn plain(
    sig: &Signature,
    params: &[(String, &Type)],
    names: &[&str],
    awaited: Option<TokenStream2>,
) -> Expansion {
    let ident = &sig.ident;
    let mut extract = Vec::new();
    let mut values = Vec::new();
    let mut schema = Vec::new();
    for (i, (name, ty)) in params.iter().enumerate() {
        let value = format_ident!("__wasmhost_arg{i}");
        extract.push(quote_spanned!(ty.span()=>
            let #value = __input.param::<#ty>(#i);
        ));
        schema.push(quote_spanned!(ty.span()=> __schema.named::<#ty>(#name);));
        values.push(value);
    }
    let output = match &sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => ty.to_token_stream(),
    };
    let output_span = sig.output.span();
    let is_result = match &sig.output {
        ReturnType::Type(_, ty) => last_segment(ty).as_deref() == Some("Result"),
        ReturnType::Default => false,
    };
    let result_schema = if mentions_impl(output.clone()) {
        quote!(|| ::core::option::Option::None)
    } else if is_result {
        quote_spanned!(output_span=> ::wasmhost::__private::output_schema::<
            <#output as ::wasmhost::__private::ResultOk>::Ok
        >)
    } else {
        quote_spanned!(output_span=> ::wasmhost::__private::output_schema::<#output>)
    };
    let call = quote!(#ident(#(#values),*) #awaited);
    let respond = if is_result {
        quote_spanned!(output_span=> ::wasmhost::__private::output_result(#call))
    } else {
        quote_spanned!(output_span=> ::wasmhost::__private::output_value(#call))
    };
    let body = quote! {
        let mut __input = ::wasmhost::__private::Input::new(__input, &[#(#names),*]);
        #(#extract)*
        match (__input.finish(), #(#values,)*) {
            (
                ::core::result::Result::Ok(()),
                #(::core::option::Option::Some(#values),)*
            ) => #respond,
            (__finished, ..) => ::core::result::Result::Err(
                ::wasmhost::__private::input_rejected(__finished),
            ),
        }
    };
    Expansion {
        body,
        schema,
        result_schema,
    }
}

/// A function parameter's name and type: a plain name, taken by value.
fn function_param(arg: &FnArg) -> syn::Result<(String, &Type)> {
    let (pat, ty) = crate::plain_param(arg, "function", "the `kwargs` key")?;
    if let Some((_, sub)) = &pat.subpat {
        return Err(syn::Error::new(
            sub.span(),
            "function parameters must be plain names",
        ));
    }
    Ok((pat.ident.unraw().to_string(), ty))
}
