//! Whether a listing carries its rows' large field, and the byte budget of a page that
//! does: shared by the listings of deployment objects (their YAML) and of templates
//! (their latest version's source and parameter schema).

use crate::page::ContentListing;

use super::ControlPlane;

/// Whether a listing carries its rows' large field: a deployment object's YAML
/// ([`ControlPlane::list_deployment_objects`]), a template's source and parameter
/// schema ([`ControlPlane::list_templates`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IncludeContent {
    /// Without it: what a caller needs to browse; a page's size does not depend on the
    /// rows' content.
    #[default]
    No,
    /// With it, in pages bounded by `Settings::listing_yaml_bytes`.
    Yes,
}

impl ControlPlane {
    /// What the store is asked for: the content under this control plane's page budget.
    pub(super) fn content_listing(&self, include: IncludeContent) -> ContentListing {
        match include {
            IncludeContent::No => ContentListing::Omit,
            IncludeContent::Yes => ContentListing::Include {
                page_bytes: self.settings().listing_yaml_bytes as u64,
            },
        }
    }
}
