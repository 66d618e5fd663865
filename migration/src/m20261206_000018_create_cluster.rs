//! The cluster's leadership record (API §27): one row (`id` = 1) naming the member that
//! leads, where it is reached, its epoch (raised at every takeover) and when it last proved
//! it is alive (the database's clock, so members' clocks never matter); and one row per
//! member (`cluster_members`), refreshed by each member while it runs, for `koor status`.
//!
//! Every PostgreSQL write transaction reads this row after taking the write lock and
//! rolls back unless it names the member the transaction's connection belongs to: a
//! leader that lost its place cannot commit. SQLite has one server per file and never
//! reads it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ClusterLeader {
    Table,
    Id,
    Member,
    Url,
    Epoch,
    HeartbeatAt,
}

#[derive(DeriveIden)]
enum ClusterMembers {
    Table,
    Member,
    Url,
    Role,
    StartedAt,
    SeenAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ClusterLeader::Table)
                    .if_not_exists()
                    .col(integer(ClusterLeader::Id).primary_key())
                    .col(string(ClusterLeader::Member))
                    .col(string(ClusterLeader::Url))
                    .col(big_integer(ClusterLeader::Epoch))
                    .col(timestamp_with_time_zone(ClusterLeader::HeartbeatAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ClusterMembers::Table)
                    .if_not_exists()
                    .col(string(ClusterMembers::Member).primary_key())
                    .col(string(ClusterMembers::Url))
                    .col(string(ClusterMembers::Role))
                    .col(timestamp_with_time_zone(ClusterMembers::StartedAt))
                    .col(timestamp_with_time_zone(ClusterMembers::SeenAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ClusterMembers::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(ClusterLeader::Table).to_owned())
            .await
    }
}
