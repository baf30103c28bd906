//! Argument coercion: how a typed endpoint's arguments are read from a request's query
//! and body (the guest SDK, as compiled into every Rust guest), and the host's check of a
//! call's `{"args", "kwargs"}` against a function's parameters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use wasmhost_sdk::__private::Args;
use wasmhost_sdk::Request;

fuzz_target!(|data: &[u8]| {
    let (head, body) = data.split_at(data.iter().position(|b| *b == 0).unwrap_or(data.len()));
    let text = String::from_utf8_lossy(head);
    let (method, query) = match text.split_once(' ') {
        Some((m, q)) => (m.to_owned(), q.to_owned()),
        None => ("GET".to_owned(), text.into_owned()),
    };
    let content_type = if body.first() == Some(&b'-') {
        "multipart/form-data; boundary=x"
    } else {
        "application/json"
    };
    let request = Request {
        method,
        path: "/".into(),
        query,
        headers: vec![("content-type".into(), content_type.into())],
        body: body.get(1..).unwrap_or_default().to_vec(),
        params: vec![("id".into(), String::from_utf8_lossy(head).into_owned())],
    };
    let _ = request.param::<u64>("id");
    let _ = request.param::<Vec<bool>>("id");
    let _ = request.multipart();
    let mut args = Args::new(request);
    let _ = args.named::<i64>("x");
    let _ = args.named::<f64>("y");
    let _ = args.named::<Option<bool>>("flag");
    let _ = args.named::<Vec<u8>>("list");
    let _ = args.named::<String>("s");
    let _ = args.named::<Value>("v");
    let _ = args.body::<Value>();
    let _ = args.finish();

    // The host's check, with the input read as JSON where it is JSON.
    if let Ok(input) = serde_json::from_slice::<Value>(body) {
        let spec =
            wasmhost::fuzzing::fuzz_manifest(head).and_then(|m| m.functions.into_iter().next());
        if let Some(spec) = spec {
            let _ = wasmhost::functions::input::check(&spec, &input);
        }
    }
});
