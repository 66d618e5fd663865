//! koor: a coordination server for AI coding agents.
//!
//! One binary, one SQLite file. Each domain (state, events, …) is an actix actor that is
//! the only owner of its tables; HTTP handlers (and later WebSocket sessions and MCP
//! tools) are thin adapters that send the domain's messages and map replies to the wire.
//! [`app::Application::build`] is the composition root: it opens the database, runs the
//! migrations, starts the actors and binds the HTTP server. Errors of every domain map to
//! one status table in [`error`]. The `koor` CLI (in [`cli`]) is both the server
//! (`koor serve`) and a REST client for every domain.
//!
//! Layout: `config` (settings), `db` (SQLite connection), `http` (auth, body limits,
//! fallbacks, health), one folder per domain (`state`, `events`, `instances`, `liveness`, `metrics`),
//! `batch` (group commit), `supervise` (panic-safe workers), `cli`.

pub mod app;
pub mod audit;
pub mod batch;
pub mod cli;
pub mod compliance;
pub mod config;
pub mod contracts;
pub mod dashboard;
pub mod db;
pub mod error;
pub mod events;
pub mod http;
pub mod instances;
pub mod journal;
pub mod leases;
pub mod liveness;
pub mod llm;
pub mod locks;
pub mod mcp;
pub mod metrics;
pub mod rules;
pub mod specs;
pub mod state;
pub mod supervise;
pub mod telemetry;
pub mod templates;
pub mod time;
pub mod webhooks;
