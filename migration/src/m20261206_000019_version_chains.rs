//! Versioned documents (state and specs) keep their history as chains: every version is a
//! row appended under an increasing `id`, and links to its key's previous version
//! (`prev_id`); `{kind}_heads` names each key's current row. Writes therefore append at
//! the end of one table and update one small table, instead of inserting into a
//! `(key, version)` index that gives every key a page of its own once histories grow (so
//! that a durable write touched one more page per key as the data grew). `{kind}_marks`
//! names every 256th version of each key, so that finding an old version walks a bounded
//! part of its chain. The existing versions are renumbered in `(key, version)` order and
//! linked.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The two versioned-document tables, their heads and their marks.
const KINDS: [(&str, &str, &str); 2] = [
    ("state_versions", "state_heads", "state_marks"),
    ("spec_versions", "spec_heads", "spec_marks"),
];

/// Every version whose number is a multiple of this is marked, so that finding an old
/// version walks at most this many links (the store's `MARK_EVERY`).
const MARK_EVERY: i64 = 256;

/// The columns both shapes share, in order.
const COLUMNS: &str = "key, version, value, hash, content_type, updated_at, fencing_token";

fn blob(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => "bytea",
        _ => "blob",
    }
}

/// Runs `script` as one batch of statements, through one connection even when the
/// migrator runs on a pool: a pooled SQLite connection that has not seen the `DROP TABLE`
/// would refuse the `RENAME` that follows it.
async fn run(manager: &SchemaManager<'_>, script: &[String]) -> Result<(), DbErr> {
    manager
        .get_connection()
        .execute_unprepared(&script.join(";\n"))
        .await?;
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        // SQLite: `integer primary key` is the rowid itself (no second index), and heads
        // and marks are clustered on their keys.
        let (id, clustered) = match backend {
            DbBackend::Postgres => ("bigint NOT NULL PRIMARY KEY", ""),
            _ => ("integer NOT NULL PRIMARY KEY", " WITHOUT ROWID"),
        };
        let mut script = Vec::new();
        for (table, heads, marks) in KINDS {
            let chained = format!("{table}_chained");
            script.push(format!(
                "CREATE TABLE {chained} (id {id}, key varchar NOT NULL, version bigint NOT NULL, \
                 value {blob} NOT NULL, hash varchar NOT NULL, content_type varchar NOT NULL, \
                 updated_at bigint NOT NULL, fencing_token bigint NULL, prev_id bigint NULL)",
                blob = blob(backend)
            ));
            script.push(format!(
                "INSERT INTO {chained} (id, prev_id, {COLUMNS}) \
                 SELECT n, LAG(n) OVER (PARTITION BY key ORDER BY version), {COLUMNS} \
                 FROM (SELECT ROW_NUMBER() OVER (ORDER BY key, version) AS n, {COLUMNS} \
                 FROM {table}) numbered"
            ));
            script.push(format!(
                "CREATE TABLE {heads} (key varchar NOT NULL PRIMARY KEY, id bigint NOT NULL, \
                 version bigint NOT NULL){clustered}"
            ));
            // Ids follow (key, version), so a key's highest id is its newest version.
            script.push(format!(
                "INSERT INTO {heads} (key, id, version) \
                 SELECT key, MAX(id), MAX(version) FROM {chained} GROUP BY key"
            ));
            script.push(format!(
                "CREATE TABLE {marks} (key varchar NOT NULL, version bigint NOT NULL, \
                 id bigint NOT NULL, PRIMARY KEY (key, version)){clustered}"
            ));
            script.push(format!(
                "INSERT INTO {marks} (key, version, id) SELECT key, version, id \
                 FROM {chained} WHERE version % {MARK_EVERY} = 0"
            ));
            script.push(format!("DROP TABLE {table}"));
            script.push(format!("ALTER TABLE {chained} RENAME TO {table}"));
        }
        run(manager, &script).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let mut script = Vec::new();
        for (table, heads, marks) in KINDS {
            let keyed = format!("{table}_keyed");
            script.push(format!(
                "CREATE TABLE {keyed} (key varchar NOT NULL, version bigint NOT NULL, \
                 value {blob} NOT NULL, hash varchar NOT NULL, content_type varchar NOT NULL, \
                 updated_at bigint NOT NULL, fencing_token bigint NULL, \
                 PRIMARY KEY (key, version))",
                blob = blob(backend)
            ));
            script.push(format!(
                "INSERT INTO {keyed} ({COLUMNS}) SELECT {COLUMNS} FROM {table}"
            ));
            script.push(format!("DROP TABLE {table}"));
            script.push(format!("DROP TABLE {heads}"));
            script.push(format!("DROP TABLE {marks}"));
            script.push(format!("ALTER TABLE {keyed} RENAME TO {table}"));
        }
        run(manager, &script).await
    }
}
