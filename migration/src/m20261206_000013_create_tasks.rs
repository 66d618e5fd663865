//! The work queue (API §23): one row per task, its lease columns non-null exactly while it
//! is leased. JSON values (payload, requires, result) are stored as text.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tasks {
    Table,
    Id,
    Seq,
    Queue,
    Payload,
    Priority,
    Status,
    Attempts,
    MaxAttempts,
    LeaseSeconds,
    NotBefore,
    Requires,
    TaskGroup,
    IdempotencyKey,
    LeaseHolder,
    LeaseToken,
    LeaseExpiresAt,
    LeaseLength,
    Result,
    Error,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Tasks::Table)
                    .if_not_exists()
                    .col(string(Tasks::Id).primary_key())
                    // Creation order: the last tie-breaker of claims and the list order.
                    .col(big_integer(Tasks::Seq).unique_key())
                    .col(string(Tasks::Queue))
                    .col(text(Tasks::Payload))
                    .col(big_integer(Tasks::Priority))
                    .col(string(Tasks::Status))
                    .col(integer(Tasks::Attempts))
                    .col(integer(Tasks::MaxAttempts))
                    .col(double(Tasks::LeaseSeconds))
                    .col(big_integer_null(Tasks::NotBefore))
                    .col(text(Tasks::Requires))
                    .col(string_null(Tasks::TaskGroup))
                    .col(string_null(Tasks::IdempotencyKey))
                    .col(string_null(Tasks::LeaseHolder))
                    .col(big_integer_null(Tasks::LeaseToken))
                    .col(big_integer_null(Tasks::LeaseExpiresAt))
                    .col(double_null(Tasks::LeaseLength))
                    .col(text_null(Tasks::Result))
                    .col(text_null(Tasks::Error))
                    .col(big_integer(Tasks::CreatedAt))
                    .col(big_integer(Tasks::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        // An idempotency key is unique within its queue (NULL keys never collide).
        manager
            .create_index(
                Index::create()
                    .name("idx_tasks_queue_idempotency_key")
                    .table(Tasks::Table)
                    .col(Tasks::Queue)
                    .col(Tasks::IdempotencyKey)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // One index per filter of `GET /api/tasks` (newest first), and the status index
        // that start-up uses to load the tasks that are not finished.
        let indices = [
            ("idx_tasks_queue_seq", vec![Tasks::Queue, Tasks::Seq]),
            ("idx_tasks_group_seq", vec![Tasks::TaskGroup, Tasks::Seq]),
            ("idx_tasks_holder_seq", vec![Tasks::LeaseHolder, Tasks::Seq]),
            ("idx_tasks_status_seq", vec![Tasks::Status, Tasks::Seq]),
        ];
        for (name, cols) in indices {
            let mut index = Index::create();
            index.name(name).table(Tasks::Table).if_not_exists();
            for col in cols {
                index.col(col);
            }
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Tasks::Table).to_owned())
            .await
    }
}
