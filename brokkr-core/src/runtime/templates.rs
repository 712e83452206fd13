//! Versioned templates: create, list, read, new versions, delete.
//!
//! A template belongs to a generator, or is global (no owner, created by admin or the
//! system). Who may see and change which template is decided once, in
//! [`ControlPlane::visible_template`] and [`ControlPlane::changeable_template`]: admin
//! and system see and change all; a generator sees its own and the global ones and
//! changes only its own (another generator's template is `NotFound`; a global one is
//! `Forbidden` to change); agents are `Forbidden`. A version is stored only if its
//! source compiles and its schema is a valid JSON Schema, checked on a blocking thread.

use crate::id::TemplateId;
use crate::model::{
    Actor, ListedTemplate, NewTemplate, NewTemplateVersion, Template, TemplateVersion,
    description_or_none,
};
use crate::page::{Page, PageRequest};
use crate::store::TemplateFilter;

use super::ControlPlane;
use super::access;
use super::error::{Error, Result};
use super::listing::IncludeContent;
use super::render::off_workers;

impl ControlPlane {
    /// Creates a template at version 1. Admin and system may make it global
    /// (`generator_id: None`) or give it to a generator; a generator's templates are
    /// always its own. The source must compile and the schema be a valid JSON Schema
    /// (`Template` otherwise; nothing is stored).
    pub async fn create_template(&self, caller: &Actor, mut new: NewTemplate) -> Result<Template> {
        new.generator_id = access::owner_scope(caller, new.generator_id)?;
        new.description = description_or_none(new.description);
        let (content, schema) = (new.content.clone(), new.parameters_schema.clone());
        check_template(content, schema).await?;
        Ok(self.store().create_template(caller, new).await?)
    }

    /// Lists templates, ordered by id. Admin and system see all (or one generator's,
    /// with `filter.generator_id`). A generator sees its own and the global ones, or
    /// only its own when it names itself in `filter.generator_id` (naming another
    /// generator is `Forbidden`); its page may then hold fewer rows than the limit
    /// (other generators' rows are left out): follow `next_cursor` until it is absent.
    ///
    /// The latest version's source and parameter schema come only with
    /// [`IncludeContent::Yes`], and then a page also ends before they pass
    /// `Settings::listing_yaml_bytes` (at least one template per page).
    pub async fn list_templates(
        &self,
        caller: &Actor,
        mut filter: TemplateFilter,
        include: IncludeContent,
        page: &PageRequest,
    ) -> Result<Page<ListedTemplate>> {
        let requested = filter.generator_id;
        let owner = access::owner_scope(caller, requested)?;
        // The store filters by one owner only, so "mine and the global ones" is
        // every row with the others' rows left out here.
        let mine_and_global = match *caller {
            Actor::Generator(me) if requested.is_none() => Some(me),
            _ => None,
        };
        filter.generator_id = if mine_and_global.is_some() {
            None
        } else {
            owner
        };
        let content = self.content_listing(include);
        let mut templates = self.store().list_templates(&filter, content, page).await?;
        if let Some(me) = mine_and_global {
            templates
                .items
                .retain(|t| t.generator_id.is_none_or(|owner| owner == me));
        }
        Ok(templates)
    }

    /// A live template the caller may see, with its latest version.
    pub async fn get_template(&self, caller: &Actor, id: TemplateId) -> Result<Template> {
        self.visible_template(caller, id).await
    }

    /// Stores the next version of a template the caller may change; older versions
    /// stay readable. The source must compile and the schema be a valid JSON Schema.
    pub async fn update_template(
        &self,
        caller: &Actor,
        id: TemplateId,
        version: NewTemplateVersion,
    ) -> Result<Template> {
        let template = self.changeable_template(caller, id).await?;
        let (content, schema) = (version.content.clone(), version.parameters_schema.clone());
        check_template(content, schema).await?;
        Ok(self
            .store()
            .add_template_version(caller, template.id, version)
            .await?)
    }

    /// Soft-deletes a template the caller may change; its versions stay in the store.
    pub async fn delete_template(&self, caller: &Actor, id: TemplateId) -> Result<()> {
        let template = self.changeable_template(caller, id).await?;
        Ok(self.store().delete_template(caller, template.id).await?)
    }

    /// A visible template's versions, ordered by version number.
    pub async fn list_template_versions(
        &self,
        caller: &Actor,
        id: TemplateId,
        page: &PageRequest,
    ) -> Result<Page<TemplateVersion>> {
        let template = self.visible_template(caller, id).await?;
        Ok(self
            .store()
            .list_template_versions(template.id, page)
            .await?)
    }

    /// One version of a visible template.
    pub async fn get_template_version(
        &self,
        caller: &Actor,
        id: TemplateId,
        version: i32,
    ) -> Result<TemplateVersion> {
        let template = self.visible_template(caller, id).await?;
        Ok(self
            .store()
            .get_template_version(template.id, version)
            .await?)
    }

    /// Loads a live template the caller may see: admin and system any; a generator its
    /// own and the global ones (another generator's is `NotFound`); agents `Forbidden`.
    pub(crate) async fn visible_template(
        &self,
        caller: &Actor,
        id: TemplateId,
    ) -> Result<Template> {
        access::require_admin_or_generator(caller)?;
        let template = self.store().get_template(id).await?;
        match (caller, template.generator_id) {
            (Actor::Generator(me), Some(owner)) if owner != *me => {
                Err(Error::not_found("template", id))
            }
            _ => Ok(template),
        }
    }

    /// Loads a live template the caller may change: admin and system any; a generator
    /// only its own (a global template, which it can see, is `Forbidden`; another
    /// generator's is `NotFound`).
    pub(crate) async fn changeable_template(
        &self,
        caller: &Actor,
        id: TemplateId,
    ) -> Result<Template> {
        let template = self.visible_template(caller, id).await?;
        match (caller, template.generator_id) {
            (Actor::Generator(_), None) => Err(Error::forbidden(
                "global templates are changed by admin only",
            )),
            _ => Ok(template),
        }
    }
}

/// `Template` unless the source compiles and the schema is a valid JSON Schema.
/// Compiling is CPU work, so it runs off the async workers.
async fn check_template(content: String, schema: serde_json::Value) -> Result<()> {
    off_workers(move || crate::template::check(&content, &schema)).await??;
    Ok(())
}
