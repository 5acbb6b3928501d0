//! The small languages that pick events and shape payloads: declarative
//! [`filter`]s (`confidence > 0.85 and severity in [high, critical]`) and
//! payload [`template`]s (`{prediction}`, `{{data.score | percent}}`).
//!
//! They need only an [`Event`](crate::Event), so they work with any
//! subscriber: a filter is a condition you can write in a config file, and
//! webhooks use both (as [`hookbus::webhook::Filter`](crate::expr::Filter)
//! and `Template`, the same types). Both name values with the same field
//! paths: `x.y` or `data.x.y` inside the payload (`items.0` or `items[0]`
//! for arrays), `event.type`, `event.time`, `event.subject`,
//! `event.<extension>` for attributes, and a plain `id`, `type`, `source`,
//! `time` or `subject` falls back to the attribute when the payload has no
//! such field.
//!
//! ```
//! use hookbus::Event;
//! use hookbus::expr::{Filter, Template};
//! use serde_json::json;
//!
//! let e = Event::builder("alert.triggered")
//!     .data(json!({"confidence": 0.91, "service": "checkout"}))
//!     .extension("tenant", "acme")
//!     .build()?;
//! let f: Filter = "confidence > 0.85 and event.tenant == acme".parse()?;
//! assert!(f.matches(&e));
//! let t = Template::new(json!({"text": "{service}: {confidence:.0%} ({{event.tenant}})"}))?;
//! assert_eq!(t.render(&e)?["text"], "checkout: 91% (acme)");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod filter;
pub(crate) mod path;
pub mod template;

pub use filter::{Filter, FilterError};
pub use template::{Template, TemplateError};
