//! The fencing-token counter: one server-wide sequence, shared by every lease owner.
//!
//! Tokens are drawn in memory (an atomic shared by the owners, so two owners never draw
//! the same token) and persisted inside the transaction that grants the lease: the stored
//! counter becomes `max(stored, highest token the transaction grants)`. A lease is
//! answered only after that commit, so every token anyone has seen is at most the stored
//! counter, and a restart continues above it. A transaction that fails leaves a gap,
//! never a reuse.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use sea_orm::{ConnectionTrait, DbErr, Statement};

/// Handle to the counter (cheap to clone).
#[derive(Clone, Debug, Default)]
pub struct Fencing {
    last: Arc<AtomicI64>,
}

impl Fencing {
    /// Reads the stored counter.
    pub async fn load<C: ConnectionTrait>(db: &C) -> Result<Self, DbErr> {
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT COALESCE(MAX(last_token), 0) FROM fencing_counter",
            ))
            .await?;
        let last = match row {
            Some(r) => r.try_get_by_index::<i64>(0)?,
            None => 0,
        };
        Ok(Self {
            last: Arc::new(AtomicI64::new(last)),
        })
    }

    /// The next token: larger than every token drawn before, by any owner.
    pub fn draw(&self) -> i64 {
        self.last.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// The highest token drawn so far.
    pub fn last(&self) -> i64 {
        self.last.load(Ordering::Acquire)
    }

    /// Raises the stored counter to `token` through `txn` (a write transaction the caller
    /// commits before handing the token out).
    pub async fn persist_in<C: ConnectionTrait>(txn: &C, token: i64) -> Result<(), DbErr> {
        let backend = txn.get_database_backend();
        txn.execute_raw(crate::db::statement(
            backend,
            format!(
                "INSERT INTO fencing_counter (id, last_token) VALUES (1, ?) \
                 ON CONFLICT (id) DO UPDATE SET last_token = {}",
                crate::db::greatest(backend, "fencing_counter.last_token", "excluded.last_token")
            ),
            vec![token.into()],
        ))
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn tokens_grow_across_handles_and_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::connect(&dir.path().join("data.db"), 1)
            .await
            .unwrap();
        crate::db::migrate(&db).await.unwrap();
        let fencing = Fencing::load(&db).await.unwrap();
        let other = fencing.clone();
        let (a, b, c) = (fencing.draw(), other.draw(), fencing.draw());
        assert_eq!((a, b, c), (1, 2, 3));
        Fencing::persist_in(&db, b).await.unwrap();
        Fencing::persist_in(&db, a).await.unwrap();
        // A restart continues above every persisted token, never below.
        let reloaded = Fencing::load(&db).await.unwrap();
        assert_eq!(reloaded.last(), 2);
        assert_eq!(reloaded.draw(), 3);
    }
}
