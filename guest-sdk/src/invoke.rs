//! Calling a function: its JSON input `{"args": [...], "kwargs": {...}}` mapped onto the
//! parameters, every failure collected into [`CallError::InvalidInput`], and its result
//! turned into JSON.
//!
//! Positional `args` fill the parameters in declaration order and `kwargs` name them; either
//! may be absent (or `null`), and so may the whole input (empty or `null`: no arguments).
//! A parameter given neither way is built from `null`, so `Option<T>` is optional. A bare
//! object of parameters (`{"x": 1}`) is refused: its keys are not `args` or `kwargs`.

use std::fmt;

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::args::{FieldError, error_kind};

/// The shape of a function's input, for error messages.
const SHAPE: &str = r#"{"args": [...], "kwargs": {...}}"#;

/// Why a function call produced no result (mirrors the WIT `call-error` variant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The input does not fit the parameters: a JSON list of FastAPI-style errors,
    /// `[{"type", "loc", "msg", "input"}]` (plus `ctx` for a JSON syntax error).
    InvalidInput(String),
    /// The function returned an error; this is its text.
    Failed(String),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidInput(detail) => write!(f, "invalid input: {detail}"),
            Self::Failed(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for CallError {}

/// Maps one call's input onto the parameters, collecting every error.
pub struct Input<'p> {
    params: &'p [&'p str],
    args: Vec<Value>,
    kwargs: Map<String, Value>,
    /// The input could not be read as `{"args", "kwargs"}`: absent parameters are not
    /// reported as missing on top of that.
    broken: bool,
    errors: Vec<FieldError>,
}

impl<'p> Input<'p> {
    /// Reads `input` for a function whose parameters are `params`, in declaration order.
    ///
    /// Records at once what does not depend on the parameters' types: input that is not
    /// JSON or not an object, `args` that is not a list, `kwargs` that is not an object,
    /// keys other than those two, positional arguments past the last parameter and
    /// keyword arguments that name no parameter.
    pub fn new(input: &str, params: &'p [&'p str]) -> Self {
        let mut this = Self {
            params,
            args: Vec::new(),
            kwargs: Map::new(),
            broken: false,
            errors: Vec::new(),
        };
        let Some(envelope) = this.envelope(input) else {
            return this;
        };
        this.read_envelope(envelope);
        this.check_positional();
        this.check_keywords();
        this
    }

    /// The input's top-level object; `None` when there is nothing more to read (no input,
    /// `null`, or an error recorded).
    fn envelope(&mut self, input: &str) -> Option<Map<String, Value>> {
        if input.trim().is_empty() {
            return None;
        }
        match serde_json::from_str::<Value>(input) {
            Ok(Value::Object(map)) => Some(map),
            Ok(Value::Null) => None,
            Ok(other) => {
                self.broken = true;
                self.push(
                    "model_type",
                    Vec::new(),
                    format!("Input should be an object {SHAPE}"),
                    other,
                );
                None
            }
            Err(err) => {
                self.broken = true;
                self.errors.push(FieldError {
                    kind: "json_invalid",
                    loc: Vec::new(),
                    msg: "JSON decode error".into(),
                    input: Value::Null,
                    ctx: Some(serde_json::json!({ "error": err.to_string() })),
                });
                None
            }
        }
    }

    /// Takes `args` and `kwargs` from the envelope, recording either of the wrong type and
    /// any other key.
    fn read_envelope(&mut self, mut envelope: Map<String, Value>) {
        let bare = !envelope.contains_key("args") && !envelope.contains_key("kwargs");
        match envelope.remove("args") {
            None | Some(Value::Null) => {}
            Some(Value::Array(args)) => self.args = args,
            Some(other) => {
                self.broken = true;
                self.push(
                    "list_type",
                    vec!["args".into()],
                    "Input should be a valid list".into(),
                    other,
                );
            }
        }
        match envelope.remove("kwargs") {
            None | Some(Value::Null) => {}
            Some(Value::Object(kwargs)) => self.kwargs = kwargs,
            Some(other) => {
                self.broken = true;
                self.push(
                    "dict_type",
                    vec!["kwargs".into()],
                    "Input should be a valid dictionary".into(),
                    other,
                );
            }
        }
        for (key, value) in envelope {
            // A bare object of parameters: say where they belong, and report nothing missing.
            self.broken |= bare;
            let msg = format!(
                "Unexpected input key `{key}`: the input is {SHAPE}; \
                 pass parameters by position in \"args\" or by name in \"kwargs\""
            );
            self.push("extra_forbidden", vec![key.into()], msg, value);
        }
    }

    /// Records each positional argument past the last parameter.
    fn check_positional(&mut self) {
        let (given, takes) = (self.args.len(), self.params.len());
        if given > takes {
            let plural = if takes == 1 { "" } else { "s" };
            let msg = format!(
                "Unexpected positional argument: takes {takes} positional argument{plural} \
                 but {given} were given"
            );
            let extra: Vec<_> = self.args[takes..].to_vec();
            for (i, value) in extra.into_iter().enumerate() {
                self.push(
                    "unexpected_positional_argument",
                    vec!["args".into(), (takes + i).into()],
                    msg.clone(),
                    value,
                );
            }
        }
    }

    /// Records each keyword argument that names no parameter.
    fn check_keywords(&mut self) {
        let params = self.params;
        let unknown: Vec<_> = self
            .kwargs
            .iter()
            .filter(|(name, _)| !params.contains(&name.as_str()))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        for (name, value) in unknown {
            let msg = match params {
                [] => "Unexpected keyword argument: the function takes no arguments".to_owned(),
                _ => format!(
                    "Unexpected keyword argument; expected {}",
                    params
                        .iter()
                        .map(|p| format!("`{p}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            self.push(
                "unexpected_keyword_argument",
                vec!["kwargs".into(), name.into()],
                msg,
                value,
            );
        }
    }

    /// The parameter at `index` (declaration order), positionally or by name.
    ///
    /// Returns `None` after recording an error.
    ///
    /// # Panics
    ///
    /// If `index` is not the index of a parameter.
    pub fn param<T: DeserializeOwned>(&mut self, index: usize) -> Option<T> {
        let name = self.params[index];
        let positional = self.args.get(index);
        let keyword = self.kwargs.get(name);
        let (value, loc) = match (positional, keyword) {
            (Some(_), Some(keyword)) => {
                let keyword = keyword.clone();
                self.push(
                    "multiple_argument_values",
                    vec!["kwargs".into(), name.into()],
                    format!("Got multiple values for argument `{name}`: by position and by name"),
                    keyword,
                );
                return None;
            }
            (Some(value), None) => (value, vec!["args".into(), index.into()]),
            (None, Some(value)) => (value, vec!["kwargs".into(), name.into()]),
            (None, None) => {
                return match T::deserialize(&Value::Null) {
                    Ok(value) => Some(value),
                    Err(_) if self.broken => None,
                    Err(_) => {
                        self.push(
                            "missing",
                            vec!["kwargs".into(), name.into()],
                            "Field required".into(),
                            Value::Null,
                        );
                        None
                    }
                };
            }
        };
        match T::deserialize(value) {
            Ok(value) => Some(value),
            Err(err) => {
                let (msg, input) = (err.to_string(), value.clone());
                self.push(error_kind(&msg), loc, msg, input);
                None
            }
        }
    }

    /// `Ok` when every parameter was read, else the collected errors.
    pub fn finish(self) -> Result<(), CallError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(invalid_input(&self.errors))
        }
    }

    /// The errors recorded so far.
    pub fn errors(&self) -> &[FieldError] {
        &self.errors
    }

    /// Records one error.
    fn push(&mut self, kind: &'static str, loc: Vec<Value>, msg: String, input: Value) {
        self.errors.push(FieldError {
            kind,
            loc,
            msg,
            input,
            ctx: None,
        });
    }
}

/// [`CallError::InvalidInput`] listing `errors` as JSON.
pub fn invalid_input(errors: &[FieldError]) -> CallError {
    // A list of plain records always serialises.
    CallError::InvalidInput(serde_json::to_string(errors).unwrap_or_default())
}

/// The error of a call whose arguments could not all be read.
pub fn rejected(finished: Result<(), CallError>) -> CallError {
    finished
        .err()
        .unwrap_or_else(|| CallError::Failed("argument extraction failed".into()))
}

/// A function's plain result as JSON.
pub fn output_value<T: Serialize>(value: T) -> Result<String, CallError> {
    serde_json::to_string(&value).map_err(|err| {
        CallError::Failed(format!("the result could not be serialised to JSON: {err}"))
    })
}

/// A function's `Result`: `Ok` as JSON, `Err` as [`CallError::Failed`] with its text.
pub fn output_result<T: Serialize, E: fmt::Display>(
    result: Result<T, E>,
) -> Result<String, CallError> {
    match result {
        Ok(value) => output_value(value),
        Err(err) => Err(CallError::Failed(err.to_string())),
    }
}

/// The success type of a function returning `Result`, for its schema.
pub trait ResultOk {
    /// `T` of `Result<T, E>`.
    type Ok;
}

impl<T, E> ResultOk for Result<T, E> {
    type Ok = T;
}

/// The JSON Schema of a function's result `T` with its `$defs` (serialisation contract).
pub fn output_schema<T: Serialize + JsonSchema>() -> Option<Value> {
    let mut generator = SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator();
    let mut schema = generator.subschema_for::<T>();
    let defs = generator.take_definitions(true);
    if !defs.is_empty() {
        schema.insert("$defs".into(), Value::Object(defs));
    }
    Some(schema.to_value())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    const XY: &[&str] = &["x", "y"];

    fn detail(input: Input<'_>) -> Value {
        match input.finish() {
            Err(CallError::InvalidInput(detail)) => {
                serde_json::from_str(&detail).expect("a JSON list")
            }
            other => panic!("expected invalid input, got {other:?}"),
        }
    }

    #[test]
    fn positional_and_keyword() {
        let mut input = Input::new(r#"{"args": [7], "kwargs": {"y": "s"}}"#, XY);
        assert_eq!(input.param::<i64>(0), Some(7));
        assert_eq!(input.param::<String>(1).as_deref(), Some("s"));
        assert_eq!(input.finish(), Ok(()));

        let mut input = Input::new(r#"{"args": [1, "t"]}"#, XY);
        assert_eq!(input.param::<i64>(0), Some(1));
        assert_eq!(input.param::<String>(1).as_deref(), Some("t"));
        assert_eq!(input.finish(), Ok(()));

        let mut input = Input::new(r#"{"kwargs": {"y": "u", "x": 2}}"#, XY);
        assert_eq!(input.param::<i64>(0), Some(2));
        assert_eq!(input.param::<String>(1).as_deref(), Some("u"));
        assert_eq!(input.finish(), Ok(()));
    }

    #[test]
    fn absent_input_means_no_arguments() {
        for text in ["", "  ", "null", "{}", r#"{"args": null, "kwargs": null}"#] {
            let mut input = Input::new(text, XY);
            assert_eq!(input.param::<Option<i64>>(0), Some(None), "{text}");
            assert_eq!(input.param::<Option<String>>(1), Some(None), "{text}");
            assert_eq!(input.finish(), Ok(()), "{text}");
        }
        assert_eq!(Input::new("", &[]).finish(), Ok(()));
    }

    #[test]
    fn options_are_optional_and_others_missing() {
        let mut input = Input::new(r#"{"args": []}"#, XY);
        assert_eq!(input.param::<i64>(0), None);
        assert_eq!(input.param::<Option<String>>(1), Some(None));
        assert_eq!(
            detail(input),
            json!([{"type": "missing", "loc": ["kwargs", "x"], "msg": "Field required",
                    "input": null}])
        );
    }

    #[test]
    fn type_errors_name_where_the_value_came_from() {
        let mut input = Input::new(r#"{"args": ["a"], "kwargs": {"y": 5}}"#, XY);
        assert_eq!(input.param::<i64>(0), None);
        assert_eq!(input.param::<String>(1), None);
        assert_eq!(
            detail(input),
            json!([
                {"type": "int_parsing", "loc": ["args", 0],
                 "msg": "invalid type: string \"a\", expected i64", "input": "a"},
                {"type": "string_type", "loc": ["kwargs", "y"],
                 "msg": "invalid type: integer `5`, expected a string", "input": 5},
            ])
        );
    }

    #[test]
    fn given_both_ways() {
        let mut input = Input::new(r#"{"args": [1], "kwargs": {"x": 2}}"#, XY);
        assert_eq!(input.param::<i64>(0), None);
        assert_eq!(input.param::<Option<String>>(1), Some(None));
        assert_eq!(
            detail(input),
            json!([{"type": "multiple_argument_values", "loc": ["kwargs", "x"],
                    "msg": "Got multiple values for argument `x`: by position and by name",
                    "input": 2}])
        );
    }

    #[test]
    fn too_many_positional() {
        let mut input = Input::new(r#"{"args": [1, "a", true, null]}"#, XY);
        assert_eq!(input.param::<i64>(0), Some(1));
        assert_eq!(input.param::<String>(1).as_deref(), Some("a"));
        let msg = "Unexpected positional argument: takes 2 positional arguments but 4 were given";
        assert_eq!(
            detail(input),
            json!([
                {"type": "unexpected_positional_argument", "loc": ["args", 2], "msg": msg,
                 "input": true},
                {"type": "unexpected_positional_argument", "loc": ["args", 3], "msg": msg,
                 "input": null},
            ])
        );
        let one = Input::new(r#"{"args": [1, 2]}"#, &["x"]);
        assert_eq!(
            detail(one)[0]["msg"],
            "Unexpected positional argument: takes 1 positional argument but 2 were given"
        );
    }

    #[test]
    fn unknown_kwargs() {
        let mut input = Input::new(r#"{"kwargs": {"x": 1, "z": 2}}"#, XY);
        assert_eq!(input.param::<i64>(0), Some(1));
        assert_eq!(input.param::<Option<String>>(1), Some(None));
        assert_eq!(
            detail(input),
            json!([{"type": "unexpected_keyword_argument", "loc": ["kwargs", "z"],
                    "msg": "Unexpected keyword argument; expected `x`, `y`", "input": 2}])
        );
        let none = Input::new(r#"{"kwargs": {"a": 1}}"#, &[]);
        assert_eq!(
            detail(none)[0]["msg"],
            "Unexpected keyword argument: the function takes no arguments"
        );
    }

    #[test]
    fn bare_object_is_refused_without_missing_noise() {
        let mut input = Input::new(r#"{"x": 8}"#, XY);
        assert_eq!(input.param::<i64>(0), None);
        assert_eq!(input.param::<Option<String>>(1), Some(None));
        let detail = detail(input);
        assert_eq!(detail.as_array().map(Vec::len), Some(1), "{detail}");
        assert_eq!(detail[0]["type"], "extra_forbidden");
        assert_eq!(detail[0]["loc"], json!(["x"]));
        assert_eq!(detail[0]["input"], 8);
        let msg = detail[0]["msg"].as_str().expect("a message");
        assert!(msg.contains(r#"{"args": [...], "kwargs": {...}}"#), "{msg}");
        assert!(msg.contains("\"kwargs\""), "{msg}");
    }

    #[test]
    fn extra_key_beside_args_still_reports_missing() {
        let mut input = Input::new(r#"{"args": [], "extra": 1}"#, &["x"]);
        assert_eq!(input.param::<i64>(0), None);
        let detail = detail(input);
        assert_eq!(detail[0]["loc"], json!(["extra"]));
        assert_eq!(detail[1]["type"], "missing");
    }

    #[test]
    fn malformed_envelopes() {
        let mut input = Input::new("{", &["x"]);
        assert_eq!(input.param::<i64>(0), None);
        let d = detail(input);
        assert_eq!(d.as_array().map(Vec::len), Some(1));
        assert_eq!(d[0]["type"], "json_invalid");
        assert_eq!(d[0]["loc"], json!([]));
        assert_eq!(d[0]["msg"], "JSON decode error");
        assert!(d[0]["ctx"]["error"].is_string());

        let mut input = Input::new("[7]", &["x"]);
        assert_eq!(input.param::<i64>(0), None);
        assert_eq!(
            detail(input),
            json!([{"type": "model_type", "loc": [],
                    "msg": r#"Input should be an object {"args": [...], "kwargs": {...}}"#,
                    "input": [7]}])
        );

        let mut input = Input::new(r#"{"args": 7, "kwargs": [1]}"#, &["x"]);
        assert_eq!(input.param::<i64>(0), None);
        assert_eq!(
            detail(input),
            json!([
                {"type": "list_type", "loc": ["args"], "msg": "Input should be a valid list",
                 "input": 7},
                {"type": "dict_type", "loc": ["kwargs"],
                 "msg": "Input should be a valid dictionary", "input": [1]},
            ])
        );

        // With `args` unusable, a good keyword argument is still read.
        let mut input = Input::new(r#"{"args": "x", "kwargs": {"x": 3}}"#, &["x"]);
        assert_eq!(input.param::<i64>(0), Some(3));
        assert_eq!(detail(input).as_array().map(Vec::len), Some(1));
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Point {
        x: i32,
        y: i32,
    }

    #[test]
    fn structured_parameters() {
        let mut input = Input::new(
            r#"{"args": [{"x": 1, "y": 2}], "kwargs": {"tags": ["a"]}}"#,
            &["p", "tags"],
        );
        assert_eq!(input.param::<Point>(0), Some(Point { x: 1, y: 2 }));
        assert_eq!(input.param::<Vec<String>>(1), Some(vec!["a".to_owned()]));
        assert_eq!(input.finish(), Ok(()));

        let mut input = Input::new(r#"{"args": [{"x": 1}]}"#, &["p"]);
        assert_eq!(input.param::<Point>(0), None);
        assert_eq!(
            detail(input),
            json!([{"type": "missing", "loc": ["args", 0], "msg": "missing field `y`",
                    "input": {"x": 1}}])
        );
    }

    #[test]
    fn outputs() {
        assert_eq!(output_value(49_i64), Ok("49".to_owned()));
        assert_eq!(output_value(()), Ok("null".to_owned()));
        assert_eq!(
            output_value(json!({"a": [1]})),
            Ok(r#"{"a":[1]}"#.to_owned())
        );
        assert_eq!(
            output_result::<i64, String>(Err("boom".into())),
            Err(CallError::Failed("boom".into()))
        );
        assert_eq!(output_result::<_, String>(Ok("x")), Ok("\"x\"".to_owned()));
        let mut bad = std::collections::HashMap::new();
        bad.insert(vec![1_u8], 1_u8);
        assert!(matches!(output_value(bad), Err(CallError::Failed(m)) if m.contains("serialised")));
    }

    #[test]
    fn output_schemas() {
        #[derive(Serialize, JsonSchema)]
        struct Out {
            n: i64,
        }
        let schema = output_schema::<Out>().expect("schema");
        assert_eq!(schema["$ref"], "#/$defs/Out");
        assert_eq!(schema["$defs"]["Out"]["required"], json!(["n"]));
        assert_eq!(
            output_schema::<<Result<i64, String> as ResultOk>::Ok>(),
            Some(json!({"type": "integer", "format": "int64"}))
        );
        assert_eq!(output_schema::<()>(), Some(json!({"type": "null"})));
    }
}
