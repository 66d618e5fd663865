use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AgentMetrics {
    Table,
    InstanceId,
    MetricName,
    Period,
    Value,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AgentMetrics::Table)
                    .if_not_exists()
                    .col(string(AgentMetrics::InstanceId))
                    .col(string(AgentMetrics::MetricName))
                    .col(string(AgentMetrics::Period))
                    .col(big_integer(AgentMetrics::Value))
                    .primary_key(
                        Index::create()
                            .col(AgentMetrics::InstanceId)
                            .col(AgentMetrics::MetricName)
                            .col(AgentMetrics::Period),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_agent_metrics_period")
                    .table(AgentMetrics::Table)
                    .col(AgentMetrics::Period)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AgentMetrics::Table).to_owned())
            .await
    }
}
