#![cfg(feature = "cli")]
//! `hookbus catalog [--json-schema] [TYPE]`: the list, one type with its
//! example, the schemas, and an unknown type.

use std::process::{Command, Output};

use hookbus::catalog;

const BIN: &str = env!("CARGO_BIN_EXE_hookbus");

fn catalog(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("catalog")
        .args(args)
        .output()
        .expect("run hookbus catalog")
}

#[track_caller]
fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn lists_every_catalog_type() {
    let text = stdout(&catalog(&[]));
    for e in catalog::ALL {
        assert!(
            text.lines()
                .any(|l| l.starts_with(e.event_type) && l.ends_with(e.description)),
            "no line for {} in:\n{text}",
            e.event_type
        );
    }
}

#[test]
fn one_type_shows_its_fields_and_example() {
    let text = stdout(&catalog(&["decision.low_confidence"]));
    assert!(
        text.contains("decision_id, confidence, threshold"),
        "{text}"
    );
    assert!(
        text.contains(catalog::decision::LowConfidence::EXAMPLE),
        "{text}"
    );
}

#[test]
fn json_schema_of_one_type_and_of_all() {
    let one: serde_json::Value =
        serde_json::from_str(&stdout(&catalog(&["--json-schema", "sample.scored"]))).unwrap();
    assert_eq!(Some(one.clone()), catalog::json_schema("sample.scored"));
    assert_eq!(one["title"], "sample.scored");

    let all: serde_json::Value =
        serde_json::from_str(&stdout(&catalog(&["--json-schema"]))).unwrap();
    let all = all.as_object().unwrap();
    assert_eq!(all.len(), catalog::ALL.len());
    for e in catalog::ALL {
        assert_eq!(
            Some(&all[e.event_type]),
            catalog::json_schema(e.event_type).as_ref()
        );
    }
}

#[test]
fn an_unknown_type_exits_2_and_says_where_to_look() {
    for args in [&["no.such.event"][..], &["--json-schema", "no.such.event"]] {
        let out = catalog(args);
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("`no.such.event` is not a catalog event type"),
            "{stderr}"
        );
        assert!(stderr.contains("hookbus catalog"), "{stderr}");
        assert!(out.stdout.is_empty());
    }
}
