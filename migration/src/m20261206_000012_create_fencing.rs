//! Fencing tokens (API §22): the server-wide counter, and per versioned document the
//! highest token that has written to it (kept when the document is deleted) and the token
//! each version was written with.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum FencingCounter {
    Table,
    Id,
    LastToken,
}

#[derive(DeriveIden)]
enum DocFences {
    Table,
    Kind,
    Key,
    Highest,
}

#[derive(DeriveIden)]
enum StateVersions {
    Table,
    FencingToken,
}

#[derive(DeriveIden)]
enum SpecVersions {
    Table,
    FencingToken,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(FencingCounter::Table)
                    .if_not_exists()
                    .col(integer(FencingCounter::Id).primary_key())
                    .col(big_integer(FencingCounter::LastToken))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(DocFences::Table)
                    .if_not_exists()
                    .col(string(DocFences::Kind))
                    .col(string(DocFences::Key))
                    .col(big_integer(DocFences::Highest))
                    .primary_key(Index::create().col(DocFences::Kind).col(DocFences::Key))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(StateVersions::Table)
                    .add_column(big_integer_null(StateVersions::FencingToken))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(SpecVersions::Table)
                    .add_column(big_integer_null(SpecVersions::FencingToken))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(SpecVersions::Table)
                    .drop_column(SpecVersions::FencingToken)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(StateVersions::Table)
                    .drop_column(StateVersions::FencingToken)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(DocFences::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(FencingCounter::Table).to_owned())
            .await
    }
}
