//! Templates as a listing returns them: the latest version's source and parameter
//! schema only when asked for, and then within a byte budget per page.
//!
//! Either may be as large as a request body (8 MiB by default) and a page may hold
//! 1,000 templates, so a listing bounded by count alone could hold gigabytes; see
//! [`ContentListing`].

use chrono::{DateTime, Utc};

use super::generator::{Template, TemplateVersion};
use crate::id::{GeneratorId, TemplateId};
use crate::metadata::{Annotations, Labels};
#[cfg(doc)]
use crate::page::ContentListing;

/// A template in a listing: everything [`Template`] holds, with the latest version's
/// content only when the listing asked for it ([`ContentListing::Include`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedTemplate {
    /// Its id, shared by all its versions.
    pub id: TemplateId,
    /// Unique among templates that are not deleted.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// The owning generator; `None` for a global (admin) template.
    pub generator_id: Option<GeneratorId>,
    /// Labels.
    pub labels: Labels,
    /// Annotations.
    pub annotations: Annotations,
    /// The newest version, its content only when asked for.
    pub latest: ListedTemplateVersion,
    /// When the template was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed (a new version counts).
    pub updated_at: DateTime<Utc>,
    /// When it was deleted (soft deletion).
    pub deleted_at: Option<DateTime<Utc>>,
}

/// A template's latest version in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedTemplateVersion {
    /// 1 for the first, then +1 per update.
    pub version: i32,
    /// minijinja source; `None` when the listing left it out.
    pub content: Option<String>,
    /// JSON Schema of the parameters; `None` when the listing left it out.
    pub parameters_schema: Option<serde_json::Value>,
    /// Size of the source in bytes, also when it was left out.
    pub content_bytes: u64,
    /// Size of the schema as JSON text in bytes, as the store keeps it (PostgreSQL's
    /// `jsonb` writes a space after `:` and `,`, so it may exceed the compact JSON an
    /// answer carries, never fall short of it), also when it was left out.
    pub parameters_schema_bytes: u64,
    /// When this version was stored.
    pub created_at: DateTime<Utc>,
}

impl ListedTemplate {
    /// The bytes of content the entry carries with [`ContentListing::Include`]: what a
    /// page's byte budget counts.
    pub fn content_bytes(&self) -> u64 {
        self.latest
            .content_bytes
            .saturating_add(self.latest.parameters_schema_bytes)
    }

    /// The same entry without its content, as a listing with [`ContentListing::Omit`]
    /// returns it.
    pub fn without_content(mut self) -> Self {
        self.latest.content = None;
        self.latest.parameters_schema = None;
        self
    }

    /// The whole template, when the listing carried its content.
    pub fn into_template(self) -> Option<Template> {
        let latest = TemplateVersion {
            template_id: self.id,
            version: self.latest.version,
            content: self.latest.content?,
            parameters_schema: self.latest.parameters_schema?,
            created_at: self.latest.created_at,
        };
        Some(Template {
            id: self.id,
            name: self.name,
            description: self.description,
            generator_id: self.generator_id,
            labels: self.labels,
            annotations: self.annotations,
            latest,
            created_at: self.created_at,
            updated_at: self.updated_at,
            deleted_at: self.deleted_at,
        })
    }
}

/// The entry of a listing that carries the content, its schema measured as compact JSON.
impl From<Template> for ListedTemplate {
    fn from(t: Template) -> Self {
        let latest = ListedTemplateVersion {
            version: t.latest.version,
            content_bytes: t.latest.content.len() as u64,
            parameters_schema_bytes: t.latest.parameters_schema.to_string().len() as u64,
            content: Some(t.latest.content),
            parameters_schema: Some(t.latest.parameters_schema),
            created_at: t.latest.created_at,
        };
        Self {
            id: t.id,
            name: t.name,
            description: t.description,
            generator_id: t.generator_id,
            labels: t.labels,
            annotations: t.annotations,
            latest,
            created_at: t.created_at,
            updated_at: t.updated_at,
            deleted_at: t.deleted_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listed_template_converts_back_only_with_its_content() {
        let id = TemplateId::new();
        let template = Template {
            id,
            name: "t".into(),
            description: None,
            generator_id: None,
            labels: Labels::new(),
            annotations: Annotations::new(),
            latest: TemplateVersion {
                template_id: id,
                version: 3,
                content: "kind: {{ kind }}\n".into(),
                parameters_schema: serde_json::json!({"type": "object"}),
                created_at: Utc::now(),
            },
            created_at: Utc::now(),
            updated_at: Utc::now(),
            deleted_at: None,
        };
        let listed = ListedTemplate::from(template.clone());
        assert_eq!(listed.latest.content_bytes, 17);
        assert_eq!(listed.latest.parameters_schema_bytes, 17);
        assert_eq!(listed.content_bytes(), 34);
        assert_eq!(listed.clone().into_template(), Some(template));
        let bare = listed.without_content();
        assert_eq!(bare.content_bytes(), 34);
        assert_eq!(bare.latest.content, None);
        assert_eq!(bare.into_template(), None);
    }
}
