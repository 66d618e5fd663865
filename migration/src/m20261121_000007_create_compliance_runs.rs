use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ComplianceRuns {
    Table,
    Id,
    InstanceId,
    Project,
    Contract,
    Pass,
    Violations,
    RunAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ComplianceRuns::Table)
                    .if_not_exists()
                    .col(crate::portable::id_auto(manager, ComplianceRuns::Id))
                    .col(string(ComplianceRuns::InstanceId))
                    .col(string(ComplianceRuns::Project))
                    .col(string(ComplianceRuns::Contract))
                    .col(boolean(ComplianceRuns::Pass))
                    .col(text(ComplianceRuns::Violations))
                    .col(big_integer(ComplianceRuns::RunAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_compliance_runs_instance")
                    .table(ComplianceRuns::Table)
                    .col(ComplianceRuns::InstanceId)
                    .col(ComplianceRuns::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ComplianceRuns::Table).to_owned())
            .await
    }
}
