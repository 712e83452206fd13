//! Template listings bounded in bytes: the latest version's source and schema only
//! when asked for, and then pages that end at the byte budget.

use serde_json::json;

use super::fixtures::{ADMIN, new_template};
use super::listing::split;
use super::support::{all, pages};
use crate::model::{ListedTemplate, NewTemplate, NewTemplateVersion, Template};
use crate::page::{ContentListing, Order, Page};
use crate::store::{Store, TemplateFilter};

cases!(
    /// Without `Include` no entry carries its source or schema, and every other field
    /// is the stored template's: its latest version, the source's exact size, the
    /// schema's size as JSON text (never below its compact JSON); with it, the
    /// entries are the templates, deleted ones included on request.
    pub async fn template_listings_carry_content_only_when_asked(store: &dyn Store) {
        let mut templates = Vec::new();
        for (i, size) in [300, 5_000, 1_200].into_iter().enumerate() {
            templates.push(mk_sized(store, i, size, 40).await);
        }
        let next = NewTemplateVersion {
            content: "v2: {{ name }}\n".into(),
            parameters_schema: json!({"type": "object", "title": "second"}),
        };
        templates[1] = store
            .add_template_version(&ADMIN, templates[1].id, next)
            .await
            .expect("version 2");
        store
            .delete_template(&ADMIN, templates[2].id)
            .await
            .expect("delete");
        templates[2] = Template {
            deleted_at: Some(chrono::Utc::now()),
            ..templates[2].clone()
        };
        templates.sort_by_key(|t| t.id);
        let filter = TemplateFilter {
            include_deleted: true,
            ..Default::default()
        };

        let bare = all(async |p| {
            store
                .list_templates(&filter, ContentListing::Omit, &p)
                .await
        })
        .await;
        assert_eq!(bare.len(), 3);
        for (listed, template) in bare.iter().zip(&templates) {
            let expected = ListedTemplate::from(template.clone()).without_content();
            let compact = expected.latest.parameters_schema_bytes;
            assert!(listed.latest.content.is_none() && listed.latest.parameters_schema.is_none());
            assert_eq!(
                listed.latest.content_bytes,
                template.latest.content.len() as u64
            );
            let schema = listed.latest.parameters_schema_bytes;
            assert!(
                (compact..=2 * compact).contains(&schema),
                "schema of {compact} compact bytes measured as {schema}"
            );
            // Deleting moved the deleted template's times; the rest is as created.
            assert_eq!(listed.deleted_at.is_some(), template.deleted_at.is_some());
            let deleted = template.deleted_at.is_some();
            let same_but_times = ListedTemplate {
                updated_at: if deleted {
                    listed.updated_at
                } else {
                    expected.updated_at
                },
                deleted_at: listed.deleted_at,
                latest: crate::model::ListedTemplateVersion {
                    parameters_schema_bytes: schema,
                    ..expected.latest.clone()
                },
                ..expected
            };
            assert_eq!(listed, &same_but_times);
        }

        let full = all(async |p| {
            store
                .list_templates(
                    &filter,
                    ContentListing::Include {
                        page_bytes: u64::MAX,
                    },
                    &p,
                )
                .await
        })
        .await;
        for (listed, template) in full.into_iter().zip(&templates) {
            let listed = listed
                .into_template()
                .expect("the listing includes the content");
            assert_eq!(listed.latest, template.latest);
            assert_eq!(listed.deleted_at.is_some(), template.deleted_at.is_some());
        }
    }

    /// With the content, a page ends before its sources and schemas together would
    /// pass the budget, with a cursor that continues exactly after it; a template
    /// larger than the budget comes alone; the row limit still applies; a zero budget
    /// pages one template at a time. Both directions.
    pub async fn template_pages_end_at_the_byte_budget(store: &dyn Store) {
        let mut templates = Vec::new();
        for (i, (source, schema)) in [
            (1_000, 40),
            (400, 600),
            (1_000, 40),
            (6_000, 40),
            (500, 40),
            (40, 3_000),
            (500, 40),
        ]
        .into_iter()
        .enumerate()
        {
            templates.push(mk_sized(store, i, source, schema).await);
        }
        templates.sort_by_key(|t| t.id);
        let filter = TemplateFilter::default();
        let sizes: Vec<u64> = all(async |p| {
            store
                .list_templates(&filter, ContentListing::Omit, &p)
                .await
        })
        .await
        .iter()
        .map(ListedTemplate::content_bytes)
        .collect();
        for order in [Order::Ascending, Order::Descending] {
            let (mut expected, mut sizes) = (templates.clone(), sizes.clone());
            if order == Order::Descending {
                expected.reverse();
                sizes.reverse();
            }
            for (limit, budget) in [(100, 2_500), (2, 2_500), (100, 100), (3, 100_000), (100, 0)] {
                let pages = pages_of(store, limit, order, budget).await;
                let want = split(&sizes, limit as usize, budget);
                let got: Vec<usize> = pages.iter().map(|p| p.items.len()).collect();
                assert_eq!(
                    got, want,
                    "page lengths, limit {limit}, budget {budget}, {order:?}; sizes {sizes:?}"
                );
                let listed: Vec<Template> = pages
                    .into_iter()
                    .flat_map(|p| p.items)
                    .map(|t| t.into_template().expect("the listing includes the content"))
                    .collect();
                assert_eq!(listed, expected, "every template once, in order");
            }
        }
    }
);

/// Creates a global template whose source is about `source` bytes and whose schema is
/// about `schema` bytes of compact JSON.
async fn mk_sized(store: &dyn Store, index: usize, source: usize, schema: usize) -> Template {
    let new = NewTemplate {
        content: format!(
            "{{{{ name }}}}: {}\n",
            "x".repeat(source.saturating_sub(14))
        ),
        parameters_schema: json!({
            "type": "object",
            "description": "d".repeat(schema.saturating_sub(37)),
        }),
        ..new_template(&format!("sized-{index}"))
    };
    store
        .create_template(&ADMIN, new)
        .await
        .expect("create template")
}

/// Every page of the live templates with their content under `budget`, in `order`.
async fn pages_of(
    store: &dyn Store,
    limit: u32,
    order: Order,
    budget: u64,
) -> Vec<Page<ListedTemplate>> {
    let content = ContentListing::Include { page_bytes: budget };
    let filter = TemplateFilter::default();
    pages(limit, order, async |p| {
        store.list_templates(&filter, content, &p).await
    })
    .await
}
