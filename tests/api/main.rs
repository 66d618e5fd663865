//! The integration suite: one binary, the real server on 127.0.0.1:0 with a temp-dir
//! database and the real migrations (see `helpers::TestApp`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod audit;
mod auth;
mod bounds;
mod cli;
mod cluster;
mod compliance;
mod contracts;
mod crash;
mod dashboard;
mod events;
mod helpers;
mod http;
mod instances;
mod keys;
mod liveness;
mod llm;
mod locks;
mod mcp;
mod metrics;
mod migrations;
mod openapi;
mod ops;
mod postgres;
mod retention;
mod rules;
mod specs;
mod state;
mod tasks;
mod telemetry;
mod templates;
mod topology;
mod validation;
mod webhooks;
mod write_path;
