use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SpecVersions {
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
                    .table(SpecVersions::Table)
                    .if_not_exists()
                    .col(string(SpecVersions::Key))
                    .col(big_integer(SpecVersions::Version))
                    .col(blob(SpecVersions::Value))
                    .col(string(SpecVersions::Hash))
                    .col(string(SpecVersions::ContentType))
                    .col(big_integer(SpecVersions::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(SpecVersions::Key)
                            .col(SpecVersions::Version),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SpecVersions::Table).to_owned())
            .await
    }
}
