use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Templates {
    Table,
    Id,
    Name,
    Description,
    Kind,
    Data,
    Tags,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Templates::Table)
                    .if_not_exists()
                    .col(string(Templates::Id).primary_key())
                    .col(string(Templates::Name))
                    .col(text(Templates::Description))
                    .col(string(Templates::Kind))
                    .col(text(Templates::Data))
                    .col(text(Templates::Tags))
                    .col(big_integer(Templates::Version))
                    .col(big_integer(Templates::CreatedAt))
                    .col(big_integer(Templates::UpdatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Templates::Table).to_owned())
            .await
    }
}
