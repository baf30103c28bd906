//! JSON Schemas of an endpoint's arguments and result, as the manifest carries them.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::IntoResponse;

/// The key naming the parameter that receives the whole body.
pub const BODY_KEY: &str = "x-wasmhost-body";

/// Builds the `args-schema` object: one property per parameter.
///
/// ```json
/// {"type": "object", "properties": {"name": {...}}, "required": ["name"],
///  "x-wasmhost-body": "body", "$defs": {...}}
/// ```
/// `x-wasmhost-body` is present only for a `Json<T>` parameter, `$defs` only when a
/// schema refers to named definitions.
pub struct ArgsSchema {
    generator: SchemaGenerator,
    properties: Vec<(String, Value)>,
    required: Vec<String>,
    body: Option<String>,
}

/// The finished schema; `properties` keeps the parameters' order.
#[derive(Serialize)]
struct Finished<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(serialize_with = "ordered")]
    properties: &'a [(String, Value)],
    required: &'a [String],
    #[serde(rename = "x-wasmhost-body", skip_serializing_if = "Option::is_none")]
    body: Option<&'a str>,
    #[serde(rename = "$defs", skip_serializing_if = "Map::is_empty")]
    defs: Map<String, Value>,
}

/// Serialises pairs as a JSON object in their order.
fn ordered<S: Serializer>(pairs: &&[(String, Value)], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_map(pairs.iter().map(|(k, v)| (k, v)))
}

impl Default for ArgsSchema {
    fn default() -> Self {
        Self::new()
    }
}

impl ArgsSchema {
    /// An empty argument list (JSON Schema 2020-12, deserialisation contract).
    pub fn new() -> Self {
        Self {
            generator: SchemaSettings::draft2020_12().into_generator(),
            properties: Vec::new(),
            required: Vec::new(),
            body: None,
        }
    }

    /// Adds a parameter taken by name.
    pub fn named<T: JsonSchema + DeserializeOwned>(&mut self, name: &str) {
        let schema = self.generator.subschema_for::<T>();
        self.properties.push((name.to_owned(), schema.to_value()));
        if is_required::<T>() {
            self.required.push(name.to_owned());
        }
    }

    /// Adds the parameter that receives the whole body.
    pub fn body<T: JsonSchema + DeserializeOwned>(&mut self, name: &str) {
        self.named::<T>(name);
        self.body = Some(name.to_owned());
    }

    /// The finished schema as JSON text, properties in parameter order.
    pub fn into_json(mut self) -> String {
        let finished = Finished {
            kind: "object",
            properties: &self.properties,
            required: &self.required,
            body: self.body.as_deref(),
            defs: self.generator.take_definitions(true),
        };
        // Maps with string keys and JSON values always serialise.
        serde_json::to_string(&finished).unwrap_or_default()
    }
}

/// Whether a value of `T` must be given: `T` cannot be built from `null`.
pub fn is_required<T: DeserializeOwned>() -> bool {
    serde_json::from_value::<T>(Value::Null).is_err()
}

/// The schema of `R`'s JSON body with its `$defs` (serialisation contract), if it is JSON.
pub fn result_schema<R: IntoResponse>() -> Option<Value> {
    let mut generator = SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator();
    let mut schema = R::result_schema(&mut generator)?;
    let defs = generator.take_definitions(true);
    if !defs.is_empty() {
        schema.insert("$defs".into(), Value::Object(defs));
    }
    Some(schema.to_value())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Json, Response};
    use serde::{Deserialize, Serialize};
    use serde_json::json;

    #[derive(Deserialize, Serialize, JsonSchema)]
    struct Item {
        name: String,
        count: Option<u32>,
    }

    fn finish(args: ArgsSchema) -> Value {
        serde_json::from_str(&args.into_json()).expect("valid JSON")
    }

    #[test]
    fn properties_keep_parameter_order() {
        let mut args = ArgsSchema::new();
        args.named::<i64>("z");
        args.named::<i64>("a");
        args.named::<i64>("m");
        let text = args.into_json();
        let (z, a, m) = (text.find("\"z\""), text.find("\"a\""), text.find("\"m\""));
        assert!(z < a && a < m, "{text}");
    }

    #[test]
    fn named_params_and_required_by_null() {
        let mut args = ArgsSchema::new();
        args.named::<Option<String>>("name");
        args.named::<i64>("a");
        args.named::<Vec<String>>("tags");
        let schema = finish(args);
        assert_eq!(
            schema,
            json!({
                "type": "object",
                "properties": {
                    "name": {"type": ["string", "null"]},
                    "a": {"type": "integer", "format": "int64"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["a", "tags"],
            })
        );
    }

    #[test]
    fn body_param_is_marked_and_defs_collected() {
        let mut args = ArgsSchema::new();
        args.body::<Json<Item>>("item");
        let schema = finish(args);
        assert_eq!(schema["x-wasmhost-body"], "item");
        assert_eq!(
            schema["properties"]["item"],
            json!({"$ref": "#/$defs/Item"})
        );
        assert_eq!(schema["required"], json!(["item"]));
        assert_eq!(schema["$defs"]["Item"]["required"], json!(["name"]));
    }

    #[test]
    fn optional_body_is_not_required() {
        let mut args = ArgsSchema::new();
        args.body::<Json<Option<Item>>>("item");
        assert_eq!(finish(args)["required"], json!([]));
    }

    #[test]
    fn result_schemas() {
        let schema = result_schema::<Json<Item>>().expect("JSON result has a schema");
        assert_eq!(schema["$ref"], "#/$defs/Item");
        assert!(schema["$defs"]["Item"].is_object());
        let status = result_schema::<(u16, Json<Vec<i32>>)>().expect("schema");
        assert_eq!(status["type"], "array");
        assert!(result_schema::<Result<Json<bool>, Response>>().is_some());
        assert!(result_schema::<String>().is_none());
        assert!(result_schema::<Response>().is_none());
        assert!(result_schema::<()>().is_none());
    }
}
