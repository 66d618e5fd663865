use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum LlmUsage {
    Table,
    Id,
    InstanceId,
    Project,
    Provider,
    Model,
    TokensIn,
    TokensOut,
    CostUsd,
    RequestType,
    SessionTag,
    CreatedAt,
}

#[derive(DeriveIden)]
enum LlmBudgets {
    Table,
    Scope,
    Period,
    MaxTokens,
    MaxCostUsd,
    WarnedPeriod,
    ExceededPeriod,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(LlmUsage::Table)
                    .if_not_exists()
                    // AUTOINCREMENT: record ids are never reused.
                    .col(crate::portable::id_auto(manager, LlmUsage::Id))
                    .col(string(LlmUsage::InstanceId))
                    .col(string(LlmUsage::Project))
                    .col(string(LlmUsage::Provider))
                    .col(string(LlmUsage::Model))
                    .col(big_integer(LlmUsage::TokensIn))
                    .col(big_integer(LlmUsage::TokensOut))
                    .col(double(LlmUsage::CostUsd))
                    .col(string(LlmUsage::RequestType))
                    .col(string(LlmUsage::SessionTag))
                    .col(big_integer(LlmUsage::CreatedAt))
                    .to_owned(),
            )
            .await?;
        // One index per selector of `GET /api/llm/usage` (each with the time range), one
        // for the model grouping and one for unfiltered time ranges.
        let indices = [
            (
                "idx_llm_usage_project_created_at",
                vec![LlmUsage::Project, LlmUsage::CreatedAt],
            ),
            (
                "idx_llm_usage_instance_created_at",
                vec![LlmUsage::InstanceId, LlmUsage::CreatedAt],
            ),
            (
                "idx_llm_usage_session_created_at",
                vec![LlmUsage::SessionTag, LlmUsage::CreatedAt],
            ),
            ("idx_llm_usage_model", vec![LlmUsage::Model]),
            ("idx_llm_usage_created_at", vec![LlmUsage::CreatedAt]),
        ];
        for (name, cols) in indices {
            let mut index = Index::create();
            index.name(name).table(LlmUsage::Table).if_not_exists();
            for col in cols {
                index.col(col);
            }
            manager.create_index(index).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(LlmBudgets::Table)
                    .if_not_exists()
                    .col(string(LlmBudgets::Scope).primary_key())
                    .col(string(LlmBudgets::Period))
                    .col(big_integer_null(LlmBudgets::MaxTokens))
                    .col(double_null(LlmBudgets::MaxCostUsd))
                    .col(string(LlmBudgets::WarnedPeriod))
                    .col(string(LlmBudgets::ExceededPeriod))
                    .col(big_integer(LlmBudgets::CreatedAt))
                    .col(big_integer(LlmBudgets::UpdatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(LlmBudgets::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(LlmUsage::Table).to_owned())
            .await
    }
}
