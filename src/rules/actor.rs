//! `RuleBook`: the single owner and single writer of the rules table.
//!
//! Concurrency: reads (`ListRules`, `AllRules`, `SelectRules`, `ExportRules`) are answered
//! from memory,
//! where every rule is held compiled (its regex and globs are built once, when the rule is
//! stored or loaded, never per request). Writes (`ReplaceRules`, `ProposeRule`,
//! `DecideRule`, `ImportRules`, `DeleteRule`) are validated first, then run one at a time
//! (`AtomicResponse`): one transaction holding the rules, the audit entry and the event,
//! then memory, then the answer. Rule writes are rare, so they are not batched.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix::prelude::*;
use sea_orm::DatabaseConnection;
use serde_json::json;

use super::engine::CompiledRule;
use super::messages::*;
use super::model::{GLOBAL, Rule, RuleError};
use super::repository::RuleRepository;
use crate::audit::Audit;
use crate::batch::{Outbox, after_commit, persist_then, refuse};
use crate::events::Publish;
use crate::journal::Records;
use crate::time::now_micros;

type Key = (String, String);

/// The rules domain actor.
pub struct RuleBook {
    repo: RuleRepository,
    rules: BTreeMap<Key, Arc<CompiledRule>>,
    outbox: Outbox,
}

fn key(r: &Rule) -> Key {
    (r.project.clone(), r.rule_id.clone())
}

impl RuleBook {
    /// Loads and compiles every rule; returns the actor, not yet started.
    pub async fn load(db: DatabaseConnection, outbox: Outbox) -> Result<Self, sea_orm::DbErr> {
        let repo = RuleRepository::new(db);
        let rules = repo
            .load_all()
            .await?
            .into_iter()
            .map(|r| (key(&r), CompiledRule::new(r)))
            .collect();
        Ok(Self {
            repo,
            rules,
            outbox,
        })
    }

    fn project_rules(&self, project: &str) -> impl Iterator<Item = &Arc<CompiledRule>> {
        self.rules
            .range((project.to_string(), String::new())..)
            .take_while(move |((p, _), _)| p == project)
            .map(|(_, r)| r)
    }

    /// Commits `rules` (after clearing `clear_project`) with `records`, then installs them
    /// in memory.
    fn write<T: 'static>(
        &self,
        clear_project: Option<String>,
        rules: Vec<Rule>,
        records: Records,
        answer: T,
    ) -> ResponseActFuture<Self, Result<T, RuleError>> {
        let repo = self.repo.clone();
        let stored = rules.clone();
        let clear = clear_project.clone();
        after_commit(
            self,
            async move {
                repo.write(clear.as_deref(), &stored, records, now_micros())
                    .await
            },
            move |stamped, act: &mut Self, _| {
                act.outbox.committed(stamped);
                if let Some(project) = clear_project {
                    act.rules.retain(|(p, _), _| *p != project);
                }
                for r in rules {
                    act.rules.insert(key(&r), CompiledRule::new(r));
                }
                answer
            },
        )
    }
}

impl Actor for RuleBook {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(crate::batch::MAILBOX_CAPACITY);
    }
}

impl Handler<ReplaceRules> for RuleBook {
    type Result = AtomicResponse<Self, Result<usize, RuleError>>;

    fn handle(&mut self, msg: ReplaceRules, _: &mut Self::Context) -> Self::Result {
        let now = now_micros();
        let mut rules: Vec<Rule> = Vec::with_capacity(msg.rules.len());
        for (i, item) in msg.rules.into_iter().enumerate() {
            match item.parse(Some(&msg.project), "local", "accepted") {
                Ok(mut r) => {
                    r.created_at = now;
                    if rules.iter().any(|x| x.rule_id == r.rule_id) {
                        return refuse(RuleError::Invalid(format!(
                            "item {i}: duplicate rule_id {:?}",
                            r.rule_id
                        )));
                    }
                    rules.push(r);
                }
                Err(e) => return refuse(RuleError::Invalid(format!("item {i}: {e}"))),
            }
        }
        let n = rules.len();
        AtomicResponse::new(self.write(Some(msg.project), rules, Records::new(), n))
    }
}

impl Handler<ListRules> for RuleBook {
    type Result = MessageResult<ListRules>;

    fn handle(&mut self, msg: ListRules, _: &mut Self::Context) -> Self::Result {
        let rules = self
            .project_rules(&msg.project)
            .filter(|r| r.rule.fits_stack(msg.stack.as_deref()))
            .map(|r| r.rule.clone())
            .collect();
        MessageResult(rules)
    }
}

impl Handler<SelectRules> for RuleBook {
    type Result = MessageResult<SelectRules>;

    fn handle(&mut self, msg: SelectRules, _: &mut Self::Context) -> Self::Result {
        let (stack, filename) = (msg.stack.as_deref(), msg.filename.as_deref());
        let mut out: Vec<Arc<CompiledRule>> = self
            .project_rules(&msg.project)
            .filter(|r| r.selected(stack, filename))
            .cloned()
            .collect();
        if msg.project != GLOBAL {
            out.extend(
                self.project_rules(GLOBAL)
                    .filter(|r| r.selected(stack, filename))
                    .cloned(),
            );
        }
        MessageResult(out)
    }
}

impl Handler<ProposeRule> for RuleBook {
    type Result = AtomicResponse<Self, Result<Rule, RuleError>>;

    fn handle(&mut self, msg: ProposeRule, _: &mut Self::Context) -> Self::Result {
        let mut rule = match msg.rule.parse(None, "learned", "proposed") {
            Ok(r) => r,
            Err(e) => return refuse(RuleError::Invalid(e)),
        };
        rule.source = "learned".into();
        rule.created_at = now_micros();
        if self.rules.contains_key(&key(&rule)) {
            return refuse(RuleError::Exists {
                project: rule.project,
                rule_id: rule.rule_id,
            });
        }
        let mut records = Records::new();
        records.audit(
            Audit::new("rule.propose", format!("{}/{}", rule.project, rule.rule_id))
                .actor(rule.proposed_by.as_str())
                .by(&msg.caller),
        );
        records.event(Publish::system(
            "rule.proposed",
            "rules",
            json!({"project": rule.project, "rule_id": rule.rule_id, "proposed_by": rule.proposed_by}),
        ));
        let out = rule.clone();
        AtomicResponse::new(self.write(None, vec![rule], records, out))
    }
}

impl Handler<DecideRule> for RuleBook {
    type Result = AtomicResponse<Self, Result<Rule, RuleError>>;

    fn handle(&mut self, msg: DecideRule, _: &mut Self::Context) -> Self::Result {
        let k = (msg.project, msg.rule_id);
        let current = self
            .rules
            .get(&k)
            .filter(|r| r.rule.status == "proposed")
            .map(|r| r.rule.clone());
        let Some(mut rule) = current else {
            return refuse(RuleError::NotProposed {
                project: k.0,
                rule_id: k.1,
            });
        };
        rule.status = if msg.accept { "accepted" } else { "rejected" }.into();
        let action = if msg.accept {
            "rule.accept"
        } else {
            "rule.reject"
        };
        let mut records = Records::new();
        records.audit(
            Audit::new(action, format!("{}/{}", rule.project, rule.rule_id)).by(&msg.caller),
        );
        let out = rule.clone();
        AtomicResponse::new(self.write(None, vec![rule], records, out))
    }
}

impl Handler<AllRules> for RuleBook {
    type Result = MessageResult<AllRules>;

    fn handle(&mut self, msg: AllRules, _: &mut Self::Context) -> Self::Result {
        let rules = self
            .rules
            .values()
            .filter(|r| msg.status.as_ref().is_none_or(|s| r.rule.status == *s))
            .filter(|r| msg.project.as_ref().is_none_or(|p| r.rule.project == *p))
            .map(|r| r.rule.clone())
            .collect();
        MessageResult(rules)
    }
}

impl Handler<DeleteRule> for RuleBook {
    type Result = AtomicResponse<Self, Result<Rule, RuleError>>;

    fn handle(&mut self, msg: DeleteRule, _: &mut Self::Context) -> Self::Result {
        let k = (msg.project, msg.rule_id);
        let Some(rule) = self.rules.get(&k).map(|r| r.rule.clone()) else {
            return refuse(RuleError::NotFound {
                project: k.0,
                rule_id: k.1,
            });
        };
        let mut records = Records::new();
        records.audit(
            Audit::new("rule.delete", format!("{}/{}", rule.project, rule.rule_id))
                .with("status", rule.status.as_str())
                .by(&msg.caller),
        );
        let repo = self.repo.clone();
        persist_then(
            self,
            async move {
                let stamped = repo.delete(&k.0, &k.1, records, now_micros()).await?;
                Ok((k, stamped))
            },
            move |(k, stamped), act: &mut Self, _| {
                act.outbox.committed(stamped);
                act.rules.remove(&k);
                rule
            },
        )
    }
}

impl Handler<ExportRules> for RuleBook {
    type Result = MessageResult<ExportRules>;

    fn handle(&mut self, msg: ExportRules, _: &mut Self::Context) -> Self::Result {
        let rules = self
            .rules
            .values()
            .filter(|r| r.rule.status == "accepted" && msg.sources.contains(&r.rule.source))
            .map(|r| r.rule.clone())
            .collect();
        MessageResult(rules)
    }
}

impl Handler<ImportRules> for RuleBook {
    type Result = AtomicResponse<Self, Result<usize, RuleError>>;

    fn handle(&mut self, msg: ImportRules, _: &mut Self::Context) -> Self::Result {
        let now = now_micros();
        let total = msg.rules.len();
        let mut rules: Vec<Rule> = Vec::with_capacity(total);
        for (i, item) in msg.rules.into_iter().enumerate() {
            match item.parse(msg.project.as_deref(), "external", "accepted") {
                Ok(mut r) => {
                    r.created_at = self
                        .rules
                        .get(&key(&r))
                        .map_or(now, |old| old.rule.created_at);
                    // A later item with the same id wins, as a sequence of upserts would.
                    rules.retain(|x| key(x) != key(&r));
                    rules.push(r);
                }
                Err(e) => return refuse(RuleError::Invalid(format!("item {i}: {e}"))),
            }
        }
        let mut records = Records::new();
        records.audit(msg.audit_as.unwrap_or_else(|| {
            Audit::new("rules.import", "bulk")
                .with("count", total)
                .by(&msg.caller)
        }));
        AtomicResponse::new(self.write(None, rules, records, total))
    }
}
