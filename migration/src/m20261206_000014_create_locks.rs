//! Locks (API §24): one row per held lock, with its fencing token and expiry.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Locks {
    Table,
    Id,
    Resource,
    Mode,
    Holder,
    Token,
    Reason,
    TtlMicros,
    AcquiredAt,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Locks::Table)
                    .if_not_exists()
                    .col(string(Locks::Id).primary_key())
                    .col(string(Locks::Resource))
                    .col(string(Locks::Mode))
                    .col(string(Locks::Holder))
                    .col(big_integer(Locks::Token))
                    .col(text(Locks::Reason))
                    .col(big_integer(Locks::TtlMicros))
                    .col(big_integer(Locks::AcquiredAt))
                    .col(big_integer(Locks::ExpiresAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Locks::Table).to_owned())
            .await
    }
}
