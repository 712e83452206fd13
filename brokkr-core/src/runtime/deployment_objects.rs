//! Deployment objects sent as YAML: append, list, read.
//!
//! Listings leave the YAML out unless asked, and bound a page that carries it in bytes:
//! a stack's history can hold many objects of several MiB.
//!
//! The YAML is parsed, validated and hashed before anything is stored, on a blocking
//! thread: a deployment object may be as large as `Settings::max_yaml_bytes` (8 MiB by
//! default), and parsing that on an async worker would stall every request and long
//! poll scheduled on it. A small one (up to [`INLINE_PARSE_BYTES`]) is parsed where it
//! arrived, which costs less than the trip to a blocking thread.

use crate::id::{DeploymentObjectId, StackId};
use crate::manifest::ParseOptions;
use crate::model::{Actor, DeploymentObject, ListedDeploymentObject, NewDeploymentObject};
use crate::page::{Page, PageRequest};
use crate::store;

use super::ControlPlane;
use super::access;
use super::error::{Error, Result};
use super::listing::IncludeContent;
use super::plan::GuardOptions;
use super::render::off_workers;

/// Manifests up to this size are parsed on the async worker that received them: about
/// 0.1 ms of work (a 300-byte ConfigMap parses in 30-60 µs on two slow cores), less
/// than handing it to a blocking thread and back costs in wake-ups. Larger ones go to
/// [`off_workers`].
const INLINE_PARSE_BYTES: usize = 1024;

impl ControlPlane {
    /// Appends a deployment object holding `yaml` to a live stack the caller may see.
    /// An invalid document is `Manifest` naming the document; YAML over
    /// `Settings::max_yaml_bytes` is `Manifest(TooLarge)`; nothing is stored then. A
    /// change over the guard's limits is `BlastRadiusExceeded` (confirm it through
    /// [`ControlPlane::guarded`]).
    pub async fn append_deployment_object(
        &self,
        caller: &Actor,
        stack: StackId,
        yaml: String,
    ) -> Result<DeploymentObject> {
        self.guarded(GuardOptions::default())
            .append_deployment_object(caller, stack, yaml)
            .await?
            .done()
    }

    /// Appends a deletion marker to a live stack the caller may see: every agent
    /// responsible for the stack removes its objects, and the stack lives on (deleting
    /// it is [`ControlPlane::delete_stack`]).
    pub async fn append_deletion_marker(
        &self,
        caller: &Actor,
        stack: StackId,
    ) -> Result<DeploymentObject> {
        self.guarded(GuardOptions::default())
            .append_deletion_marker(caller, stack)
            .await?
            .done()
    }

    /// Sends every agent of the stack an older, live deployment object of the stack
    /// again, by appending a copy of it (content and provenance). `NotFound` for an
    /// object of another stack, `Invalid` for a deletion marker or the latest object.
    pub async fn rollback(
        &self,
        caller: &Actor,
        stack: StackId,
        to: DeploymentObjectId,
    ) -> Result<DeploymentObject> {
        self.guarded(GuardOptions::default())
            .rollback(caller, stack, to)
            .await?
            .done()
    }

    /// A stack's deployment objects, ordered by sequence; also of a deleted stack, for
    /// its owner and admin. The YAML comes only with [`IncludeContent::Yes`], and then a
    /// page also ends before its YAML passes `Settings::listing_yaml_bytes` (at least
    /// one object per page): a page is bounded in bytes, not only in objects.
    pub async fn list_deployment_objects(
        &self,
        caller: &Actor,
        stack: StackId,
        include: IncludeContent,
        page: &PageRequest,
    ) -> Result<Page<ListedDeploymentObject>> {
        self.check_stack_history(caller, stack).await?;
        let yaml = self.content_listing(include);
        Ok(self
            .store()
            .list_deployment_objects(stack, yaml, page)
            .await?)
    }

    /// One deployment object, also of a deleted stack, for its stack's owner and admin.
    /// An object of a stack the caller may not see is `NotFound` as a deployment
    /// object, so the answer does not reveal which stack it belongs to.
    pub async fn get_deployment_object(
        &self,
        caller: &Actor,
        id: DeploymentObjectId,
    ) -> Result<DeploymentObject> {
        access::require_admin_or_generator(caller)?;
        let object = self.store().get_deployment_object(id).await?;
        match self.check_stack_history(caller, object.stack_id).await {
            Ok(()) => Ok(object),
            Err(Error::Store(store::Error::NotFound { .. })) => {
                Err(Error::not_found("deployment object", id))
            }
            Err(other) => Err(other),
        }
    }

    /// Parses, validates and hashes `yaml` for `stack`, within
    /// `Settings::max_yaml_bytes`: on a blocking thread, unless it is at most
    /// [`INLINE_PARSE_BYTES`]. Stores nothing.
    pub(crate) async fn parse_deployment_object(
        &self,
        stack: StackId,
        yaml: String,
    ) -> Result<NewDeploymentObject> {
        let options = self.parse_options();
        if yaml.len() <= INLINE_PARSE_BYTES {
            return Ok(NewDeploymentObject::from_yaml_with(stack, yaml, &options)?);
        }
        let parsed =
            off_workers(move || NewDeploymentObject::from_yaml_with(stack, yaml, &options)).await?;
        Ok(parsed?)
    }

    /// The manifest parser's limits for a deployment object, sent or rendered.
    pub(crate) fn parse_options(&self) -> ParseOptions {
        ParseOptions {
            max_bytes: self.settings().max_yaml_bytes,
            ..ParseOptions::default()
        }
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use crate::model::NewStack;
    use crate::testing::MemoryStore;

    use super::*;

    /// Multi-document YAML of ConfigMaps, just under `limit` bytes.
    fn big_yaml(limit: usize) -> String {
        let mut yaml = String::with_capacity(limit);
        let value = "v".repeat(900);
        for i in 0.. {
            let doc = format!(
                "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\ndata:\n  a: {value}\n  b: {value}\n"
            );
            if yaml.len() + doc.len() > limit {
                break;
            }
            yaml.push_str(&doc);
        }
        yaml
    }

    /// The control plane leaves the YAML out unless asked, and bounds a page that
    /// carries it by `Settings::listing_yaml_bytes`.
    #[tokio::test]
    async fn a_listing_with_yaml_pages_by_the_configured_bytes() {
        let settings = crate::runtime::Settings {
            listing_yaml_bytes: 1_500,
            ..Default::default()
        };
        let control_plane = ControlPlane::builder(Arc::new(MemoryStore::new()))
            .settings(settings)
            .build();
        let stack = control_plane
            .create_stack(
                &Actor::Admin,
                NewStack {
                    name: "paged".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .id;
        for i in 0..3 {
            let yaml = format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c{i}\ndata:\n  a: {}\n",
                "v".repeat(900)
            );
            control_plane
                .append_deployment_object(&Actor::Admin, stack, yaml)
                .await
                .unwrap();
        }
        let page = PageRequest::first(100);
        let list =
            |include| control_plane.list_deployment_objects(&Actor::Admin, stack, include, &page);

        let bare = list(IncludeContent::No).await.unwrap();
        assert_eq!(bare.items.len(), 3);
        assert_eq!(bare.next_cursor, None);
        assert!(
            bare.items
                .iter()
                .all(|o| o.yaml_content.is_none() && o.yaml_bytes > 900)
        );

        // Each object's YAML is over half the budget: one per page.
        let full = list(IncludeContent::Yes).await.unwrap();
        assert_eq!(full.items.len(), 1);
        assert!(full.items[0].yaml_content.is_some());
        assert!(full.next_cursor.is_some());
    }

    /// On a runtime with a single worker thread, a task that ticks every millisecond
    /// keeps ticking while an 8 MiB deployment object is parsed and hashed: the work
    /// runs on a blocking thread. Parsed on the worker, the ticker would stop for as
    /// long as the parse takes.
    #[test]
    fn an_8_mib_object_is_parsed_off_the_async_worker() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime");
        runtime.block_on(async {
            let control_plane = ControlPlane::builder(Arc::new(MemoryStore::new())).build();
            let stack = control_plane
                .create_stack(
                    &Actor::Admin,
                    NewStack {
                        name: "big".into(),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            let yaml = big_yaml(control_plane.settings().max_yaml_bytes);
            assert!(yaml.len() > 8_000_000, "{} bytes", yaml.len());

            let done = Arc::new(AtomicBool::new(false));
            let ticker = tokio::spawn({
                let done = Arc::clone(&done);
                async move {
                    let (mut last, mut longest) = (Instant::now(), Duration::ZERO);
                    while !done.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        longest = longest.max(last.elapsed());
                        last = Instant::now();
                    }
                    longest
                }
            });
            // Let the ticker start before the work does.
            tokio::time::sleep(Duration::from_millis(5)).await;
            let started = Instant::now();
            let object = control_plane
                .append_deployment_object(&Actor::Admin, stack.id, yaml)
                .await
                .expect("a valid 8 MiB object");
            let took = started.elapsed();
            done.store(true, Ordering::Relaxed);
            let longest_pause = ticker.await.unwrap();

            assert_eq!(object.yaml_checksum.len(), 64);
            // The comparison means something only if the work takes a while.
            assert!(
                took > Duration::from_millis(40),
                "append took only {took:?}"
            );
            assert!(
                longest_pause < took / 4,
                "the async worker stalled for {longest_pause:?} of a {took:?} append"
            );
        });
    }
}
