//! Access keys (API §25): one row per key ever created, revoked ones kept (their existence
//! is what keeps authentication on). Only the SHA-256 digest of a secret is stored.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AccessKeys {
    Table,
    Id,
    Name,
    Digest,
    Scopes,
    Projects,
    ExpiresAt,
    RateLimit,
    CreatedAt,
    LastUsedAt,
    RevokedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AccessKeys::Table)
                    .if_not_exists()
                    .col(string(AccessKeys::Id).primary_key())
                    .col(string(AccessKeys::Name))
                    .col(string(AccessKeys::Digest))
                    .col(text(AccessKeys::Scopes))
                    .col(text_null(AccessKeys::Projects))
                    .col(big_integer_null(AccessKeys::ExpiresAt))
                    .col(double_null(AccessKeys::RateLimit))
                    .col(big_integer(AccessKeys::CreatedAt))
                    .col(big_integer_null(AccessKeys::LastUsedAt))
                    .col(big_integer_null(AccessKeys::RevokedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AccessKeys::Table).to_owned())
            .await
    }
}
