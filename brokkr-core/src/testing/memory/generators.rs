//! Generators and templates.

use super::state::{now, overfetch, paginate, parse_uuid};
use super::{MemoryStore, State, TemplateRow};
use crate::id::{GeneratorId, TemplateId};
use crate::model::{
    Actor, AuditAction, Generator, GeneratorUpdate, KeyOwner, ListedTemplate, NewGenerator,
    NewTemplate, NewTemplateVersion, ResourceKind, Template, TemplateVersion,
};
use crate::page::{ContentListing, Page, PageRequest};
use crate::store::{Error, GeneratorFilter, Result, TemplateFilter};

pub(super) fn create_generator(
    store: &MemoryStore,
    actor: &Actor,
    new: NewGenerator,
) -> Result<Generator> {
    new.validate()?;
    let mut state = store.state();
    state.check_generator_name_free(&new.name, None)?;
    state.check_short_id_free(&new.key)?;
    let at = now();
    let generator = Generator {
        id: GeneratorId::new(),
        name: new.name,
        description: new.description,
        created_at: at,
        updated_at: at,
        deleted_at: None,
    };
    state.generators.insert(generator.id, generator.clone());
    state.insert_key(KeyOwner::Generator(generator.id), new.key, at);
    let summary = format!("created generator {:?}", generator.name);
    state.audit(
        actor,
        AuditAction::Create,
        ResourceKind::Generator,
        generator.id,
        summary,
        at,
    );
    Ok(generator)
}

pub(super) fn get_generator(store: &MemoryStore, id: GeneratorId) -> Result<Generator> {
    store.state().live_generator(id).cloned()
}

pub(super) fn list_generators(
    store: &MemoryStore,
    filter: &GeneratorFilter,
    page: &PageRequest,
) -> Result<Page<Generator>> {
    let state = store.state();
    let rows = state
        .generators
        .values()
        .filter(|g| filter.include_deleted || g.deleted_at.is_none())
        .cloned()
        .collect();
    paginate(rows, page, |g| g.id, parse_uuid, |g| g.id.to_string())
}

pub(super) fn update_generator(
    store: &MemoryStore,
    actor: &Actor,
    id: GeneratorId,
    update: GeneratorUpdate,
) -> Result<Generator> {
    update.validate()?;
    let mut state = store.state();
    state.live_generator(id)?;
    if let Some(name) = &update.name {
        state.check_generator_name_free(name, Some(id))?;
    }
    let at = now();
    let generator = state
        .generators
        .get_mut(&id)
        .expect("checked to be live above, under the same lock");
    if let Some(name) = update.name {
        generator.name = name;
    }
    if let Some(description) = update.description {
        generator.description = description;
    }
    generator.updated_at = at;
    let generator = generator.clone();
    let summary = format!("updated generator {:?}", generator.name);
    state.audit(
        actor,
        AuditAction::Update,
        ResourceKind::Generator,
        id,
        summary,
        at,
    );
    Ok(generator)
}

pub(super) fn delete_generator(store: &MemoryStore, actor: &Actor, id: GeneratorId) -> Result<()> {
    let mut state = store.state();
    let name = state.live_generator(id)?.name.clone();
    let at = now();
    let generator = state
        .generators
        .get_mut(&id)
        .expect("checked to be live above, under the same lock");
    generator.deleted_at = Some(at);
    generator.updated_at = at;
    state.revoke_keys(KeyOwner::Generator(id), at);
    let summary = format!("deleted generator {name:?} and revoked its keys");
    state.audit(
        actor,
        AuditAction::Delete,
        ResourceKind::Generator,
        id,
        summary,
        at,
    );
    Ok(())
}

pub(super) fn create_template(
    store: &MemoryStore,
    actor: &Actor,
    new: NewTemplate,
) -> Result<Template> {
    new.validate()?;
    let mut state = store.state();
    if let Some(generator) = new.generator_id {
        state.live_generator(generator)?;
    }
    state.check_template_name_free(&new.name)?;
    let at = now();
    let id = TemplateId::new();
    let row = TemplateRow {
        id,
        name: new.name,
        description: new.description,
        generator_id: new.generator_id,
        labels: new.labels,
        annotations: new.annotations,
        versions: vec![TemplateVersion {
            template_id: id,
            version: 1,
            content: new.content,
            parameters_schema: new.parameters_schema,
            created_at: at,
        }],
        created_at: at,
        updated_at: at,
        deleted_at: None,
    };
    let template = row.to_template();
    let summary = format!("created template {:?} at version 1", row.name);
    state.templates.insert(id, row);
    state.audit(
        actor,
        AuditAction::Create,
        ResourceKind::Template,
        id,
        summary,
        at,
    );
    Ok(template)
}

pub(super) fn get_template(store: &MemoryStore, id: TemplateId) -> Result<Template> {
    Ok(store.state().live_template(id)?.to_template())
}

pub(super) fn get_template_version(
    store: &MemoryStore,
    id: TemplateId,
    version: i32,
) -> Result<TemplateVersion> {
    let state = store.state();
    let row = state
        .templates
        .get(&id)
        .ok_or_else(|| Error::not_found("template", id))?;
    row.versions
        .iter()
        .find(|v| v.version == version)
        .cloned()
        .ok_or_else(|| Error::not_found("template version", format!("{id}@{version}")))
}

pub(super) fn list_templates(
    store: &MemoryStore,
    filter: &TemplateFilter,
    content: ContentListing,
    page: &PageRequest,
) -> Result<Page<ListedTemplate>> {
    let state = store.state();
    let rows: Vec<&TemplateRow> = state
        .templates
        .values()
        .filter(|t| filter.include_deleted || t.deleted_at.is_none())
        .filter(|t| {
            filter
                .generator_id
                .is_none_or(|g| t.generator_id == Some(g))
        })
        .collect();
    let rows = overfetch(rows, page, |t| t.id, parse_uuid)?;
    let rows = rows
        .into_iter()
        .map(|row| ListedTemplate::from(row.to_template()))
        .map(|t| match content {
            ContentListing::Omit => t.without_content(),
            ContentListing::Include { .. } => t,
        })
        .collect();
    Ok(
        content.page(rows, page, ListedTemplate::content_bytes, |t| {
            t.id.to_string()
        }),
    )
}

pub(super) fn list_template_versions(
    store: &MemoryStore,
    id: TemplateId,
    page: &PageRequest,
) -> Result<Page<TemplateVersion>> {
    let state = store.state();
    let row = state
        .templates
        .get(&id)
        .ok_or_else(|| Error::not_found("template", id))?;
    paginate(
        row.versions.clone(),
        page,
        |v| v.version,
        |c| c.parse().ok(),
        |v| v.version.to_string(),
    )
}

pub(super) fn add_template_version(
    store: &MemoryStore,
    actor: &Actor,
    id: TemplateId,
    version: NewTemplateVersion,
) -> Result<Template> {
    let mut state = store.state();
    state.live_template(id)?;
    let at = now();
    let row = state
        .templates
        .get_mut(&id)
        .expect("checked to be live above, under the same lock");
    let number = row.versions.last().map_or(1, |v| v.version + 1);
    row.versions.push(TemplateVersion {
        template_id: id,
        version: number,
        content: version.content,
        parameters_schema: version.parameters_schema,
        created_at: at,
    });
    row.updated_at = at;
    let template = row.to_template();
    let summary = format!("added version {number} to template {:?}", template.name);
    state.audit(
        actor,
        AuditAction::Update,
        ResourceKind::Template,
        id,
        summary,
        at,
    );
    Ok(template)
}

pub(super) fn delete_template(store: &MemoryStore, actor: &Actor, id: TemplateId) -> Result<()> {
    let mut state = store.state();
    let name = state.live_template(id)?.name.clone();
    let at = now();
    let row = state
        .templates
        .get_mut(&id)
        .expect("checked to be live above, under the same lock");
    row.deleted_at = Some(at);
    row.updated_at = at;
    let summary = format!("deleted template {name:?}");
    state.audit(
        actor,
        AuditAction::Delete,
        ResourceKind::Template,
        id,
        summary,
        at,
    );
    Ok(())
}

impl State {
    pub(super) fn check_generator_name_free(
        &self,
        name: &str,
        except: Option<GeneratorId>,
    ) -> Result<()> {
        let taken = self
            .generators
            .values()
            .any(|g| g.deleted_at.is_none() && g.name == name && Some(g.id) != except);
        if taken {
            return Err(Error::Conflict(format!(
                "a generator named {name:?} exists"
            )));
        }
        Ok(())
    }

    pub(super) fn check_template_name_free(&self, name: &str) -> Result<()> {
        let taken = self
            .templates
            .values()
            .any(|t| t.deleted_at.is_none() && t.name == name);
        if taken {
            return Err(Error::Conflict(format!("a template named {name:?} exists")));
        }
        Ok(())
    }
}
