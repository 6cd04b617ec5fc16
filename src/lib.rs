//! switchboard: a real-time media server for telephony streams.

pub mod app;
pub mod call;
pub mod center;
pub mod cli;
pub mod client;
pub mod config;
pub mod dialog;
pub mod error;
pub mod http;
pub mod ids;
pub mod monitor;
pub mod shutdown;
pub mod speech;
pub mod store;
pub mod telemetry;
pub mod transport;
