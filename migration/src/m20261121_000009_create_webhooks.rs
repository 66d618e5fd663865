use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Webhooks {
    Table,
    Id,
    Url,
    Patterns,
    Secret,
    Active,
    FailCount,
    LastFired,
    CreatedAt,
    Cursor,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    WebhookId,
    EventId,
    Topic,
    MessageId,
    Body,
    State,
    Attempts,
    LastStatus,
    LastError,
    NextAttemptAt,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Webhooks::Table)
                    .if_not_exists()
                    .col(string(Webhooks::Id).primary_key())
                    .col(text(Webhooks::Url))
                    .col(text(Webhooks::Patterns))
                    .col(text(Webhooks::Secret))
                    .col(boolean(Webhooks::Active))
                    .col(big_integer(Webhooks::FailCount))
                    .col(big_integer_null(Webhooks::LastFired))
                    .col(big_integer(Webhooks::CreatedAt))
                    .col(big_integer(Webhooks::Cursor))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveries::Table)
                    .if_not_exists()
                    .col(crate::portable::id_auto(manager, WebhookDeliveries::Id))
                    .col(string(WebhookDeliveries::WebhookId))
                    .col(big_integer(WebhookDeliveries::EventId))
                    .col(string(WebhookDeliveries::Topic))
                    .col(string(WebhookDeliveries::MessageId))
                    .col(text(WebhookDeliveries::Body))
                    .col(string(WebhookDeliveries::State))
                    .col(big_integer(WebhookDeliveries::Attempts))
                    .col(big_integer_null(WebhookDeliveries::LastStatus))
                    .col(text(WebhookDeliveries::LastError))
                    .col(big_integer_null(WebhookDeliveries::NextAttemptAt))
                    .col(big_integer(WebhookDeliveries::CreatedAt))
                    .col(big_integer(WebhookDeliveries::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_deliveries_pending")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::WebhookId)
                    .col(WebhookDeliveries::State)
                    .col(WebhookDeliveries::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(WebhookDeliveries::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Webhooks::Table).to_owned())
            .await
    }
}
