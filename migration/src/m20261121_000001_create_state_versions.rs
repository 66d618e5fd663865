use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum StateVersions {
    Table,
    Key,
    Version,
    Value,
    Hash,
    ContentType,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(StateVersions::Table)
                    .if_not_exists()
                    .col(string(StateVersions::Key))
                    .col(big_integer(StateVersions::Version))
                    .col(blob(StateVersions::Value))
                    .col(string(StateVersions::Hash))
                    .col(string(StateVersions::ContentType))
                    .col(big_integer(StateVersions::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(StateVersions::Key)
                            .col(StateVersions::Version),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(StateVersions::Table).to_owned())
            .await
    }
}
