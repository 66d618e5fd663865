//! A cluster of koor members on one PostgreSQL database (API §27).
//!
//! Owns: the `cluster_leader` row (through [`election`]) and the `cluster_members` rows
//! (each member its own); nothing of any domain.
//!
//! - **Leadership** ([`election`]): the member holding the session advisory lock
//!   [`crate::db::SERVER_LOCK`] leads. On taking it, it ends every session of the member
//!   named in `cluster_leader`, raises the epoch and names itself, under the write lock. It
//!   proves it is alive every second; a leader silent for `--failover-seconds` (paused,
//!   cut off) is deposed the same way by the first follower to notice. Every write
//!   transaction reads the row ([`crate::db::begin_write`]) and rolls back unless it names
//!   the member its connection belongs to, so a deposed leader cannot commit.
//! - **Forwarding** ([`forward`]): a follower answers the reads it can answer exactly
//!   (state, specs, events, `/health`, `/api/cluster`) and forwards every other request to
//!   the leader with the caller's method, path, headers and body.
//! - **Replication** ([`replica`]): a follower tails the `events` table, woken by
//!   `LISTEN`/`NOTIFY` (a wake-up only: the table is the truth), hands each event in id
//!   order to its own event bus (its WebSocket and long-poll clients) and reloads the state,
//!   spec and key caches the event names.
//!
//! Messages in: `CatchUp` (the replica). Out: `Committed` (the follower's bus), `Reload`
//! (the follower's state and spec stores).

pub mod election;
pub mod forward;
pub mod replica;
mod routes;

pub use routes::routes;

use std::sync::{Arc, RwLock};

use serde::Serialize;

/// What this process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The only server of a SQLite file.
    Single,
    /// The member of a PostgreSQL cluster that writes.
    Leader,
    /// A member that reads, streams events and forwards writes.
    Follower,
}

/// This member's view of the cluster, shared by `/health`, the forwarder and the election.
#[derive(Clone, Debug)]
pub struct View(Arc<RwLock<Seen>>);

/// What [`View`] holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub role: Role,
    /// The leader's advertised URL.
    pub leader: String,
    /// The leader's epoch (0 when unknown or on SQLite).
    pub epoch: i64,
}

impl View {
    pub fn new(role: Role, leader: String, epoch: i64) -> View {
        View(Arc::new(RwLock::new(Seen {
            role,
            leader,
            epoch,
        })))
    }

    pub fn get(&self) -> Seen {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set(&self, seen: Seen) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = seen;
    }
}

/// This process as a member: its id (also the `application_name` of each of its database
/// sessions) and its advertised URL.
#[derive(Clone, Debug)]
pub struct Member {
    pub id: String,
    pub url: String,
}

impl Member {
    /// A new member id for this process.
    pub fn new(url: String) -> Member {
        Member {
            id: format!("koor-{}", uuid::Uuid::new_v4().simple()),
            url,
        }
    }
}

/// `url` with `application_name` set to `member`, so that every session of this process
/// can be told apart (and ended) by the others.
pub fn tagged_url(url: &str, member: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}application_name={member}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_tagged_with_the_member() {
        assert_eq!(
            tagged_url("postgres://u@h/db", "koor-1"),
            "postgres://u@h/db?application_name=koor-1"
        );
        assert_eq!(
            tagged_url("postgres://u@h/db?sslmode=disable", "koor-1"),
            "postgres://u@h/db?sslmode=disable&application_name=koor-1"
        );
    }

    #[test]
    fn member_ids_differ_and_need_no_escaping() {
        let (a, b) = (Member::new("u".into()), Member::new("u".into()));
        assert_ne!(a.id, b.id);
        assert!(a.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }
}
