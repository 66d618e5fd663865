//! koor: a coordination server for AI coding agents.
//!
//! One binary, one SQLite file. Each domain (state, events, instances, …) is an actix
//! actor that is the only owner of its tables; HTTP handlers, WebSocket sessions and MCP
//! tools are thin adapters that send the domain's messages (carrying who is calling) and
//! map replies to the wire. Every write goes one way ([`batch`]): the owning actor
//! group-commits its rows, their audit entries and their events in one transaction
//! ([`journal`]), then answers; the event bus fans committed events out in id order.
//! [`app`] is the composition root: config, database, migrations, actors, listeners.
//! Errors of every domain map to one status table in [`error`]. The `koor` CLI ([`cli`])
//! is both the server (`koor serve`) and a REST client for every domain.
//!
//! Layout: `config` (settings, defined once), `db` (SQLite connection), `batch` (the
//! write path), `journal` (audit chain and event ids), `leases` (fencing tokens and the
//! lease sweeper), `http` (auth, caller, body limits, health), `supervise` (panic-safe
//! workers), `telemetry` (Prometheus), `mcp`, `dashboard`, `cli`, and one folder per
//! domain: `state`, `specs`, `events`, `instances`, `liveness`, `metrics`, `rules`,
//! `contracts`, `compliance`, `templates`, `webhooks`, `audit`, `llm`.

pub mod admin;
pub mod app;
pub mod audit;
pub mod batch;
pub mod cli;
pub mod cluster;
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
pub mod keys;
pub mod leases;
pub mod liveness;
pub mod llm;
pub mod locks;
pub mod mcp;
pub mod metrics;
pub mod retention;
pub mod rules;
pub mod specs;
pub mod state;
pub mod supervise;
pub mod tasks;
pub mod telemetry;
pub mod templates;
pub mod time;
pub mod tls;
pub mod topology;
pub mod webhooks;
