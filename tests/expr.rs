//! Filters, templates and ordering keys name values the same way: one field
//! path resolver (before, filters read extensions as strings and knew no
//! `event.time`, templates did; the Kafka key knew only the payload).

use hookbus::Event;
use hookbus::expr::{Filter, Template};
use serde_json::json;

fn event() -> Event {
    Event::builder("claim.filed")
        .data(json!({"amount": 120, "items": [{"sku": "A-1"}], "type": "auto"}))
        .subject("claims/9")
        .extension("attempt", 2)
        .extension("priority", true)
        .extension("tenant", "acme")
        .build()
        .unwrap()
}

#[test]
fn filters_and_templates_see_the_same_values() {
    let e = event();
    let cases = [
        ("event.attempt", json!(2)),
        ("event.priority", json!(true)),
        ("event.tenant", json!("acme")),
        ("event.type", json!("claim.filed")),
        ("type", json!("auto")),
        ("subject", json!("claims/9")),
        ("items[0].sku", json!("A-1")),
        ("items.0.sku", json!("A-1")),
        ("data.amount", json!(120)),
    ];
    for (path, want) in cases {
        let t = Template::new(json!({ "v": format!("{{{{{path} | json}}}}") })).unwrap();
        assert_eq!(t.render(&e).unwrap()["v"], want, "template {path}");
        let literal = match &want {
            serde_json::Value::String(s) => format!("\"{s}\""),
            other => other.to_string(),
        };
        let f: Filter = format!("{path} == {literal}").parse().unwrap();
        assert!(f.matches(&e), "filter {path} == {literal}");
    }
    // The time attribute is there for both, as RFC 3339.
    let t = Template::new(json!({"at": "{{event.time}}"})).unwrap();
    let at = t.render(&e).unwrap()["at"].as_str().unwrap().to_owned();
    let f: Filter = format!("event.time == \"{at}\"").parse().unwrap();
    assert!(f.matches(&e));
    assert!("event.time exists".parse::<Filter>().unwrap().matches(&e));
}

#[test]
fn a_bad_path_is_refused_by_both_with_the_same_reason() {
    let f = "items[x] == 1".parse::<Filter>().unwrap_err().to_string();
    let t = Template::new(json!({"v": "{{items[x]}}"}))
        .unwrap_err()
        .to_string();
    assert!(f.contains("must be a number"), "{f}");
    assert!(t.contains("must be a number"), "{t}");
}
