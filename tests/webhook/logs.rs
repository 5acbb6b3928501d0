//! Captures what the crate logs (a `tracing` layer on the registry), so a
//! test can say what was written at which level.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tracing::Level;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// One log line: its level and its fields (`message` included), as text.
#[derive(Debug, Clone)]
pub struct Line {
    pub level: Level,
    pub fields: BTreeMap<String, String>,
}

impl Line {
    pub fn message(&self) -> &str {
        self.fields.get("message").map_or("", String::as_str)
    }
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<Line>>>);

impl Captured {
    /// The lines so far whose message contains `text`, about a webhook
    /// whose name starts with `webhook`.
    pub fn lines(&self, text: &str, webhook: &str) -> Vec<Line> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.message().contains(text))
            .filter(|l| l.field("webhook").is_some_and(|w| w.starts_with(webhook)))
            .cloned()
            .collect()
    }
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: tracing::Subscriber> Layer<S> for Captured {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if !event.metadata().target().starts_with("hookbus") {
            return;
        }
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.0.lock().unwrap().push(Line {
            level: *event.metadata().level(),
            fields,
        });
    }
}

/// The log of the whole test binary, captured from the first call on (a
/// global subscriber: thread-local ones miss events whose callsites other
/// tests' threads registered first). Tests tell their lines apart by the
/// `webhook` field: give each test's webhooks names of their own.
pub fn capture() -> Captured {
    static GLOBAL: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    GLOBAL
        .get_or_init(|| {
            let captured = Captured::default();
            let subscriber = tracing_subscriber::registry().with(captured.clone());
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global subscriber in this test binary");
            captured
        })
        .clone()
}
