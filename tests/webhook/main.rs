//! Webhook delivery, grouped by behaviour: one test crate, one module per
//! behaviour, all against real axum receivers on 127.0.0.1.
#![cfg(feature = "webhook")]

#[path = "../webhook_support/mod.rs"]
mod webhook_support;

mod edges;
mod logs;
mod settings;
mod trouble;
