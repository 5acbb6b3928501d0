//! Declarative filters: conditions that can be written in a config file.
//!
//! A filter is an expression over the event data:
//!
//! ```text
//! confidence > 0.85
//! severity in [high, critical] and project_id in ["patient-triage", "symptom-checker"]
//! tags contains security or not (score <= 0.5)
//! event.subject == claims_review
//! ```
//!
//! Paths are the same as in templates (see [`crate::expr`]): `x.y` or
//! `data.x.y` inside the data (`items.0` or `items[0]` for arrays);
//! `event.type`, `event.source`, `event.subject`, `event.id`, `event.time`
//! and `event.<extension>` for attributes; a plain `type`, `subject`... that
//! the data does not have falls back to the attribute. Operators: `>`, `>=`, `<`, `<=` (numbers), `==`, `!=`, `in [..]`
//! (for an array field: any element in the list), `contains` (array element or
//! substring), `exists`; combined with `and`, `or`, `not` and parentheses.
//! A field that is missing (or not a number for `>`) makes its comparison false.
//!
//! From a config file (serde), a filter is such a string, or a map in the
//! style of the Rubric docs, each key a path and its value a list (`in`), a
//! scalar (`==`) or `{">": 0.85}`; keys are combined with `and`, and
//! `{"any": [...]}`, `{"all": [...]}`, `{"not": ...}` nest.
//!
//! ```
//! use hookbus::{Event, expr::Filter};
//! use serde_json::json;
//!
//! let f: Filter = "confidence > 0.85 and severity in [high, critical]".parse()?;
//! let hit = Event::new("alert.triggered", json!({"confidence": 0.9, "severity": "high"}))?;
//! let miss = Event::new("alert.triggered", json!({"confidence": 0.9, "severity": "low"}))?;
//! assert!(f.matches(&hit));
//! assert!(!f.matches(&miss));
//!
//! let g: Filter = serde_json::from_value(json!({"severity": ["high", "critical"], "confidence": {">": 0.85}}))?;
//! assert!(g.matches(&hit));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use super::path::resolve_str;
use crate::event::Event;

/// Why a filter could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad filter {text:?}: {message}")]
pub struct FilterError {
    text: String,
    message: String,
}

impl FilterError {
    fn new(text: &str, message: impl Into<String>) -> FilterError {
        FilterError {
            text: text.chars().take(80).collect(),
            message: message.into(),
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CompareOp {
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

/// A parsed declarative filter. See the [module docs](self).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Filter {
    /// `path op value`
    Compare {
        /// The field path.
        path: String,
        /// The operator.
        op: CompareOp,
        /// The value compared with.
        value: Value,
    },
    /// `path in [values]`
    In {
        /// The field path.
        path: String,
        /// The accepted values.
        values: Vec<Value>,
    },
    /// `path contains value`
    Contains {
        /// The field path.
        path: String,
        /// The element or substring.
        value: Value,
    },
    /// `path exists`
    Exists {
        /// The field path.
        path: String,
    },
    /// All must hold.
    All(Vec<Filter>),
    /// At least one must hold.
    Any(Vec<Filter>),
    /// Must not hold.
    Not(Box<Filter>),
}

impl Filter {
    /// Parses an expression.
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        let tokens = lex(text)?;
        let mut p = Parser {
            text,
            tokens,
            pos: 0,
        };
        let f = p.or()?;
        if p.pos != p.tokens.len() {
            return Err(FilterError::new(
                text,
                format!("unexpected {} after a complete condition", p.tokens[p.pos]),
            ));
        }
        Ok(f)
    }

    /// Whether the event passes.
    pub fn matches(&self, event: &Event) -> bool {
        match self {
            Filter::Compare { path, op, value } => {
                let Some(v) = resolve_str(event, path) else {
                    return false;
                };
                match op {
                    CompareOp::Eq => loose_eq(&v, value),
                    CompareOp::Ne => !loose_eq(&v, value),
                    _ => match (v.as_f64(), value.as_f64()) {
                        (Some(a), Some(b)) => match op {
                            CompareOp::Gt => a > b,
                            CompareOp::Ge => a >= b,
                            CompareOp::Lt => a < b,
                            _ => a <= b,
                        },
                        _ => false,
                    },
                }
            }
            Filter::In { path, values } => match resolve_str(event, path).as_deref() {
                Some(Value::Array(items)) => {
                    items.iter().any(|i| values.iter().any(|v| loose_eq(i, v)))
                }
                Some(v) => values.iter().any(|x| loose_eq(v, x)),
                None => false,
            },
            Filter::Contains { path, value } => match resolve_str(event, path).as_deref() {
                Some(Value::Array(items)) => items.iter().any(|i| loose_eq(i, value)),
                Some(Value::String(s)) => value.as_str().is_some_and(|v| s.contains(v)),
                _ => false,
            },
            Filter::Exists { path } => resolve_str(event, path).is_some_and(|v| !v.is_null()),
            Filter::All(fs) => fs.iter().all(|f| f.matches(event)),
            Filter::Any(fs) => fs.iter().any(|f| f.matches(event)),
            Filter::Not(f) => !f.matches(event),
        }
    }

    fn from_repr(v: &Value) -> Result<Filter, FilterError> {
        match v {
            Value::String(s) => Filter::parse(s),
            Value::Array(items) => Ok(Filter::All(
                items
                    .iter()
                    .map(Filter::from_repr)
                    .collect::<Result<_, _>>()?,
            )),
            Value::Object(map) => {
                let mut all = Vec::new();
                for (key, val) in map {
                    all.push(match key.as_str() {
                        "all" | "any" => {
                            let items = val.as_array().ok_or_else(|| {
                                FilterError::new(key, "\"all\"/\"any\" take a list of filters")
                            })?;
                            let fs = items.iter().map(Filter::from_repr).collect::<Result<_, _>>()?;
                            if key == "all" { Filter::All(fs) } else { Filter::Any(fs) }
                        }
                        "not" => Filter::Not(Box::new(Filter::from_repr(val)?)),
                        path => {
                            check_path(path)?;
                            match val {
                                Value::Array(values) => Filter::In {
                                    path: path.to_owned(),
                                    values: values.clone(),
                                },
                                Value::Object(ops) => {
                                    let mut parts = Vec::new();
                                    for (op, value) in ops {
                                        parts.push(match op.as_str() {
                                            "in" => Filter::In {
                                                path: path.to_owned(),
                                                values: value.as_array().cloned().ok_or_else(|| {
                                                    FilterError::new(path, "\"in\" takes a list")
                                                })?,
                                            },
                                            "contains" => Filter::Contains {
                                                path: path.to_owned(),
                                                value: value.clone(),
                                            },
                                            op => Filter::Compare {
                                                path: path.to_owned(),
                                                op: parse_op(op).ok_or_else(|| {
                                                    FilterError::new(
                                                        path,
                                                        format!("unknown operator {op:?} (use >, >=, <, <=, ==, !=, in, contains)"),
                                                    )
                                                })?,
                                                value: value.clone(),
                                            },
                                        });
                                    }
                                    one_or_all(parts)
                                }
                                scalar => Filter::Compare {
                                    path: path.to_owned(),
                                    op: CompareOp::Eq,
                                    value: scalar.clone(),
                                },
                            }
                        }
                    });
                }
                Ok(one_or_all(all))
            }
            other => Err(FilterError::new(
                &other.to_string(),
                "a filter is an expression string or a map of field paths",
            )),
        }
    }
}

fn one_or_all(mut v: Vec<Filter>) -> Filter {
    if v.len() == 1 {
        v.remove(0)
    } else {
        Filter::All(v)
    }
}

impl FromStr for Filter {
    type Err = FilterError;
    fn from_str(s: &str) -> Result<Filter, FilterError> {
        Filter::parse(s)
    }
}

impl<'de> serde::Deserialize<'de> for Filter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Filter, D::Error> {
        let v = Value::deserialize(d)?;
        Filter::from_repr(&v).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
        })
    }
}

fn parse_op(s: &str) -> Option<CompareOp> {
    Some(match s {
        ">" => CompareOp::Gt,
        ">=" => CompareOp::Ge,
        "<" => CompareOp::Lt,
        "<=" => CompareOp::Le,
        "==" | "=" => CompareOp::Eq,
        "!=" => CompareOp::Ne,
        _ => return None,
    })
}

fn loose_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn check_path(path: &str) -> Result<(), FilterError> {
    super::path::check(path).map_err(|message| FilterError::new(path, message))
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(f64),
    Op(CompareOp),
    LBracket,
    RBracket,
    LParen,
    RParen,
    Comma,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Word(w) => write!(f, "{w:?}"),
            Tok::Str(s) => write!(f, "string {s:?}"),
            Tok::Num(n) => write!(f, "number {n}"),
            Tok::Op(o) => write!(f, "'{o}'"),
            Tok::LBracket => f.write_str("'['"),
            Tok::RBracket => f.write_str("']'"),
            Tok::LParen => f.write_str("'('"),
            Tok::RParen => f.write_str("')'"),
            Tok::Comma => f.write_str("','"),
        }
    }
}

fn lex(text: &str) -> Result<Vec<Tok>, FilterError> {
    let c: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        match ch {
            _ if ch.is_whitespace() => i += 1,
            '[' => {
                out.push(Tok::LBracket);
                i += 1
            }
            ']' => {
                out.push(Tok::RBracket);
                i += 1
            }
            '(' => {
                out.push(Tok::LParen);
                i += 1
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1
            }
            '>' | '<' | '=' | '!' => {
                let two = c.get(i + 1) == Some(&'=');
                let s: String = if two {
                    c[i..i + 2].iter().collect()
                } else {
                    ch.to_string()
                };
                let op = parse_op(&s)
                    .ok_or_else(|| FilterError::new(text, format!("unknown operator {s:?}")))?;
                out.push(Tok::Op(op));
                i += s.len();
            }
            '"' | '\'' => {
                let end = (i + 1..c.len())
                    .find(|&j| c[j] == ch)
                    .ok_or_else(|| FilterError::new(text, "unclosed quote"))?;
                out.push(Tok::Str(c[i + 1..end].iter().collect()));
                i = end + 1;
            }
            _ => {
                let start = i;
                loop {
                    while i < c.len()
                        && !c[i].is_whitespace()
                        && !matches!(
                            c[i],
                            '[' | ']' | '(' | ')' | ',' | '>' | '<' | '=' | '!' | '"' | '\''
                        )
                    {
                        i += 1;
                    }
                    // `items[0]`: an index right after a name belongs to the
                    // path (the keyword `in` is followed by a list instead).
                    let word: String = c[start..i].iter().collect();
                    if i < c.len() && c[i] == '[' && i > start && word != "in" {
                        match (i..c.len()).find(|&j| c[j] == ']') {
                            Some(close) => i = close + 1,
                            None => return Err(FilterError::new(text, "unclosed '['")),
                        }
                    } else {
                        break;
                    }
                }
                let w: String = c[start..i].iter().collect();
                match w.parse::<f64>() {
                    Ok(n)
                        if w.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '.') =>
                    {
                        out.push(Tok::Num(n))
                    }
                    _ => out.push(Tok::Word(w)),
                }
            }
        }
    }
    Ok(out)
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<Tok>,
    pos: usize,
}

impl Parser<'_> {
    fn peek_word(&self, w: &str) -> bool {
        matches!(self.tokens.get(self.pos), Some(Tok::Word(x)) if x.eq_ignore_ascii_case(w))
    }
    fn err(&self, m: impl Into<String>) -> FilterError {
        FilterError::new(self.text, m)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn or(&mut self) -> Result<Filter, FilterError> {
        let mut parts = vec![self.and()?];
        while self.peek_word("or") {
            self.pos += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Filter::Any(parts)
        })
    }
    fn and(&mut self) -> Result<Filter, FilterError> {
        let mut parts = vec![self.unary()?];
        while self.peek_word("and") {
            self.pos += 1;
            parts.push(self.unary()?);
        }
        Ok(one_or_all(parts))
    }
    fn unary(&mut self) -> Result<Filter, FilterError> {
        if self.peek_word("not") {
            self.pos += 1;
            return Ok(Filter::Not(Box::new(self.unary()?)));
        }
        if self.tokens.get(self.pos) == Some(&Tok::LParen) {
            self.pos += 1;
            let f = self.or()?;
            if self.next() != Some(Tok::RParen) {
                return Err(self.err("missing ')'"));
            }
            return Ok(f);
        }
        self.comparison()
    }
    fn comparison(&mut self) -> Result<Filter, FilterError> {
        let path = match self.next() {
            Some(Tok::Word(w)) => w,
            Some(t) => return Err(self.err(format!("expected a field name, found {t}"))),
            None => return Err(self.err("expected a condition, found the end")),
        };
        check_path(&path)
            .map_err(|e| self.err(format!("bad field path {path:?}: {}", e.message)))?;
        match self.next() {
            Some(Tok::Op(op)) => Ok(Filter::Compare {
                path,
                op,
                value: self.value()?,
            }),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("in") => {
                if self.next() != Some(Tok::LBracket) {
                    return Err(self.err("'in' must be followed by a list like [a, b]"));
                }
                let mut values = Vec::new();
                loop {
                    if self.tokens.get(self.pos) == Some(&Tok::RBracket) {
                        self.pos += 1;
                        break;
                    }
                    values.push(self.value()?);
                    match self.next() {
                        Some(Tok::Comma) => {}
                        Some(Tok::RBracket) => break,
                        _ => return Err(self.err("expected ',' or ']' in list")),
                    }
                }
                Ok(Filter::In { path, values })
            }
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("contains") => Ok(Filter::Contains {
                path,
                value: self.value()?,
            }),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("exists") => Ok(Filter::Exists { path }),
            Some(t) => Err(self.err(format!(
                "expected an operator (>, >=, <, <=, ==, !=, in, contains, exists) after {path:?}, found {t}"
            ))),
            None => Err(self.err(format!("expected an operator after {path:?}"))),
        }
    }
    fn value(&mut self) -> Result<Value, FilterError> {
        match self.next() {
            Some(Tok::Num(n)) => Ok(serde_json::Number::from_f64(n)
                .map(Value::Number)
                .unwrap_or(Value::Null)),
            Some(Tok::Str(s)) => Ok(Value::String(s)),
            Some(Tok::Word(w)) => Ok(match w.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                _ => Value::String(w),
            }),
            Some(t) => Err(self.err(format!("expected a value, found {t}"))),
            None => Err(self.err("expected a value, found the end")),
        }
    }
}
