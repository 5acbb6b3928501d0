//! Settings: broker lists, topic names, librdkafka properties, their
//! validation, and keeping secrets out of `Debug` output and errors.

use std::collections::BTreeMap;
use std::fmt;

use super::error::KafkaError;

/// Anything that names Kafka brokers: `"host:9092"`, `"a:9092,b:9092"`, or a
/// list of `host:port` strings (`["kafka-1:9092", "kafka-2:9092"]`, a `Vec`,
/// a slice).
pub trait IntoBrokers {
    /// The broker addresses, one per entry.
    fn into_brokers(self) -> Vec<String>;
}

fn split_list(s: &str, out: &mut Vec<String>) {
    // An empty string is kept as one empty entry so validation can name it.
    out.extend(s.split(',').map(|b| b.trim().to_owned()));
}

impl IntoBrokers for &str {
    fn into_brokers(self) -> Vec<String> {
        let mut out = Vec::new();
        split_list(self, &mut out);
        out
    }
}
impl IntoBrokers for String {
    fn into_brokers(self) -> Vec<String> {
        self.as_str().into_brokers()
    }
}
impl IntoBrokers for &String {
    fn into_brokers(self) -> Vec<String> {
        self.as_str().into_brokers()
    }
}
impl<S: AsRef<str>> IntoBrokers for Vec<S> {
    fn into_brokers(self) -> Vec<String> {
        self.as_slice().into_brokers()
    }
}
impl<S: AsRef<str>> IntoBrokers for &Vec<S> {
    fn into_brokers(self) -> Vec<String> {
        self.as_slice().into_brokers()
    }
}
impl<S: AsRef<str>> IntoBrokers for &[S] {
    fn into_brokers(self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.len());
        for s in self {
            split_list(s.as_ref(), &mut out);
        }
        out
    }
}
impl<S: AsRef<str>, const N: usize> IntoBrokers for [S; N] {
    fn into_brokers(self) -> Vec<String> {
        self.as_slice().into_brokers()
    }
}
impl<S: AsRef<str>, const N: usize> IntoBrokers for &[S; N] {
    fn into_brokers(self) -> Vec<String> {
        self.as_slice().into_brokers()
    }
}

pub(crate) fn validate_brokers(brokers: &[String]) -> Result<(), KafkaError> {
    if brokers.is_empty() || brokers.iter().all(String::is_empty) {
        return Err(KafkaError::NoBrokers);
    }
    for b in brokers {
        if b.is_empty() {
            return Err(KafkaError::InvalidBroker {
                broker: b.clone(),
                reason: "empty entry in the broker list",
            });
        }
        if b.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(KafkaError::InvalidBroker {
                broker: b.clone(),
                reason: "contains whitespace or control characters",
            });
        }
        if let Some((_, port)) = b.rsplit_once(':')
            && !port.is_empty()
            && !port.ends_with(']')
            && port.parse::<u16>().is_err()
        {
            return Err(KafkaError::InvalidBroker {
                broker: b.clone(),
                reason: "the port is not a number from 0 to 65535",
            });
        }
    }
    Ok(())
}

/// Longest topic name Kafka accepts.
const MAX_TOPIC_LEN: usize = 249;

pub(crate) fn validate_topic(topic: &str) -> Result<(), KafkaError> {
    let reason = if topic.is_empty() {
        Some("it is empty")
    } else if topic.len() > MAX_TOPIC_LEN {
        Some("it is longer than 249 characters")
    } else if topic == "." || topic == ".." {
        Some("'.' and '..' are not allowed")
    } else if !topic
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Some("only ASCII letters, digits, '.', '_' and '-' are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(KafkaError::InvalidTopic {
            topic: topic.chars().take(64).collect(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Whether a librdkafka property holds a secret whose value must never be
/// shown (passwords, private keys, tokens, JAAS or OAuth configuration).
pub(crate) fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "jaas",
        "oauthbearer.config",
        "private",
    ]
    .iter()
    .any(|s| key.contains(s))
        || key.starts_with("ssl.key")
        || key.ends_with(".pem")
}

/// librdkafka properties, as given by the user, with secrets redacted from
/// `Debug` output.
#[derive(Clone, Default)]
pub(crate) struct Settings {
    map: BTreeMap<String, String>,
}

impl Settings {
    pub(crate) fn set(&mut self, key: String, value: String) {
        self.map.insert(key, value);
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.map.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Replaces every secret value that occurs in `text` (e.g. an error
    /// message from librdkafka that quotes a value) with `[redacted]`.
    pub(crate) fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (k, v) in &self.map {
            if is_secret(k) && !v.is_empty() {
                out = out.replace(v.as_str(), "[redacted]");
            }
        }
        out
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.map.iter().map(|(k, v)| {
                (
                    k,
                    if is_secret(k) {
                        "[redacted]"
                    } else {
                        v.as_str()
                    },
                )
            }))
            .finish()
    }
}

/// Parses a librdkafka boolean property the way librdkafka does.
pub(crate) fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "1" => Some(true),
        "false" | "f" | "0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_lists() {
        assert_eq!("a:1, b:2".into_brokers(), ["a:1", "b:2"]);
        assert_eq!(["a:1", "b:2"].into_brokers(), ["a:1", "b:2"]);
        assert_eq!(vec!["a:1,b:2".to_owned()].into_brokers(), ["a:1", "b:2"]);
        assert!(matches!(
            validate_brokers(&"".into_brokers()),
            Err(KafkaError::NoBrokers)
        ));
        assert!(matches!(
            validate_brokers(&"a:1,,b:2".into_brokers()),
            Err(KafkaError::InvalidBroker { .. })
        ));
        assert!(matches!(
            validate_brokers(&"a:99999".into_brokers()),
            Err(KafkaError::InvalidBroker { .. })
        ));
        assert!(validate_brokers(&"kafka-1:9092,[::1]:9092,host".into_brokers()).is_ok());
    }

    #[test]
    fn topic_names() {
        assert!(validate_topic("ai-decisions.v1_x").is_ok());
        for bad in ["", ".", "..", "a b", "a/b", "a\0b", &"x".repeat(250)] {
            assert!(validate_topic(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn secrets_are_redacted() {
        let mut s = Settings::default();
        s.set("sasl.password".into(), "hunter2".into());
        s.set("ssl.key.pem".into(), "PRIVATE".into());
        s.set("acks".into(), "all".into());
        let debug = format!("{s:?}");
        assert!(!debug.contains("hunter2") && !debug.contains("PRIVATE"));
        assert!(debug.contains("\"acks\": \"all\""));
        assert_eq!(
            s.redact("bad value \"hunter2\" for sasl.password"),
            "bad value \"[redacted]\" for sasl.password"
        );
    }
}
