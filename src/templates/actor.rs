//! `TemplateLibrary`: the single owner and single writer of the templates table.
//!
//! Concurrency: reads are answered from memory; create and delete run one at a time
//! (`AtomicResponse`: one transaction with the audit entry, then memory). `ApplyTemplate`
//! reads from memory and sends the work to the owners of the data: `ImportRules` to the
//! `RuleBook` (all or nothing), `PutValue` to the `SpecRegistry`, each carrying the
//! `template.apply` entry to record in its own transaction.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use sea_orm::DatabaseConnection;
use sha2::{Digest, Sha256};

use super::messages::*;
use super::model::{Template, TemplateError};
use super::repository::TemplateRepository;
use crate::audit::Audit;
use crate::batch::{Outbox, persist_then, refuse};
use crate::journal::Records;
use crate::rules::{ImportRules, RuleBook, RuleError, RuleIn};
use crate::specs::{SpecRegistry, spec_key};
use crate::state::PutValue;
use crate::time::now_micros;

/// The templates domain actor.
pub struct TemplateLibrary {
    repo: TemplateRepository,
    templates: HashMap<String, Arc<Template>>,
    rules: Addr<RuleBook>,
    specs: Addr<SpecRegistry>,
    outbox: Outbox,
}

impl TemplateLibrary {
    /// Loads every template; returns the actor, not yet started.
    pub async fn load(
        db: DatabaseConnection,
        outbox: Outbox,
        rules: Addr<RuleBook>,
        specs: Addr<SpecRegistry>,
    ) -> Result<Self, sea_orm::DbErr> {
        let repo = TemplateRepository::new(db);
        let templates = repo
            .load_all()
            .await?
            .into_iter()
            .map(|t| (t.id.clone(), Arc::new(t)))
            .collect();
        Ok(Self {
            repo,
            templates,
            rules,
            specs,
            outbox,
        })
    }
}

impl Actor for TemplateLibrary {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(crate::batch::MAILBOX_CAPACITY);
    }
}

impl Handler<CreateTemplate> for TemplateLibrary {
    type Result = AtomicResponse<Self, Result<Arc<Template>, TemplateError>>;

    fn handle(&mut self, msg: CreateTemplate, _: &mut Self::Context) -> Self::Result {
        let template = match msg.template.parse(now_micros()) {
            Ok(t) => Arc::new(t),
            Err(e) => return refuse(e),
        };
        if self.templates.contains_key(&template.id) {
            return refuse(TemplateError::Exists(template.id.clone()));
        }
        let repo = self.repo.clone();
        let stored = template.clone();
        let records = Records::audited(
            Audit::new("template.create", template.id.as_str())
                .with("kind", template.kind.as_str())
                .by(&msg.caller),
        );
        persist_then(
            self,
            async move { repo.insert(&stored, records, now_micros()).await },
            move |stamped, act: &mut Self, _| {
                act.outbox.committed(stamped);
                act.templates.insert(template.id.clone(), template.clone());
                template
            },
        )
    }
}

impl Handler<ListTemplates> for TemplateLibrary {
    type Result = MessageResult<ListTemplates>;

    fn handle(&mut self, msg: ListTemplates, _: &mut Self::Context) -> Self::Result {
        let mut items: Vec<Arc<Template>> = self
            .templates
            .values()
            .filter(|t| msg.kind.as_deref().is_none_or(|k| t.kind == k))
            .filter(|t| {
                msg.tag
                    .as_deref()
                    .is_none_or(|tag| t.tags.iter().any(|x| x == tag))
            })
            .cloned()
            .collect();
        items.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        MessageResult(items)
    }
}

impl Handler<GetTemplate> for TemplateLibrary {
    type Result = Result<Arc<Template>, TemplateError>;

    fn handle(&mut self, msg: GetTemplate, _: &mut Self::Context) -> Self::Result {
        self.templates
            .get(&msg.id)
            .cloned()
            .ok_or(TemplateError::NotFound(msg.id))
    }
}

impl Handler<DeleteTemplate> for TemplateLibrary {
    type Result = AtomicResponse<Self, Result<(), TemplateError>>;

    fn handle(&mut self, msg: DeleteTemplate, _: &mut Self::Context) -> Self::Result {
        if !self.templates.contains_key(&msg.id) {
            return refuse(TemplateError::NotFound(msg.id));
        }
        let repo = self.repo.clone();
        let id = msg.id.clone();
        let records =
            Records::audited(Audit::new("template.delete", msg.id.as_str()).by(&msg.caller));
        persist_then(
            self,
            async move { repo.delete(&id, records, now_micros()).await },
            move |stamped, act: &mut Self, _| {
                act.outbox.committed(stamped);
                act.templates.remove(&msg.id);
            },
        )
    }
}

impl Handler<ApplyTemplate> for TemplateLibrary {
    type Result = ResponseFuture<Result<String, TemplateError>>;

    fn handle(&mut self, msg: ApplyTemplate, _: &mut Self::Context) -> Self::Result {
        let Some(template) = self.templates.get(&msg.id).cloned() else {
            return Box::pin(async move { Err(TemplateError::NotFound(msg.id)) });
        };
        let rules = self.rules.clone();
        let specs = self.specs.clone();
        let repo = self.repo.clone();
        let outbox = self.outbox.clone();
        Box::pin(async move {
            let kind = template.kind.clone();
            let entry = Audit::new("template.apply", msg.id.as_str())
                .with("project", msg.project.as_str())
                .with("kind", kind.as_str())
                .by(&msg.caller);
            if kind == "rules" {
                let items: Vec<RuleIn> =
                    serde_json::from_value(template.data.clone()).map_err(|e| {
                        TemplateError::Invalid(format!("template rules are malformed: {e}"))
                    })?;
                if items.is_empty() {
                    let stamped = repo
                        .record(Records::audited(entry), now_micros())
                        .await
                        .map_err(|e| TemplateError::Storage(e.to_string()))?;
                    outbox.committed(stamped);
                    return Ok(kind);
                }
                rules
                    .send(ImportRules {
                        rules: items,
                        project: Some(msg.project),
                        caller: msg.caller,
                        audit_as: Some(entry),
                    })
                    .await
                    .map_err(|_| TemplateError::Unavailable)?
                    .map_err(|e| match e {
                        RuleError::Invalid(m) => TemplateError::Invalid(m),
                        other => TemplateError::Storage(other.to_string()),
                    })?;
            } else {
                let value = bytes::Bytes::from(template.data.to_string());
                let hash = hex::encode(Sha256::digest(&value));
                specs
                    .send(PutValue {
                        key: spec_key(&msg.project, &template.id),
                        value,
                        content_type: "application/json".into(),
                        hash,
                        preconditions: Vec::new(),
                        fence: None,
                        caller: msg.caller,
                        audit_as: Some(entry),
                    })
                    .await
                    .map_err(|_| TemplateError::Unavailable)?
                    .map_err(|e| TemplateError::Storage(e.to_string()))?;
            }
            Ok(kind)
        })
    }
}
