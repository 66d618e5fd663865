use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Instances {
    Table,
    Id,
    Name,
    Workspace,
    Intent,
    Stack,
    Capabilities,
    Status,
    TokenHash,
    RegisteredAt,
    LastSeen,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Instances::Table)
                    .if_not_exists()
                    .col(string(Instances::Id).primary_key())
                    .col(string(Instances::Name))
                    .col(string(Instances::Workspace))
                    .col(string(Instances::Intent))
                    .col(string(Instances::Stack))
                    .col(text(Instances::Capabilities))
                    .col(string(Instances::Status))
                    .col(string(Instances::TokenHash))
                    .col(big_integer(Instances::RegisteredAt))
                    .col(big_integer(Instances::LastSeen))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Instances::Table).to_owned())
            .await
    }
}
