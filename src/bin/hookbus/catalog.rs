//! `hookbus catalog [--json-schema] [TYPE]`: the standard event catalogs
//! (`hookbus::catalog`), as a list, one event's fields and example data, or
//! the JSON Schemas of their data.

use std::io::{self, Write};

use hookbus::catalog::{self, CatalogEntry};

use crate::{EXIT_IO, Failure};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Print the JSON Schema (draft 2020-12) of the event's data; without
    /// TYPE, one JSON object with every catalog type's schema.
    #[arg(long)]
    json_schema: bool,
    /// A catalog event type, e.g. decision.low_confidence: print its
    /// description, fields and example data.
    #[arg(value_name = "TYPE")]
    event_type: Option<String>,
}

pub(crate) fn run(args: Args) -> Result<(), Failure> {
    let entry = match &args.event_type {
        Some(t) => Some(catalog::lookup(t).ok_or_else(|| {
            Failure::input(format!(
                "error: `{t}` is not a catalog event type; `hookbus catalog` lists them"
            ))
        })?),
        None => None,
    };
    let text = match (args.json_schema, entry) {
        (false, None) => list(),
        (false, Some(entry)) => describe(entry),
        (true, Some(entry)) => pretty(&schema(entry)),
        (true, None) => {
            let all: serde_json::Map<String, serde_json::Value> = catalog::ALL
                .iter()
                .map(|e| (e.event_type.to_owned(), schema(e)))
                .collect();
            pretty(&serde_json::Value::Object(all))
        }
    };
    print(&text)
}

/// One line per catalog type: the type and when it is emitted.
fn list() -> String {
    let width = catalog::ALL
        .iter()
        .map(|e| e.event_type.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for e in catalog::ALL {
        out.push_str(&format!("{:width$}  {}\n", e.event_type, e.description));
    }
    out.push_str(&format!(
        "\n{} event types. `hookbus catalog TYPE` shows one with example data; \
         --json-schema prints the schemas.\n",
        catalog::ALL.len()
    ));
    out
}

/// A type's description, fields and example data (as written, keys in
/// field order).
fn describe(entry: &CatalogEntry) -> String {
    format!(
        "type:     {}\nwhen:     {}\nfields:   {}\nexample:  {}\n",
        entry.event_type,
        entry.description,
        entry.fields.join(", "),
        entry.example
    )
}

fn schema(entry: &CatalogEntry) -> serde_json::Value {
    // Every entry of catalog::ALL has a schema (tests/catalog.rs checks it).
    catalog::json_schema(entry.event_type).unwrap_or(serde_json::Value::Bool(true))
}

fn pretty(value: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    text.push('\n');
    text
}

/// Writes to stdout; a closed pipe (`hookbus catalog | head`) is not an error.
fn print(text: &str) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure {
            code: EXIT_IO,
            message: format!("error: cannot write to stdout: {e}"),
        }),
    }
}
