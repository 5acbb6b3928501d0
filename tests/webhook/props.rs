//! Property tests: parsers never panic; header encoding is valid and lossless.

use hookbus::Event;
use hookbus::webhook::wire::encode_header_value;
use hookbus::webhook::{Filter, Template};
use proptest::prelude::*;
use serde_json::{Value, json};

fn event() -> Event {
    Event::new(
        "a.b",
        json!({"x": 1.5, "s": "text", "a": [1, 2], "o": {"k": null}}),
    )
    .unwrap()
}

proptest! {
    #[test]
    fn header_values_are_visible_ascii_and_decode_back(s in any::<String>()) {
        let enc = encode_header_value(&s);
        prop_assert!(enc.bytes().all(|b| (0x21..=0x7e).contains(&b)));
        prop_assert!(!enc.contains('"'));
        let dec = percent_encoding::percent_decode_str(&enc).decode_utf8().unwrap();
        prop_assert_eq!(dec, s);
    }

    #[test]
    fn templates_never_panic(s in "[{}a-z0-9_.:%,|()'\\[\\] \\\\+-]{0,40}") {
        if let Ok(t) = Template::new(Value::String(s)) {
            let _ = t.render(&event());
        }
    }

    #[test]
    fn filters_never_panic(s in "[a-z0-9_. <>=!'\"\\[\\](),-]{0,40}") {
        if let Ok(f) = Filter::parse(&s) {
            let _ = f.matches(&event());
        }
    }
}
