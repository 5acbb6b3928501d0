//! Checking an event's data against its catalog schema (feature `schema`).
//!
//! A small validator for exactly the JSON Schema subset schemars derives for
//! the catalog types, rather than a general JSON Schema crate: the schemas
//! are our own, generated from our structs, and use only `type` (one type
//! or a list, for nullable fields), `properties`, `required`,
//! `additionalProperties` (a boolean or a schema), `items`, `$ref` to
//! `#/$defs/..`, `minimum`, `maximum` and `format` (`date-time` is checked
//! as RFC 3339, `uint64` as fitting a `u64`; schemars' `double` and `uint8`
//! need no more than `type` and the bounds); `title`, `description`,
//! `examples`, `default` and `$schema` are annotations. One deliberate
//! difference from JSON Schema: `integer` means what serde reads into the
//! catalog's integer fields, a number written without a fraction or an
//! exponent (`4`, not `4.0` or `1e2`), so that what validates always
//! decodes into the catalog type and the other way round. The general crate
//! (`jsonschema` 0.41) would bring about 100 crates with it, regex engines
//! and a Unicode normaliser among them, into every build of the ingress.
//! The unit tests walk every catalog schema and fail on any keyword outside
//! this list, so a catalog type that would need more cannot be validated
//! wrongly without a test saying so.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Where an event's data breaks its catalog schema, and how: the first
/// error found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SchemaViolation {
    /// The event type whose schema was broken.
    pub event_type: String,
    /// Where in the event's data, as a JSON Pointer (RFC 6901): `""` is the
    /// data itself, `/summary/total_samples` a nested field, `/tags/2` an
    /// array item.
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

impl fmt::Display for SchemaViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.path.is_empty() {
            "the data"
        } else {
            &self.path
        };
        write!(
            f,
            "{}: {at}: {} (see `hookbus catalog --json-schema {}`)",
            self.event_type, self.message, self.event_type
        )
    }
}

impl std::error::Error for SchemaViolation {}

/// Every catalog type's schema, derived once.
fn schemas() -> &'static HashMap<&'static str, Value> {
    static SCHEMAS: OnceLock<HashMap<&'static str, Value>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        super::ALL
            .iter()
            .filter_map(|e| Some((e.event_type, super::json_schema(e.event_type)?)))
            .collect()
    })
}

/// Checks `data` against the JSON Schema of the catalog event
/// `event_type`. Types outside the catalog pass unchecked.
///
/// ```
/// use hookbus::catalog::validate;
/// use serde_json::json;
///
/// let ok = json!({"decision_id": "abc123", "confidence": 0.72, "threshold": 0.8});
/// assert!(validate("decision.low_confidence", &ok).is_ok());
///
/// let bad = json!({"decision_id": "abc123", "confidence": "high", "threshold": 0.8});
/// let err = validate("decision.low_confidence", &bad).unwrap_err();
/// assert_eq!(err.path, "/confidence");
/// assert_eq!(err.message, "expected number, found string");
///
/// assert!(validate("my.own_event", &json!("anything")).is_ok());
/// ```
pub fn validate(event_type: &str, data: &Value) -> Result<(), SchemaViolation> {
    let Some(schema) = schemas().get(event_type) else {
        return Ok(());
    };
    let mut path = String::new();
    check(schema, schema, data, &mut path).map_err(|message| SchemaViolation {
        event_type: event_type.to_owned(),
        path,
        message,
    })
}

/// Checks `value` against `schema` (`root` holds the `$defs`). On an error,
/// `path` is left pointing at it.
fn check(root: &Value, schema: &Value, value: &Value, path: &mut String) -> Result<(), String> {
    let Some(schema) = schema.as_object() else {
        // `true` accepts everything; `false` nothing.
        return match schema {
            Value::Bool(false) => Err("no value is allowed here".to_owned()),
            _ => Ok(()),
        };
    };
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let target = reference
            .strip_prefix("#/$defs/")
            .and_then(|name| root.get("$defs")?.get(name))
            .ok_or_else(|| format!("the schema's reference {reference} is not in $defs"))?;
        check(root, target, value, path)?;
    }
    if let Some(expected) = schema.get("type") {
        check_type(expected, value)?;
    }
    if let Value::Object(fields) = value {
        check_object(root, schema, fields, path)?;
    }
    if let (Value::Array(items), Some(item_schema)) = (value, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            let len = path.len();
            path.push_str(&format!("/{i}"));
            check(root, item_schema, item, path)?;
            path.truncate(len);
        }
    }
    if let Value::Number(n) = value {
        let x = n.as_f64().unwrap_or(f64::NAN);
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && x < min
        {
            return Err(format!("{n} is below the minimum {min}"));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && x > max
        {
            return Err(format!("{n} is above the maximum {max}"));
        }
    }
    match (schema.get("format").and_then(Value::as_str), value) {
        (Some("date-time"), Value::String(s)) if OffsetDateTime::parse(s, &Rfc3339).is_err() => {
            Err(format!("{s:?} is not an RFC 3339 date-time"))
        }
        (Some("uint64"), Value::Number(n)) if n.as_u64().is_none() => {
            Err(format!("{n} is not an unsigned 64-bit integer"))
        }
        _ => Ok(()),
    }
}

fn check_object(
    root: &Value,
    schema: &Map<String, Value>,
    fields: &Map<String, Value>,
    path: &mut String,
) -> Result<(), String> {
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if !fields.contains_key(name) {
                return Err(format!("the required field {name:?} is missing"));
            }
        }
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    for (name, value) in fields {
        let field_schema = match properties.and_then(|p| p.get(name)) {
            Some(s) => s,
            None => match schema.get("additionalProperties") {
                Some(s) => s,
                None => continue,
            },
        };
        let len = path.len();
        path.push('/');
        // JSON Pointer escapes: `~` as `~0`, `/` as `~1`.
        path.push_str(&name.replace('~', "~0").replace('/', "~1"));
        check(root, field_schema, value, path).map_err(|e| {
            if matches!(field_schema, Value::Bool(false)) {
                "this field is not allowed here".to_owned()
            } else {
                e
            }
        })?;
        path.truncate(len);
    }
    Ok(())
}

fn check_type(expected: &Value, value: &Value) -> Result<(), String> {
    let names: Vec<&str> = match expected {
        Value::String(s) => vec![s.as_str()],
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
        _ => return Ok(()),
    };
    if names.iter().any(|name| is_type(name, value)) {
        return Ok(());
    }
    Err(format!(
        "expected {}, found {}",
        names.join(" or "),
        type_name(value)
    ))
}

fn is_type(name: &str, value: &Value) -> bool {
    match (name, value) {
        ("null", Value::Null)
        | ("boolean", Value::Bool(_))
        | ("string", Value::String(_))
        | ("array", Value::Array(_))
        | ("object", Value::Object(_))
        | ("number", Value::Number(_)) => true,
        // As serde reads the catalog's integer fields: a number written
        // without a fraction or exponent. JSON Schema would also take
        // `4.0` or `1e2`, which the typed handler then could not decode.
        ("integer", Value::Number(n)) => n.is_i64() || n.is_u64(),
        _ => false,
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The keywords the validator understands, and the annotations it
    /// skips: a catalog schema using anything else fails here.
    const KNOWN: &[&str] = &[
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "$ref",
        "$defs",
        "minimum",
        "maximum",
        "format",
        "title",
        "description",
        "examples",
        "default",
        "$schema",
    ];
    const FORMATS: &[&str] = &["date-time", "uint64", "uint8", "double"];

    fn keywords(schema: &Value, found: &mut Vec<String>) {
        let Some(obj) = schema.as_object() else {
            return;
        };
        for (k, v) in obj {
            found.push(k.clone());
            match k.as_str() {
                "properties" | "$defs" => {
                    for s in v.as_object().into_iter().flat_map(|m| m.values()) {
                        keywords(s, found);
                    }
                }
                "items" | "additionalProperties" => keywords(v, found),
                "format" => found.push(format!("format:{}", v.as_str().unwrap_or("?"))),
                _ => {}
            }
        }
    }

    #[test]
    fn every_catalog_schema_uses_only_what_the_validator_understands() {
        for entry in super::super::ALL {
            let mut found = Vec::new();
            keywords(&schemas()[entry.event_type], &mut found);
            for k in found {
                let known = match k.strip_prefix("format:") {
                    Some(f) => FORMATS.contains(&f),
                    None => KNOWN.contains(&k.as_str()),
                };
                assert!(known, "{}: the schema uses {k}", entry.event_type);
            }
        }
    }

    #[test]
    fn every_catalog_example_is_valid() {
        for entry in super::super::ALL {
            let example: Value = serde_json::from_str(entry.example).unwrap();
            assert_eq!(validate(entry.event_type, &example), Ok(()));
        }
    }

    fn error(event_type: &str, data: Value) -> (String, String) {
        let e = validate(event_type, &data).unwrap_err();
        (e.path, e.message)
    }

    #[test]
    fn the_first_error_is_named_by_its_path() {
        let s = |p: &str, m: &str| (p.to_owned(), m.to_owned());
        assert_eq!(
            error("decision.low_confidence", json!([1])),
            s("", "expected object, found array")
        );
        assert_eq!(
            error("decision.low_confidence", json!({"decision_id": "d"})),
            s("", "the required field \"confidence\" is missing")
        );
        // Integers and their bounds.
        let mut completed: Value =
            serde_json::from_str(super::super::interaction::InteractionCompleted::EXAMPLE).unwrap();
        completed["level"] = json!(256);
        assert_eq!(
            error("interaction_completed", completed.clone()),
            s("/level", "256 is above the maximum 255")
        );
        // A whole number written as a float is not an integer to serde, so
        // not to the schema either.
        completed["level"] = json!(4.0);
        assert_eq!(
            error("interaction_completed", completed.clone()),
            s("/level", "expected integer, found number")
        );
        completed["level"] = json!(4);
        completed["duration_ms"] = json!(-1);
        assert_eq!(
            error("interaction_completed", completed.clone()),
            s("/duration_ms", "-1 is below the minimum 0")
        );
        completed["duration_ms"] = json!(2.5);
        assert_eq!(
            error("interaction_completed", completed.clone()),
            s("/duration_ms", "expected integer, found number")
        );
        completed["duration_ms"] = json!(1e30);
        assert_eq!(
            error("interaction_completed", completed.clone()),
            s("/duration_ms", "expected integer, found number")
        );
        completed["duration_ms"] = json!(u64::MAX);
        assert_eq!(validate("interaction_completed", &completed), Ok(()));
        // Nested, through an additionalProperties schema.
        let mut scored: Value =
            serde_json::from_str(super::super::evaluation::SampleScored::EXAMPLE).unwrap();
        scored["scores"]["safety"] = json!("good");
        assert_eq!(
            error("sample.scored", scored),
            s("/scores/safety", "expected number, found string")
        );
        // Formats.
        let mut finished: Value =
            serde_json::from_str(super::super::evaluation::EvaluationCompleted::EXAMPLE).unwrap();
        finished["completed_at"] = json!("yesterday");
        assert_eq!(
            error("evaluation.completed", finished),
            s(
                "/completed_at",
                "\"yesterday\" is not an RFC 3339 date-time"
            )
        );
        // Through a $ref, and in an array.
        let mut review: Value =
            serde_json::from_str(super::super::evaluation::ReviewCompleted::EXAMPLE).unwrap();
        review["review"]["ai_correct"] = json!("no");
        assert_eq!(
            error("review.completed", review.clone()),
            s("/review/ai_correct", "expected boolean, found string")
        );
        review["review"]["ai_correct"] = json!(false);
        review["review"]["notes"] = Value::Null;
        assert_eq!(validate("review.completed", &review), Ok(()));
        let mut prediction: Value =
            serde_json::from_str(super::super::interaction::Level4Prediction::EXAMPLE).unwrap();
        prediction["tags"] = json!(["security", 7]);
        assert_eq!(
            error("level_4_prediction", prediction),
            s("/tags/1", "expected string, found integer")
        );
    }

    #[test]
    fn pointers_escape_and_false_schemas_refuse() {
        let schema = json!({
            "type": "object",
            "properties": {"a/b~c": {"type": "string"}},
            "additionalProperties": false
        });
        let mut path = String::new();
        let err = check(&schema, &schema, &json!({"a/b~c": 1}), &mut path).unwrap_err();
        assert_eq!(
            (path.as_str(), err.as_str()),
            ("/a~1b~0c", "expected string, found integer")
        );
        let mut path = String::new();
        let err = check(&schema, &schema, &json!({"extra": 1}), &mut path).unwrap_err();
        assert_eq!(
            (path.as_str(), err.as_str()),
            ("/extra", "this field is not allowed here")
        );
    }
}
