use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Rules {
    Table,
    Project,
    RuleId,
    Severity,
    MatchType,
    Pattern,
    Message,
    AppliesTo,
    Stack,
    Source,
    Status,
    ProposedBy,
    Context,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Rules::Table)
                    .if_not_exists()
                    .col(string(Rules::Project))
                    .col(string(Rules::RuleId))
                    .col(string(Rules::Severity))
                    .col(string(Rules::MatchType))
                    .col(text(Rules::Pattern))
                    .col(text(Rules::Message))
                    .col(text(Rules::AppliesTo))
                    .col(string(Rules::Stack))
                    .col(string(Rules::Source))
                    .col(string(Rules::Status))
                    .col(string(Rules::ProposedBy))
                    .col(text(Rules::Context))
                    .col(big_integer(Rules::CreatedAt))
                    .primary_key(Index::create().col(Rules::Project).col(Rules::RuleId))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Rules::Table).to_owned())
            .await
    }
}
