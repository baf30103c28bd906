//! Unit tests of the attribute parsers.

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
    let config =
        function_config(quote!(retries(initial_delay = "200ms", max = 3))).expect("valid retries");
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
