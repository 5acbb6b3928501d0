//! Webhook delivery, grouped by behaviour: one test crate, one module per
//! behaviour, all against real axum receivers on 127.0.0.1.
#![cfg(feature = "webhook")]

#[path = "../tls_support/mod.rs"]
mod tls_support;
#[path = "../webhook_support/mod.rs"]
mod webhook_support;

mod adaptive;
mod config;
mod edges;
mod load;
mod logs;
mod manager;
mod mtls;
mod oauth2;
mod presets;
mod props;
mod proxy;
mod rate_limit;
mod retry;
mod safety;
mod settings;
mod signing;
mod templates;
mod trouble;
mod wire;
