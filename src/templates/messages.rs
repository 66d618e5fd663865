//! Messages of the templates domain.

use crate::http::Caller;
use std::sync::Arc;

use actix::Message;

use super::model::{Template, TemplateError, TemplateIn};

/// Stores a new template (409 when the id exists).
#[derive(Message)]
#[rtype(result = "Result<Arc<Template>, TemplateError>")]
pub struct CreateTemplate {
    pub template: TemplateIn,
    /// Who creates (the audit entry's actor).
    pub caller: Caller,
}

/// Templates with `kind` and `tag` (exact; `None` = any), newest first.
#[derive(Message)]
#[rtype(result = "Vec<Arc<Template>>")]
pub struct ListTemplates {
    pub kind: Option<String>,
    pub tag: Option<String>,
}

/// One template.
#[derive(Message)]
#[rtype(result = "Result<Arc<Template>, TemplateError>")]
pub struct GetTemplate {
    pub id: String,
}

/// Deletes a template.
#[derive(Message)]
#[rtype(result = "Result<(), TemplateError>")]
pub struct DeleteTemplate {
    pub id: String,
    /// Who deletes (the audit entry's actor).
    pub caller: Caller,
}

/// Applies a template to `project`: rules are imported, contracts and bundles stored as
/// the spec `project/<template id>`. Answered with the template's kind.
#[derive(Message)]
#[rtype(result = "Result<String, TemplateError>")]
pub struct ApplyTemplate {
    pub id: String,
    pub project: String,
    /// Who applies (the audit entry's actor).
    pub caller: Caller,
}
