//! Payload templates: turn an event into a custom JSON body.
//!
//! A template is a JSON value whose strings may hold placeholders, in either of
//! the two styles the webhook guides use:
//!
//! - Python style: `{prediction}`, `{confidence:.0%}`, `{count:,}`,
//!   `{score:+.2f}`, `{name:>10}`: a path and an optional format spec (fill,
//!   align, sign, width, `,`/`_` grouping, precision and the types `f`, `%`,
//!   `d`, `e`, `s`);
//! - Mustache style: `{{data.summary.triage_accuracy | percent}}`: a path and
//!   filters (`percent`, `percent(1)`, `round(2)`, `upper`, `lower`,
//!   `truncate(50)`, `default('n/a')`, `json`).
//!
//! Paths: `data.x.y` and plain `x.y` look inside the event data (`items[0]` or
//! `items.0` index arrays); `event.id`, `event.type`, `event.source`,
//! `event.time`, `event.subject` and `event.<extension>` name the event's
//! attributes. A plain `id`, `type`, `source`, `time`, `created_at` or
//! `subject` that the data does not have falls back to the attribute.
//! A literal brace is written `\{` or `\}`.
//!
//! Substituted values are inserted into JSON strings, so they are escaped
//! correctly whatever they contain. A string that is exactly one
//! `{{path | json}}` placeholder is replaced by the value itself (a number, an
//! object...). Templates are parsed when they are built: bad syntax is an
//! error then. A field missing at delivery time is a recorded delivery error.
//!
//! ```
//! use hookbus::Event;
//! use hookbus::expr::Template;
//! use serde_json::json;
//!
//! let t = Template::new(json!({
//!     "text": "*Prediction:* {prediction}\n*Confidence:* {confidence:.0%}",
//!     "accuracy": "{{data.summary.triage_accuracy | percent}}",
//! }))?;
//! let e = Event::new("level_4_prediction", json!({
//!     "prediction": "Schema \"v2\" breaks the app",
//!     "confidence": 0.87,
//!     "summary": {"triage_accuracy": 0.912},
//! }))?;
//! let body = t.render(&e)?;
//! assert_eq!(body["text"], "*Prediction:* Schema \"v2\" breaks the app\n*Confidence:* 87%");
//! assert_eq!(body["accuracy"], "91%");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt::{self, Write as _};

use serde_json::Value;

use crate::event::Event;

/// What is wrong with a template, or why it could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// Bad placeholder syntax.
    #[error("template syntax error in {text:?} at character {at}: {message}")]
    Syntax {
        /// The template string (truncated).
        text: String,
        /// Character offset of the problem.
        at: usize,
        /// What is wrong.
        message: String,
    },
    /// A filter name no one knows.
    #[error(
        "unknown template filter {0:?}; known: percent, round, upper, lower, truncate, default, json"
    )]
    UnknownFilter(String),
    /// A format spec that is not understood.
    #[error("bad format spec {spec:?}: {message}")]
    BadFormatSpec {
        /// The spec.
        spec: String,
        /// What is wrong.
        message: String,
    },
    /// A field the event does not have (at delivery time).
    #[error("template field {0:?} is missing from the event")]
    MissingField(String),
    /// A field of the wrong type for its format or filter (at delivery time).
    #[error("template field {path:?} must be {expected} for its format, found {found}")]
    WrongType {
        /// The path.
        path: String,
        /// What the format needs.
        expected: &'static str,
        /// What was found (a JSON type name).
        found: &'static str,
    },
}

/// A parsed payload template. See the [module docs](self).
#[derive(Clone, PartialEq)]
pub struct Template {
    root: Node,
    source: Value,
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Template").field(&self.source).finish()
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Literal(Value),
    Str(Vec<Segment>),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Text(String),
    Field(Field),
}

#[derive(Debug, Clone, PartialEq)]
struct Field {
    text: String,
    /// A checked path (see [`super::path`]).
    path: String,
    spec: Option<FormatSpec>,
    filters: Vec<FilterOp>,
}

#[derive(Debug, Clone, PartialEq)]
enum FilterOp {
    Percent(usize),
    Round(usize),
    Upper,
    Lower,
    Truncate(usize),
    Default(Value),
    Json,
}

impl Template {
    /// Parses a template from a JSON value.
    pub fn new(template: Value) -> Result<Template, TemplateError> {
        Ok(Template {
            root: parse_node(&template)?,
            source: template,
        })
    }

    /// Parses a template from JSON text.
    pub fn from_json_str(text: &str) -> Result<Template, TemplateError> {
        let v: Value = serde_json::from_str(text).map_err(|e| TemplateError::Syntax {
            text: truncate_chars(text, 60),
            at: e.column(),
            message: format!("not JSON: {e}"),
        })?;
        Template::new(v)
    }

    /// The template as written.
    pub fn source(&self) -> &Value {
        &self.source
    }

    /// Renders the template for `event`.
    pub fn render(&self, event: &Event) -> Result<Value, TemplateError> {
        render_node(&self.root, event)
    }
}

impl TryFrom<Value> for Template {
    type Error = TemplateError;
    fn try_from(v: Value) -> Result<Template, TemplateError> {
        Template::new(v)
    }
}

fn parse_node(v: &Value) -> Result<Node, TemplateError> {
    Ok(match v {
        Value::String(s) => {
            let segs = parse_string(s)?;
            if segs.iter().all(|s| matches!(s, Segment::Text(_))) {
                let text: String = segs
                    .into_iter()
                    .map(|s| match s {
                        Segment::Text(t) => t,
                        Segment::Field(_) => String::new(),
                    })
                    .collect();
                Node::Literal(Value::String(text))
            } else {
                Node::Str(segs)
            }
        }
        Value::Array(a) => Node::Array(a.iter().map(parse_node).collect::<Result<_, _>>()?),
        Value::Object(o) => Node::Object(
            o.iter()
                .map(|(k, v)| Ok((k.clone(), parse_node(v)?)))
                .collect::<Result<_, TemplateError>>()?,
        ),
        other => Node::Literal(other.clone()),
    })
}

fn truncate_chars(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn parse_string(s: &str) -> Result<Vec<Segment>, TemplateError> {
    let chars: Vec<char> = s.chars().collect();
    let err = |at: usize, message: &str| TemplateError::Syntax {
        text: truncate_chars(s, 60),
        at,
        message: message.to_owned(),
    };
    let mut segs = Vec::new();
    let mut text = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' if matches!(chars.get(i + 1), Some('{') | Some('}')) => {
                text.push(chars[i + 1]);
                i += 2;
            }
            '{' => {
                let double = chars.get(i + 1) == Some(&'{');
                let start = if double { i + 2 } else { i + 1 };
                let close: &[char] = if double { &['}', '}'] } else { &['}'] };
                let end = (start..chars.len())
                    .find(|&j| chars[j..].starts_with(close))
                    .ok_or_else(|| err(i, "unclosed '{'"))?;
                let inner: String = chars[start..end].iter().collect();
                if inner.contains('{') {
                    return Err(err(i, "'{' inside a placeholder"));
                }
                let field = if double {
                    parse_mustache(&inner).map_err(|m| err(i, &m))?
                } else {
                    parse_python(&inner).map_err(|e| match e {
                        PyErr::Syntax(m) => err(i, &m),
                        PyErr::Spec(e) => e,
                    })?
                };
                if !text.is_empty() {
                    segs.push(Segment::Text(std::mem::take(&mut text)));
                }
                segs.push(Segment::Field(field));
                i = end + close.len();
            }
            '}' => return Err(err(i, "unmatched '}' (write \\} for a literal brace)")),
            _ => {
                text.push(c);
                i += 1;
            }
        }
    }
    if !text.is_empty() {
        segs.push(Segment::Text(text));
    }
    Ok(segs)
}

enum PyErr {
    Syntax(String),
    Spec(TemplateError),
}

fn parse_python(inner: &str) -> Result<Field, PyErr> {
    let (path, spec) = match inner.split_once(':') {
        Some((p, s)) => (p, Some(s)),
        None => (inner, None),
    };
    let path_segs = parse_path(path.trim()).map_err(PyErr::Syntax)?;
    let spec = match spec {
        Some(s) => Some(FormatSpec::parse(s).map_err(PyErr::Spec)?),
        None => None,
    };
    Ok(Field {
        text: inner.to_owned(),
        path: path_segs,
        spec,
        filters: Vec::new(),
    })
}

fn parse_mustache(inner: &str) -> Result<Field, String> {
    let mut parts = inner.split('|');
    let path = parts.next().unwrap_or_default().trim();
    let path_segs = parse_path(path)?;
    let mut filters = Vec::new();
    for f in parts {
        filters.push(parse_filter(f.trim()).map_err(|e| e.to_string())?);
    }
    Ok(Field {
        text: path.to_owned(),
        path: path_segs,
        spec: None,
        filters,
    })
}

fn parse_filter(f: &str) -> Result<FilterOp, TemplateError> {
    let (name, arg) = match f.split_once('(') {
        Some((n, rest)) => {
            let arg = rest
                .strip_suffix(')')
                .ok_or_else(|| TemplateError::UnknownFilter(f.to_owned()))?;
            (n.trim(), Some(arg.trim()))
        }
        None => (f, None),
    };
    let num = |default: usize| -> Result<usize, TemplateError> {
        match arg {
            None | Some("") => Ok(default),
            Some(a) => a.parse().map_err(|_| TemplateError::BadFormatSpec {
                spec: f.to_owned(),
                message: format!("{name} takes a whole number"),
            }),
        }
    };
    Ok(match name {
        "percent" => FilterOp::Percent(num(0)?),
        "round" => FilterOp::Round(num(0)?),
        "upper" => FilterOp::Upper,
        "lower" => FilterOp::Lower,
        "truncate" => FilterOp::Truncate(num(80)?),
        "json" => FilterOp::Json,
        "default" => {
            let a = arg.unwrap_or("");
            let v = if let Some(s) = a
                .strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
                .or_else(|| a.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
            {
                Value::String(s.to_owned())
            } else {
                serde_json::from_str(a).unwrap_or_else(|_| Value::String(a.to_owned()))
            };
            FilterOp::Default(v)
        }
        _ => return Err(TemplateError::UnknownFilter(name.to_owned())),
    })
}

fn parse_path(path: &str) -> Result<String, String> {
    if path.is_empty() {
        return Err("empty placeholder: name a field, e.g. {confidence}".into());
    }
    super::path::check(path)?;
    Ok(path.to_owned())
}

/// A subset of Python's format-spec mini-language.
#[derive(Debug, Clone, PartialEq, Default)]
struct FormatSpec {
    fill: char,
    align: Option<char>,
    sign: Option<char>,
    width: usize,
    grouping: Option<char>,
    precision: Option<usize>,
    ty: Option<char>,
}

impl FormatSpec {
    fn parse(spec: &str) -> Result<FormatSpec, TemplateError> {
        let bad = |m: &str| TemplateError::BadFormatSpec {
            spec: spec.to_owned(),
            message: m.to_owned(),
        };
        let c: Vec<char> = spec.chars().collect();
        let mut i = 0;
        let mut f = FormatSpec {
            fill: ' ',
            ..FormatSpec::default()
        };
        let is_align = |ch: char| matches!(ch, '<' | '>' | '^');
        if c.len() >= 2 && is_align(c[1]) {
            f.fill = c[0];
            f.align = Some(c[1]);
            i = 2;
        } else if !c.is_empty() && is_align(c[0]) {
            f.align = Some(c[0]);
            i = 1;
        }
        if i < c.len() && matches!(c[i], '+' | '-' | ' ') {
            f.sign = Some(c[i]);
            i += 1;
        }
        if i < c.len() && c[i] == '0' {
            if f.align.is_none() {
                f.fill = '0';
                f.align = Some('=');
            }
            i += 1;
        }
        let start = i;
        while i < c.len() && c[i].is_ascii_digit() {
            i += 1;
        }
        if i > start {
            f.width = c[start..i]
                .iter()
                .collect::<String>()
                .parse()
                .map_err(|_| bad("width too large"))?;
        }
        if i < c.len() && matches!(c[i], ',' | '_') {
            f.grouping = Some(c[i]);
            i += 1;
        }
        if i < c.len() && c[i] == '.' {
            i += 1;
            let s = i;
            while i < c.len() && c[i].is_ascii_digit() {
                i += 1;
            }
            if i == s {
                return Err(bad("'.' must be followed by a precision"));
            }
            f.precision = Some(
                c[s..i]
                    .iter()
                    .collect::<String>()
                    .parse()
                    .map_err(|_| bad("precision too large"))?,
            );
        }
        if i < c.len() {
            if !matches!(c[i], 'f' | 'F' | '%' | 'd' | 'e' | 's') {
                return Err(bad(&format!(
                    "unsupported type {:?} (use f, %, d, e or s)",
                    c[i]
                )));
            }
            f.ty = Some(c[i]);
            i += 1;
        }
        if i < c.len() {
            return Err(bad(&format!(
                "unexpected {:?}",
                c[i..].iter().collect::<String>()
            )));
        }
        if f.precision.unwrap_or(0) > 64 || f.width > 1024 {
            return Err(bad("precision or width too large"));
        }
        Ok(f)
    }

    fn apply(&self, path: &str, v: &Value) -> Result<String, TemplateError> {
        let number = |expected| match v {
            Value::Number(n) => n.as_f64().ok_or(TemplateError::WrongType {
                path: path.to_owned(),
                expected,
                found: "number",
            }),
            other => Err(TemplateError::WrongType {
                path: path.to_owned(),
                expected,
                found: type_name(other),
            }),
        };
        let (body, numeric, negative) = match self.ty {
            Some('%') => {
                let x = number("a number")?;
                let s = fixed(x.abs() * 100.0, self.precision.unwrap_or(6));
                (
                    format!("{}%", self.group(&s)),
                    true,
                    x.is_sign_negative() && x != 0.0,
                )
            }
            Some('f') | Some('F') => {
                let x = number("a number")?;
                let s = fixed(x.abs(), self.precision.unwrap_or(6));
                (self.group(&s), true, x.is_sign_negative() && x != 0.0)
            }
            Some('e') => {
                let x = number("a number")?;
                (sci(x.abs(), self.precision.unwrap_or(6)), true, x < 0.0)
            }
            Some('d') => {
                let i = match v {
                    Value::Number(n) if n.is_i64() || n.is_u64() => n.as_i128().unwrap_or_default(),
                    other => {
                        return Err(TemplateError::WrongType {
                            path: path.to_owned(),
                            expected: "an integer",
                            found: type_name(other),
                        });
                    }
                };
                (self.group(&i.unsigned_abs().to_string()), true, i < 0)
            }
            _ => match v {
                Value::Number(n) if self.precision.is_some() || self.grouping.is_some() => {
                    let x = n.as_f64().unwrap_or_default();
                    let s = match self.precision {
                        Some(p) => fixed(x.abs(), p),
                        None if n.is_f64() => x.abs().to_string(),
                        None => n.as_i128().unwrap_or_default().unsigned_abs().to_string(),
                    };
                    (self.group(&s), true, x < 0.0)
                }
                Value::Number(_) => {
                    let s = display(v);
                    match s.strip_prefix('-') {
                        Some(rest) => (rest.to_owned(), true, true),
                        None => (s, true, false),
                    }
                }
                other => {
                    let mut s = display(other);
                    if let Some(p) = self.precision {
                        s = truncate_chars(&s, p);
                    }
                    (s, false, false)
                }
            },
        };
        let sign = if !numeric {
            ""
        } else if negative {
            "-"
        } else {
            match self.sign {
                Some('+') => "+",
                Some(' ') => " ",
                _ => "",
            }
        };
        let len = sign.chars().count() + body.chars().count();
        let pad = self.width.saturating_sub(len);
        let fill = |n: usize| std::iter::repeat_n(self.fill, n).collect::<String>();
        let default_align = if numeric { '>' } else { '<' };
        Ok(match self.align.unwrap_or(default_align) {
            '<' => format!("{sign}{body}{}", fill(pad)),
            '^' => format!("{}{sign}{body}{}", fill(pad / 2), fill(pad - pad / 2)),
            '=' => format!("{sign}{}{body}", fill(pad)),
            _ => format!("{}{sign}{body}", fill(pad)),
        })
    }

    /// Inserts the grouping separator into the integer part of `s`.
    fn group(&self, s: &str) -> String {
        let Some(sep) = self.grouping else {
            return s.to_owned();
        };
        let (int, rest) = match s.find(|c: char| !c.is_ascii_digit()) {
            Some(i) => (&s[..i], &s[i..]),
            None => (s, ""),
        };
        let mut out = String::with_capacity(s.len() + int.len() / 3);
        for (i, ch) in int.chars().enumerate() {
            if i > 0 && (int.len() - i) % 3 == 0 {
                out.push(sep);
            }
            out.push(ch);
        }
        out.push_str(rest);
        out
    }
}

fn fixed(x: f64, precision: usize) -> String {
    format!("{x:.precision$}")
}

fn sci(x: f64, precision: usize) -> String {
    let s = format!("{x:.precision$e}");
    match s.split_once('e') {
        Some((m, e)) => {
            let (sign, digits) = match e.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', e),
            };
            format!("{m}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value as text: strings as they are, everything else as compact JSON.
fn display(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn render_node(node: &Node, event: &Event) -> Result<Value, TemplateError> {
    Ok(match node {
        Node::Literal(v) => v.clone(),
        Node::Array(a) => Value::Array(
            a.iter()
                .map(|n| render_node(n, event))
                .collect::<Result<_, _>>()?,
        ),
        Node::Object(o) => Value::Object(
            o.iter()
                .map(|(k, n)| Ok((k.clone(), render_node(n, event)?)))
                .collect::<Result<_, TemplateError>>()?,
        ),
        Node::Str(segs) => {
            if let [Segment::Field(f)] = segs.as_slice()
                && f.filters.last() == Some(&FilterOp::Json)
            {
                return render_field(f, event);
            }
            let mut out = String::new();
            for s in segs {
                match s {
                    Segment::Text(t) => out.push_str(t),
                    Segment::Field(f) => match render_field(f, event)? {
                        Value::String(s) => out.push_str(&s),
                        other => {
                            let _ = write!(out, "{other}");
                        }
                    },
                }
            }
            Value::String(out)
        }
    })
}

fn render_field(f: &Field, event: &Event) -> Result<Value, TemplateError> {
    let resolved = super::path::resolve_str(event, &f.path);
    let base: &Value = match &resolved {
        Some(r) => r,
        None => {
            // `default` rescues a missing field; anything else is an error.
            match f.filters.iter().find_map(|op| match op {
                FilterOp::Default(d) => Some(d),
                _ => None,
            }) {
                Some(d) => d,
                None => return Err(TemplateError::MissingField(f.text.clone())),
            }
        }
    };
    if let Some(spec) = &f.spec {
        return Ok(Value::String(spec.apply(&f.text, base)?));
    }
    let mut cur = base.clone();
    for op in &f.filters {
        cur = apply_filter(op, &f.text, cur)?;
    }
    Ok(match cur {
        Value::String(s) => Value::String(s),
        other if f.filters.last() == Some(&FilterOp::Json) => other,
        other => Value::String(display(&other)),
    })
}

fn apply_filter(op: &FilterOp, path: &str, v: Value) -> Result<Value, TemplateError> {
    let num = |v: &Value| {
        v.as_f64().ok_or(TemplateError::WrongType {
            path: path.to_owned(),
            expected: "a number",
            found: type_name(v),
        })
    };
    Ok(match op {
        FilterOp::Percent(p) => Value::String(format!("{}%", fixed(num(&v)? * 100.0, *p))),
        FilterOp::Round(p) => Value::String(fixed(num(&v)?, *p)),
        FilterOp::Upper => Value::String(display(&v).to_uppercase()),
        FilterOp::Lower => Value::String(display(&v).to_lowercase()),
        FilterOp::Truncate(n) => {
            let s = display(&v);
            if s.chars().count() > *n {
                Value::String(format!("{}…", truncate_chars(&s, n.saturating_sub(1))))
            } else {
                Value::String(s)
            }
        }
        FilterOp::Default(d) => {
            if v.is_null() {
                d.clone()
            } else {
                v
            }
        }
        FilterOp::Json => v,
    })
}
