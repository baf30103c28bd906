//! Host-side checks of a call's input against the function's parameters, so a spawn
//! with the wrong arguments is refused at once (types are checked by the guest).

use serde_json::{Value, json};

use crate::engine::FunctionSpec;

/// Checks `{"args": [...], "kwargs": {...}}` against the parameters; returns FastAPI-style
/// error details when it does not fit.
pub fn check(spec: &FunctionSpec, input: &Value) -> Result<(), Value> {
    let mut errors = Vec::new();
    let Some(obj) = input.as_object() else {
        return Err(
            json!([{"type": "model_type", "loc": [], "msg": "input must be an object {\"args\": [...], \"kwargs\": {...}}", "input": input}]),
        );
    };
    for key in obj.keys().filter(|k| *k != "args" && *k != "kwargs") {
        errors.push(json!({"type": "extra_forbidden", "loc": [key], "msg": "only `args` and `kwargs` are allowed", "input": obj[key]}));
    }
    let args = match obj.get("args") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(a)) => a.as_slice(),
        Some(other) => {
            errors.push(json!({"type": "list_type", "loc": ["args"], "msg": "`args` must be a list", "input": other}));
            &[][..]
        }
    };
    let empty = serde_json::Map::new();
    let kwargs = match obj.get("kwargs") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(k)) => k,
        Some(other) => {
            errors.push(json!({"type": "dict_type", "loc": ["kwargs"], "msg": "`kwargs` must be an object", "input": other}));
            &empty
        }
    };
    if args.len() > spec.params.len() {
        errors.push(json!({"type": "too_many_arguments", "loc": ["args", spec.params.len()],
            "msg": format!("{} takes {} positional arguments but {} were given", spec.name, spec.params.len(), args.len()),
            "input": args[spec.params.len()..]}));
    }
    for (name, value) in kwargs {
        match spec.params.iter().position(|p| p == name) {
            None => errors.push(
                json!({"type": "unexpected_keyword_argument", "loc": ["kwargs", name],
                "msg": format!("{} has no parameter {name:?}", spec.name), "input": value}),
            ),
            Some(i) if i < args.len() => errors
                .push(json!({"type": "multiple_values", "loc": ["kwargs", name],
                "msg": format!("{name:?} is given both by position and by name"), "input": value})),
            Some(_) => {}
        }
    }
    let required = spec.args_schema.get("required").and_then(Value::as_array);
    for (i, name) in spec.params.iter().enumerate() {
        let is_required = required.is_some_and(|r| r.iter().any(|x| x == name.as_str()));
        if is_required && i >= args.len() && !kwargs.contains_key(name) {
            errors.push(json!({"type": "missing", "loc": ["kwargs", name], "msg": "Field required", "input": null}));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Value::Array(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> FunctionSpec {
        serde_json::from_value(json!({
            "name": "f", "summary": null, "params": ["x", "y"], "result_schema": null,
            "args_schema": {"type": "object", "required": ["x"], "properties": {"x": {}, "y": {}}},
            "retries": null, "timeout": null, "memory_mib": null, "schedule": null,
            "secrets": [], "volumes": []
        }))
        .unwrap()
    }

    #[test]
    fn accepts_positional_and_keyword() {
        assert!(check(&spec(), &json!({"args": [1]})).is_ok());
        assert!(check(&spec(), &json!({"kwargs": {"x": 1, "y": 2}})).is_ok());
        assert!(check(&spec(), &json!({"args": [1], "kwargs": {"y": 2}})).is_ok());
    }

    #[test]
    fn refuses_what_cannot_fit() {
        let types = |input: Value| -> Vec<String> {
            check(&spec(), &input)
                .unwrap_err()
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["type"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(types(json!({})), ["missing"]);
        assert_eq!(types(json!({"args": [1, 2, 3]})), ["too_many_arguments"]);
        assert_eq!(
            types(json!({"args": [1], "kwargs": {"x": 2}})),
            ["multiple_values"]
        );
        assert_eq!(
            types(json!({"args": [1], "kwargs": {"z": 2}})),
            ["unexpected_keyword_argument"]
        );
        assert_eq!(
            types(json!({"args": 5, "x": 1})),
            ["extra_forbidden", "list_type", "missing"]
        );
        assert!(check(&spec(), &json!([1])).is_err());
    }
}
