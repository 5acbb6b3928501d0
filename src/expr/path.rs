//! Field paths: the one way filters, templates and ordering keys name a
//! value of an event.
//!
//! - `data` is the payload; `data.x.y` and a plain `x.y` look inside it;
//!   `items.0` and `items[0]` index arrays.
//! - `event.<name>` is an attribute: `id`, `type`, `source`, `time` (RFC 3339;
//!   `created_at` is the same), `subject`, `datacontenttype`, `dataschema`,
//!   or an extension (a string, an integer or a boolean, as it was set).
//! - A plain `id`, `type`, `source`, `time`, `created_at` or `subject` that
//!   the payload does not have falls back to the attribute.

use std::borrow::Cow;

use serde_json::Value;

use crate::event::{Event, ExtensionValue};

/// One step of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seg<'p> {
    Key(&'p str),
    Index(usize),
}

/// The steps of a dotted path (`a.b[0].c`, `a.b.0.c`), without allocating.
/// The path is expected to be valid (see [`check`]); what cannot be read as
/// a step ends the iteration.
pub(crate) fn segments(path: &str) -> impl Iterator<Item = Seg<'_>> + Clone {
    path.split('.').flat_map(|part| {
        let (key, rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        let key = (!key.is_empty()).then_some(Seg::Key(key));
        let indices = rest
            .split('[')
            .filter(|s| !s.is_empty())
            .map_while(|s| s.strip_suffix(']')?.parse().ok().map(Seg::Index));
        key.into_iter().chain(indices)
    })
}

/// Checks a dotted path's syntax: non-empty names of letters, digits, `_`,
/// `-` or `$`, each optionally followed by `[n]` indices.
pub(crate) fn check(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty path: name a field, e.g. confidence or data.user.id".into());
    }
    for part in path.split('.') {
        if part.is_empty() {
            return Err(format!("empty segment in path {path:?}"));
        }
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '$')
        {
            return Err(format!("bad character in field name {key:?}"));
        }
        while !rest.is_empty() {
            let close = rest
                .find(']')
                .ok_or_else(|| format!("unclosed '[' in path {path:?}"))?;
            rest[1..close]
                .parse::<usize>()
                .map_err(|_| format!("array index in {path:?} must be a number"))?;
            rest = &rest[close + 1..];
            if !rest.is_empty() && !rest.starts_with('[') {
                return Err(format!("unexpected {rest:?} in path {path:?}"));
            }
        }
    }
    Ok(())
}

/// The value `path` names in `event`, if it has one.
pub(crate) fn resolve<'a, 'p>(
    event: &'a Event,
    path: impl Iterator<Item = Seg<'p>> + Clone,
) -> Option<Cow<'a, Value>> {
    let mut steps = path.clone();
    match steps.next()? {
        Seg::Key("data") => walk(event.data(), steps).map(Cow::Borrowed),
        Seg::Key("event") => {
            let Seg::Key(name) = steps.next()? else {
                return None;
            };
            if steps.next().is_some() {
                return None;
            }
            attribute(event, name).map(Cow::Owned)
        }
        first => match walk(event.data(), path) {
            Some(v) => Some(Cow::Borrowed(v)),
            None => match (first, steps.next()) {
                (
                    Seg::Key(name @ ("id" | "type" | "source" | "time" | "created_at" | "subject")),
                    None,
                ) => attribute(event, name).map(Cow::Owned),
                _ => None,
            },
        },
    }
}

/// The value of a path given as a dotted string.
pub(crate) fn resolve_str<'a>(event: &'a Event, path: &str) -> Option<Cow<'a, Value>> {
    resolve(event, segments(path))
}

fn walk<'a, 'p>(mut v: &'a Value, steps: impl Iterator<Item = Seg<'p>>) -> Option<&'a Value> {
    for step in steps {
        v = match (step, v) {
            (Seg::Key(k), Value::Object(o)) => o.get(k)?,
            (Seg::Index(i), Value::Array(a)) => a.get(i)?,
            (Seg::Key(k), Value::Array(a)) => a.get(k.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

/// An attribute or extension of the event, by name.
pub(crate) fn attribute(event: &Event, name: &str) -> Option<Value> {
    Some(match name {
        "id" => event.id().into(),
        "type" => event.event_type().into(),
        "source" => event.source().into(),
        "time" | "created_at" => event.time_rfc3339().into(),
        "subject" => event.subject()?.into(),
        "datacontenttype" => event.datacontenttype().into(),
        "dataschema" => event.dataschema()?.into(),
        other => match event.extension(other)? {
            ExtensionValue::String(s) => s.as_str().into(),
            ExtensionValue::Integer(i) => (*i).into(),
            ExtensionValue::Boolean(b) => (*b).into(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event() -> Event {
        Event::builder("order.placed")
            .data(json!({"user": {"id": 7, "tags": ["a", "b"]}, "type": "retail"}))
            .subject("orders/42")
            .extension("tenant", "acme")
            .extension("attempt", 2)
            .build()
            .unwrap()
    }

    #[test]
    fn data_paths_attributes_and_extensions_resolve_one_way() {
        let e = event();
        let get = |path: &str| {
            check(path).unwrap();
            resolve_str(&e, path).map(Cow::into_owned)
        };
        assert_eq!(get("user.id"), Some(json!(7)));
        assert_eq!(get("data.user.id"), Some(json!(7)));
        assert_eq!(get("user.tags.1"), Some(json!("b")));
        assert_eq!(get("user.tags[1]"), Some(json!("b")));
        assert_eq!(get("data.user.tags[0]"), Some(json!("a")));
        // The payload wins over the attribute of the same name...
        assert_eq!(get("type"), Some(json!("retail")));
        // ...and `event.` always names the attribute.
        assert_eq!(get("event.type"), Some(json!("order.placed")));
        assert_eq!(get("subject"), Some(json!("orders/42")));
        assert_eq!(get("event.subject"), Some(json!("orders/42")));
        assert_eq!(get("event.tenant"), Some(json!("acme")));
        // Extensions keep their type.
        assert_eq!(get("event.attempt"), Some(json!(2)));
        let time = get("event.time").unwrap();
        assert_eq!(Some(time.clone()), get("time"));
        assert!(time.as_str().unwrap().contains('T'));
        assert_eq!(get("user.missing"), None);
        assert_eq!(get("user.id.deeper"), None);
        assert_eq!(get("event.user"), None);
        assert_eq!(get("event.tenant.x"), None);
        assert_eq!(get("data"), Some(e.data().clone()));
    }

    #[test]
    fn bad_paths_are_refused_with_the_reason() {
        for (path, why) in [
            ("", "empty path"),
            ("a..b", "empty segment"),
            ("a b", "bad character"),
            ("a[", "unclosed"),
            ("a[x]", "must be a number"),
            ("a[0]b", "unexpected"),
        ] {
            let err = check(path).unwrap_err();
            assert!(err.contains(why), "{path:?}: {err}");
        }
    }
}
