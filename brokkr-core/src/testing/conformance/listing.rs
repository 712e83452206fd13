//! Deployment-object listings bounded in bytes: the YAML only when asked for, and then
//! pages that end at the byte budget.

use super::fixtures::{ADMIN, mk_stack};
use super::support::{all, all_objects, pages, walk};
use crate::id::StackId;
use crate::model::{DeploymentObject, ListedDeploymentObject, NewDeploymentObject};
use crate::page::{ContentListing, Order, Page};
use crate::store::Store;

cases!(
    /// Without `Include` no entry carries its YAML, and every other field, the YAML's
    /// size included, is the stored object's; with it, the entries are the objects.
    pub async fn listings_carry_yaml_only_when_asked(store: &dyn Store) {
        let stack = mk_stack(store, "sized").await;
        let mut objects = Vec::new();
        for (i, size) in [300, 5_000, 1_200].into_iter().enumerate() {
            objects.push(append_sized(store, stack.id, i, size).await);
        }
        objects.push(store.delete_stack(&ADMIN, stack.id).await.expect("delete"));

        let bare = all(async |p| {
            store
                .list_deployment_objects(stack.id, ContentListing::Omit, &p)
                .await
        })
        .await;
        let expected: Vec<ListedDeploymentObject> = objects
            .iter()
            .cloned()
            .map(|o| ListedDeploymentObject::from(o).without_yaml())
            .collect();
        assert_eq!(bare, expected);
        assert!(bare.iter().all(|o| o.yaml_content.is_none()));
        let sizes: Vec<u64> = bare.iter().map(|o| o.yaml_bytes).collect();
        let want: Vec<u64> = objects
            .iter()
            .map(|o| o.yaml_content.len() as u64)
            .collect();
        assert_eq!(sizes, want, "sizes are reported without the YAML");
        assert_eq!(sizes.last(), Some(&0), "a deletion marker has no YAML");

        assert_eq!(all_objects(store, stack.id).await, objects);
    }

    /// With the YAML, a page ends before its YAML would pass the budget, with a cursor
    /// that continues exactly after it; an object larger than the budget comes alone
    /// on its page; the row limit still applies. Both directions.
    pub async fn yaml_pages_end_at_the_byte_budget(store: &dyn Store) {
        let stack = mk_stack(store, "budget").await;
        let mut objects = Vec::new();
        for (i, size) in [1_000, 1_000, 1_000, 6_000, 500, 500, 500, 500, 500]
            .into_iter()
            .enumerate()
        {
            objects.push(append_sized(store, stack.id, i, size).await);
        }
        for order in [Order::Ascending, Order::Descending] {
            let mut expected = objects.clone();
            if order == Order::Descending {
                expected.reverse();
            }
            for (limit, budget) in [(100, 2_500), (2, 2_500), (100, 100), (3, 100_000)] {
                let pages = pages_of(store, stack.id, limit, order, budget).await;
                let sizes: Vec<u64> = expected
                    .iter()
                    .map(|o| o.yaml_content.len() as u64)
                    .collect();
                let want = split(&sizes, limit as usize, budget);
                let got: Vec<usize> = pages.iter().map(|p| p.items.len()).collect();
                assert_eq!(
                    got, want,
                    "page lengths, limit {limit}, budget {budget}, {order:?}; sizes {sizes:?}"
                );
                let listed: Vec<DeploymentObject> = pages
                    .into_iter()
                    .flat_map(|p| p.items)
                    .map(|o| o.into_object().expect("the listing includes the YAML"))
                    .collect();
                assert_eq!(listed, expected, "every object once, in order");
            }
        }
    }

    /// An object larger than the whole budget still comes, alone, and paging goes on
    /// past it; the last page has no cursor.
    pub async fn an_object_over_the_budget_comes_alone(store: &dyn Store) {
        let stack = mk_stack(store, "huge").await;
        let big = append_sized(store, stack.id, 0, 20_000).await;
        let small = append_sized(store, stack.id, 1, 200).await;
        let pages = pages_of(store, stack.id, 100, Order::Ascending, 1_000).await;
        assert_eq!(pages.len(), 2);
        assert_eq!(pages[0].items.len(), 1);
        assert_eq!(
            pages[0].items[0].yaml_content.as_deref(),
            Some(&*big.yaml_content)
        );
        assert!(pages[0].next_cursor.is_some());
        assert_eq!(pages[1].items.len(), 1);
        assert_eq!(pages[1].items[0].id, small.id);
        assert_eq!(pages[1].next_cursor, None);

        let walked = walk(100, Order::Ascending, async |p| {
            store
                .list_deployment_objects(stack.id, ContentListing::Include { page_bytes: 0 }, &p)
                .await
        })
        .await;
        assert_eq!(
            walked.len(),
            2,
            "a zero budget still pages one object at a time"
        );
    }
);

/// Appends a ConfigMap whose YAML is about `size` bytes.
async fn append_sized(
    store: &dyn Store,
    stack: StackId,
    index: usize,
    size: usize,
) -> DeploymentObject {
    let yaml = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: sized-{index}\ndata:\n  padding: \"{}\"\n",
        "x".repeat(size.saturating_sub(80))
    );
    let new = NewDeploymentObject::from_yaml(stack, yaml).expect("valid YAML");
    store
        .append_deployment_object(&ADMIN, new)
        .await
        .expect("append")
}

/// Every page of a listing with the YAML under `budget`, in `order`.
async fn pages_of(
    store: &dyn Store,
    stack: StackId,
    limit: u32,
    order: Order,
    budget: u64,
) -> Vec<Page<ListedDeploymentObject>> {
    let yaml = ContentListing::Include { page_bytes: budget };
    pages(limit, order, async |p| {
        store.list_deployment_objects(stack, yaml, &p).await
    })
    .await
}

/// The page lengths the contract gives for rows of `sizes` in listing order: a page
/// takes its first row whatever its size, then more while the content stays within
/// `budget` and the page within `limit`.
pub(super) fn split(sizes: &[u64], limit: usize, budget: u64) -> Vec<usize> {
    let mut pages = Vec::new();
    let mut rest = sizes;
    while !rest.is_empty() {
        let mut total = rest[0];
        let mut len = 1;
        while len < limit.min(rest.len()) && total + rest[len] <= budget {
            total += rest[len];
            len += 1;
        }
        pages.push(len);
        rest = &rest[len..];
    }
    pages
}
