//! Subscription patterns over event types, in the style of EventEmitter2.
//!
//! Event types are split into segments at `.`. A pattern is a list of segments
//! where each segment is either literal text, `*` (exactly one segment) or `**`
//! (zero or more segments). The pattern `*` alone matches every event (unlike
//! EventEmitter2, where it matches only one-segment types).
//!
//! | pattern            | matches                                   | does not match         |
//! |--------------------|-------------------------------------------|------------------------|
//! | `decision.captured`| `decision.captured`                       | `decision.captured.v2` |
//! | `decision.*`       | `decision.captured`                       | `decision`, `decision.a.b` |
//! | `decision.**`      | `decision`, `decision.a`, `decision.a.b`  | `decisions.a`          |
//! | `**.failed`        | `failed`, `evaluation.failed`             | `failed.x`             |
//! | `*`                | everything                                |                        |
//!
//! ```
//! use hookbus::Pattern;
//!
//! let p: Pattern = "decision.*".parse()?;
//! assert!(p.matches("decision.low_confidence"));
//! assert!(!p.matches("decision.drift.detected"));
//! assert!("decision.*x".parse::<Pattern>().is_err());
//! # Ok::<(), hookbus::PatternError>(())
//! ```

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatternError {
    /// The pattern is empty.
    #[error("pattern is empty; use \"*\" to match every event")]
    Empty,
    /// A list of patterns has none.
    #[error("no patterns given; name at least one (\"*\" matches every event)")]
    NoPatterns,
    /// The pattern is longer than 255 bytes.
    #[error("pattern is {0} bytes long; the limit is 255")]
    TooLong(usize),
    /// A segment between dots is empty (`a..b`, `.a`, `a.`).
    #[error("pattern {pattern:?} has an empty segment; segments are separated by single dots")]
    EmptySegment {
        /// The pattern.
        pattern: String,
    },
    /// A wildcard shares its segment with other characters (`dec*`).
    #[error(
        "pattern {pattern:?}: segment {segment:?} mixes '*' with text; a wildcard must be a whole segment (\"*\" or \"**\")"
    )]
    PartialWildcard {
        /// The pattern.
        pattern: String,
        /// The offending segment.
        segment: String,
    },
    /// A character outside `[A-Za-z0-9_-]` (and `.`, `*`).
    #[error(
        "pattern {pattern:?} has {ch:?}; only ASCII letters, digits, '_', '-', '.' and '*' are allowed"
    )]
    InvalidChar {
        /// The pattern.
        pattern: String,
        /// The offending character.
        ch: char,
    },
    /// Two `**` segments next to each other.
    #[error("pattern {pattern:?} has \"**.**\"; one \"**\" already matches any depth")]
    AdjacentGlobstars {
        /// The pattern.
        pattern: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Segment {
    Literal(Box<str>),
    One,
    Any,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Kind {
    All,
    Exact,
    /// `literal.prefix.*`: one more segment after the prefix.
    OneBelow,
    /// `literal.prefix.**`: the prefix itself or anything below it.
    Subtree,
    Wild(Box<[Segment]>),
}

/// A validated subscription pattern. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Pattern {
    text: Arc<str>,
    kind: Kind,
    /// Literal text every matching type starts with (a quick reject).
    prefix_len: usize,
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", &*self.text)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Pattern {
    type Err = PatternError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Pattern::new(s)
    }
}

impl TryFrom<&str> for Pattern {
    type Error = PatternError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Pattern::new(s)
    }
}

impl TryFrom<String> for Pattern {
    type Error = PatternError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Pattern::new(&s)
    }
}

impl TryFrom<&String> for Pattern {
    type Error = PatternError;
    fn try_from(s: &String) -> Result<Self, Self::Error> {
        Pattern::new(s)
    }
}

impl TryFrom<&Pattern> for Pattern {
    type Error = PatternError;
    fn try_from(p: &Pattern) -> Result<Self, Self::Error> {
        Ok(p.clone())
    }
}

impl Pattern {
    /// Parses and validates a pattern.
    pub fn new(text: &str) -> Result<Pattern, PatternError> {
        if text.is_empty() {
            return Err(PatternError::Empty);
        }
        if text.len() > 255 {
            return Err(PatternError::TooLong(text.len()));
        }
        if let Some(ch) = text
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '*')))
        {
            return Err(PatternError::InvalidChar {
                pattern: text.to_owned(),
                ch,
            });
        }
        if text == "*" || text == "**" {
            return Ok(Pattern {
                text: text.into(),
                kind: Kind::All,
                prefix_len: 0,
            });
        }
        let mut segments = Vec::new();
        for seg in text.split('.') {
            let s = match seg {
                "" => {
                    return Err(PatternError::EmptySegment {
                        pattern: text.to_owned(),
                    });
                }
                "*" => Segment::One,
                "**" => {
                    if segments.last() == Some(&Segment::Any) {
                        return Err(PatternError::AdjacentGlobstars {
                            pattern: text.to_owned(),
                        });
                    }
                    Segment::Any
                }
                lit if lit.contains('*') => {
                    return Err(PatternError::PartialWildcard {
                        pattern: text.to_owned(),
                        segment: lit.to_owned(),
                    });
                }
                lit => Segment::Literal(lit.into()),
            };
            segments.push(s);
        }
        let literal_prefix: usize = segments
            .iter()
            .take_while(|s| matches!(s, Segment::Literal(_)))
            .map(|s| match s {
                Segment::Literal(l) => l.len() + 1,
                _ => 0,
            })
            .sum();
        let literals = segments
            .iter()
            .take_while(|s| matches!(s, Segment::Literal(_)))
            .count();
        // The common shapes get matchers that need no segment walk.
        let kind = if literals == segments.len() {
            Kind::Exact
        } else if literals + 1 == segments.len() && literals > 0 {
            match segments[literals] {
                Segment::One => Kind::OneBelow,
                _ => Kind::Subtree,
            }
        } else {
            Kind::Wild(segments.into_boxed_slice())
        };
        Ok(Pattern {
            text: text.into(),
            kind,
            // The prefix includes the dot after the literal segments, except
            // where `**` may match zero segments (`a.**` matches `a`).
            prefix_len: literal_prefix.saturating_sub(1),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether this pattern matches every event type.
    pub fn is_catch_all(&self) -> bool {
        matches!(self.kind, Kind::All)
    }

    /// Whether this pattern is one literal event type (no wildcard).
    pub fn is_exact(&self) -> bool {
        matches!(self.kind, Kind::Exact)
    }

    /// The literal first segment every matching type starts with, if the
    /// pattern has one (`None` for `*` and for patterns that start with a
    /// wildcard).
    pub fn first_literal(&self) -> Option<&str> {
        match &self.kind {
            Kind::All => None,
            Kind::Exact => self.text.split('.').next(),
            Kind::OneBelow | Kind::Subtree => self.text.split('.').next(),
            Kind::Wild(segments) => match segments.first() {
                Some(Segment::Literal(l)) => Some(l),
                _ => None,
            },
        }
    }

    /// The pattern's segments (`*` and `**` alone are one `Any`).
    pub(crate) fn segments(&self) -> Vec<Segment> {
        match &self.kind {
            Kind::All => vec![Segment::Any],
            Kind::Wild(segments) => segments.to_vec(),
            _ => self
                .text
                .split('.')
                .map(|s| match s {
                    "*" => Segment::One,
                    "**" => Segment::Any,
                    lit => Segment::Literal(lit.into()),
                })
                .collect(),
        }
    }

    /// Whether `event_type` matches. A type with an empty segment (`a.`,
    /// `a..b`, `.a`) is not a valid event type and matches no wildcard.
    pub fn matches(&self, event_type: &str) -> bool {
        match &self.kind {
            Kind::All => true,
            Kind::Exact => *self.text == *event_type,
            Kind::OneBelow => {
                // `a.b.*`: "a.b." then one non-empty segment without a dot.
                let prefix = &self.text.as_bytes()[..self.text.len() - 1];
                let ty = event_type.as_bytes();
                ty.len() > prefix.len()
                    && ty.starts_with(prefix)
                    && !ty[prefix.len()..].contains(&b'.')
            }
            Kind::Subtree => {
                // `a.b.**`: "a.b" itself, or "a.b." and non-empty segments after.
                let base = &self.text.as_bytes()[..self.text.len() - 3];
                let ty = event_type.as_bytes();
                ty == base
                    || (ty.starts_with(base)
                        && ty.get(base.len()) == Some(&b'.')
                        && segments_non_empty(&event_type[base.len() + 1..]))
            }
            Kind::Wild(segments) => {
                if !segments_non_empty(event_type) {
                    return false;
                }
                if !event_type
                    .as_bytes()
                    .starts_with(&self.text.as_bytes()[..self.prefix_len])
                {
                    return false;
                }
                match_segments(segments, event_type)
            }
        }
    }
}

/// No empty segment: not empty, no leading, trailing or doubled dot.
fn segments_non_empty(s: &str) -> bool {
    !s.is_empty() && !s.starts_with('.') && !s.ends_with('.') && !s.contains("..")
}

fn match_segments(pattern: &[Segment], ty: &str) -> bool {
    // Iterative glob matching over segments with one backtrack point for the
    // last `**` seen: linear in practice, no recursion, no allocation.
    let mut rest = Some(ty);
    let mut p = 0;
    let mut backtrack: Option<(usize, Option<&str>)> = None;
    loop {
        if p == pattern.len() {
            if rest.is_none() {
                return true;
            }
        } else {
            match &pattern[p] {
                Segment::Any => {
                    backtrack = Some((p, rest));
                    p += 1;
                    continue;
                }
                seg => {
                    if let Some(r) = rest {
                        let (head, tail) = match r.find('.') {
                            Some(i) => (&r[..i], Some(&r[i + 1..])),
                            None => (r, None),
                        };
                        let ok = match seg {
                            Segment::One => true,
                            Segment::Literal(l) => **l == *head,
                            Segment::Any => unreachable!(),
                        };
                        if ok {
                            rest = tail;
                            p += 1;
                            continue;
                        }
                    }
                }
            }
        }
        // Mismatch: let the last `**` swallow one more segment.
        match backtrack {
            Some((bp, Some(r))) => {
                let tail = r.find('.').map(|i| &r[i + 1..]);
                backtrack = Some((bp, tail));
                rest = tail;
                p = bp + 1;
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globstar_backtracks() {
        let p = Pattern::new("**.a.**.b").unwrap();
        assert!(p.matches("a.b"));
        assert!(p.matches("x.a.y.z.b"));
        assert!(!p.matches("x.a.y.b.c"));
        assert!(p.matches("a.b.b"));
    }
}
