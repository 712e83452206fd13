//! Templates and render-then-append: who may see, change and render which template,
//! provenance on what is appended, dry runs that store nothing, registered
//! generators, and bad templates or parameters that store nothing.

use serde_json::{Value, json};

use super::callers::{Answer, World, assert_no_mismatches, matrix};
use crate::generator::{self, GenerateRequest, Generated};
use crate::runtime::{ControlPlane, Error, GenerateSource, IncludeContent};
use crate::testing::conformance::config_map_yaml;
use crate::{
    Actor, GeneratorId, GeneratorRegistry, NewTemplate, NewTemplateVersion, PageRequest, StackId,
    TemplateFilter, TemplateId, store,
};

const OK: Answer = Answer::Ok;
const NO: Answer = Answer::Forbidden;
const NF: Answer = Answer::NotFound;

/// A ConfigMap named by `params.name` with `params.version` (default "1").
fn content() -> String {
    config_map_yaml("{{ params.name }}", "{{ params.version }}")
}

fn schema() -> Value {
    json!({
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string", "default": "1"}
        }
    })
}

fn new_template(name: &str, owner: Option<GeneratorId>) -> NewTemplate {
    NewTemplate {
        name: name.into(),
        generator_id: owner,
        content: content(),
        parameters_schema: schema(),
        ..Default::default()
    }
}

async fn mk_owned_template(
    cp: &ControlPlane,
    name: &str,
    owner: Option<GeneratorId>,
) -> TemplateId {
    cp.create_template(&Actor::System, new_template(name, owner))
        .await
        .expect("create fixture template")
        .id
}

fn from_template(id: TemplateId, version: Option<i32>) -> GenerateSource {
    GenerateSource::Template { id, version }
}

async fn history_len(cp: &ControlPlane, stack: StackId) -> usize {
    let page = PageRequest::first(100);
    let objects = cp
        .list_deployment_objects(&Actor::Admin, stack, IncludeContent::No, &page)
        .await;
    objects.expect("admin reads any history").items.len()
}

/// A registered generator: one ConfigMap named after the stack.
struct StackConfig;

impl crate::Generator for StackConfig {
    fn name(&self) -> &str {
        "stack-config"
    }

    fn parameters_schema(&self) -> Value {
        json!({"type": "object"})
    }

    fn generate(&self, request: &GenerateRequest<'_>) -> generator::Result<Generated> {
        let yaml = config_map_yaml(&request.stack.name, "1");
        Generated::from_yaml(yaml, request.parameters.clone(), request.limits)
    }
}

crate::runtime_cases! {
    async fn template_operations_answer_every_caller_as_specified(cp: ControlPlane) {
        let w = World::new(&cp).await;
        let page = &PageRequest::first(10);
        let mine = mk_owned_template(&cp, "mine", Some(w.generator)).await;
        let global = mk_owned_template(&cp, "global", None).await;
        let mut bad = Vec::new();
        // The owner's template: like a stack.
        let row_owner = [OK, OK, NO, NO, OK, NF];
        // A global template: every generator sees it, only admin and system change it.
        let global_read = [OK, OK, NO, NO, OK, OK];
        let global_write = [OK, OK, NO, NO, NO, NO];
        bad.extend(matrix("create_template", [OK, OK, NO, NO, OK, OK], |who| {
            let cp = cp.clone();
            async move {
                let new = new_template(&format!("new-{who:?}"), None);
                cp.create_template(&w.actor(who, w.agent), new).await
            }
        }).await);
        bad.extend(matrix("list_templates", [OK, OK, NO, NO, OK, OK], |who| {
            let cp = cp.clone();
            async move { cp.list_templates(&w.actor(who, w.agent), TemplateFilter::default(), IncludeContent::No, page).await }
        }).await);
        for (id, read, write) in [(mine, row_owner, row_owner), (global, global_read, global_write)] {
            bad.extend(matrix("get_template", read, |who| {
                let cp = cp.clone();
                async move { cp.get_template(&w.actor(who, w.agent), id).await }
            }).await);
            bad.extend(matrix("list_template_versions", read, |who| {
                let cp = cp.clone();
                async move { cp.list_template_versions(&w.actor(who, w.agent), id, page).await }
            }).await);
            bad.extend(matrix("get_template_version", read, |who| {
                let cp = cp.clone();
                async move { cp.get_template_version(&w.actor(who, w.agent), id, 1).await }
            }).await);
            bad.extend(matrix("update_template", write, |who| {
                let cp = cp.clone();
                async move {
                    let version = NewTemplateVersion { content: content(), parameters_schema: schema() };
                    cp.update_template(&w.actor(who, w.agent), id, version).await
                }
            }).await);
        }
        bad.extend(matrix("delete_template", row_owner, |who| {
            let cp = cp.clone();
            async move {
                let id = mk_owned_template(&cp, &format!("delete-{who:?}"), Some(w.generator)).await;
                cp.delete_template(&w.actor(who, w.agent), id).await
            }
        }).await);
        // Rendering needs the stack and the template: the owner renders its own
        // template and global ones on its own stack.
        for id in [mine, global] {
            bad.extend(matrix("render", row_owner, |who| {
                let cp = cp.clone();
                async move {
                    let params = json!({"name": "cfg"});
                    cp.render(&w.actor(who, w.agent), w.stack, &from_template(id, None), params).await
                }
            }).await);
        }
        bad.extend(matrix("registered_generators", [OK, OK, NO, NO, OK, OK], |who| {
            let cp = cp.clone();
            async move { cp.registered_generators(&w.actor(who, w.agent)) }
        }).await);
        assert_no_mismatches(bad);
    }

    async fn a_generator_sees_its_own_and_global_templates_only(cp: ControlPlane) {
        let w = World::new(&cp).await;
        let me = Actor::Generator(w.generator);
        let theirs = mk_owned_template(&cp, "theirs", Some(w.other_generator)).await;
        mk_owned_template(&cp, "mine", Some(w.generator)).await;
        mk_owned_template(&cp, "global", None).await;
        let page = PageRequest::first(100);
        let names = |templates: crate::Page<crate::ListedTemplate>| {
            let mut names: Vec<_> = templates.items.into_iter().map(|t| t.name).collect();
            names.sort();
            names
        };
        let all = cp.list_templates(&me, TemplateFilter::default(), IncludeContent::No, &page).await.unwrap();
        assert_eq!(names(all), ["global", "mine"]);
        let filter = TemplateFilter { generator_id: Some(w.generator), ..Default::default() };
        let own = cp.list_templates(&me, filter, IncludeContent::No, &page).await.unwrap();
        assert_eq!(names(own), ["mine"]);
        let filter = TemplateFilter { generator_id: Some(w.other_generator), ..Default::default() };
        let err = cp.list_templates(&me, filter, IncludeContent::No, &page).await.unwrap_err();
        assert!(matches!(err, Error::Forbidden(_)), "{err:?}");

        // Another generator's template cannot be rendered, even on one's own stack.
        let params = json!({"name": "cfg"});
        let err = cp.render(&me, w.stack, &from_template(theirs, None), params).await.unwrap_err();
        assert!(matches!(err, Error::Store(store::Error::NotFound { .. })), "{err:?}");
    }

    async fn render_then_append_records_provenance(cp: ControlPlane) {
        let w = World::new(&cp).await;
        let me = Actor::Generator(w.generator);
        let id = mk_owned_template(&cp, "cfg", Some(w.generator)).await;
        let version = NewTemplateVersion {
            content: config_map_yaml("v2-{{ params.name }}", "{{ params.version }}"),
            parameters_schema: schema(),
        };
        cp.update_template(&me, id, version).await.expect("owner adds version 2");

        let before = history_len(&cp, w.stack).await;
        let params = json!({"name": "cfg"});
        let object = cp
            .generate_deployment_object(&me, w.stack, &from_template(id, None), params.clone())
            .await
            .expect("render the latest version");
        let provenance = object.provenance.clone().expect("provenance recorded");
        assert_eq!(provenance.template_id, Some(id));
        assert_eq!(provenance.template_version, Some(2));
        assert_eq!(provenance.generator, None);
        // The parameters after schema defaults.
        assert_eq!(provenance.parameters, json!({"name": "cfg", "version": "1"}));
        assert_eq!(object.yaml_content, config_map_yaml("v2-cfg", "1"));
        assert_eq!(object.yaml_checksum, crate::model::checksum(&object.yaml_content));
        assert_eq!(history_len(&cp, w.stack).await, before + 1);

        // An older version on request.
        let object = cp
            .generate_deployment_object(&me, w.stack, &from_template(id, Some(1)), params)
            .await
            .expect("render version 1");
        assert_eq!(object.yaml_content, config_map_yaml("cfg", "1"));
        assert_eq!(object.provenance.unwrap().template_version, Some(1));
    }

    async fn a_dry_run_stores_nothing(cp: ControlPlane) {
        let w = World::new(&cp).await;
        let me = Actor::Generator(w.generator);
        let id = mk_owned_template(&cp, "cfg", None).await;
        let before = (history_len(&cp, w.stack).await, audit_len(&cp).await);
        let params = json!({"name": "cfg", "version": "7"});
        let rendered = cp.render(&me, w.stack, &from_template(id, None), params).await.unwrap();
        assert_eq!(rendered.object().yaml_content(), config_map_yaml("cfg", "7"));
        assert_eq!(rendered.provenance().template_id, Some(id));
        assert_eq!(rendered.provenance().template_version, Some(1));
        let keys: Vec<_> = rendered.objects().iter().map(|k| (k.kind.as_str(), k.name.as_str())).collect();
        assert_eq!(keys, [("ConfigMap", "cfg")]);
        assert_eq!((history_len(&cp, w.stack).await, audit_len(&cp).await), before);
    }

    async fn bad_parameters_and_templates_store_nothing(cp: ControlPlane) {
        let w = World::new(&cp).await;
        let me = Actor::Generator(w.generator);
        let id = mk_owned_template(&cp, "cfg", Some(w.generator)).await;
        let before = history_len(&cp, w.stack).await;
        let err = cp
            .generate_deployment_object(&me, w.stack, &from_template(id, None), json!({"version": 3}))
            .await
            .unwrap_err();
        let Error::Generate(generator::Error::InvalidParameters(violations)) = err else {
            panic!("{err:?}")
        };
        assert_eq!(violations.len(), 2, "{violations:?}");
        let err = cp
            .generate_deployment_object(&me, w.stack, &from_template(id, Some(9)), json!({"name": "a"}))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Store(store::Error::NotFound { .. })), "{err:?}");
        assert_eq!(history_len(&cp, w.stack).await, before);

        // A template that does not compile is never stored.
        let broken = NewTemplateVersion { content: "{% if %}".into(), parameters_schema: schema() };
        let err = cp.update_template(&me, id, broken).await.unwrap_err();
        assert!(matches!(err, Error::Template(_)), "{err:?}");
        let mut bad_schema = new_template("bad-schema", None);
        bad_schema.parameters_schema = json!({"type": "no-such-type"});
        let err = cp.create_template(&me, bad_schema).await.unwrap_err();
        assert!(matches!(err, Error::Template(_)), "{err:?}");
        let versions = cp.list_template_versions(&me, id, &PageRequest::first(10)).await.unwrap();
        assert_eq!(versions.items.len(), 1);
    }

    async fn registered_generators_render_then_append(cp: ControlPlane) {
        let w = World::new(&cp).await;
        let mut generators = GeneratorRegistry::new();
        generators.register(StackConfig);
        // The same store, with a registered generator: nothing in the background is
        // needed to render.
        let cp = ControlPlane::builder(std::sync::Arc::clone(cp.store()))
            .generators(generators)
            .build();
        let me = Actor::Generator(w.generator);
        let listed = cp.registered_generators(&me).unwrap();
        assert_eq!(listed.iter().map(|g| g.name()).collect::<Vec<_>>(), ["stack-config"]);
        let err = cp.registered_generator(&me, "nope").err().expect("unknown name");
        assert!(matches!(err, Error::Store(store::Error::NotFound { .. })), "{err:?}");

        let source = GenerateSource::Registered("stack-config".into());
        let object = cp
            .generate_deployment_object(&me, w.stack, &source, json!({"size": 1}))
            .await
            .unwrap();
        assert_eq!(object.yaml_content, config_map_yaml("stack", "1"));
        let provenance = object.provenance.unwrap();
        assert_eq!(provenance.generator.as_deref(), Some("stack-config"));
        assert_eq!((provenance.template_id, provenance.template_version), (None, None));
        assert_eq!(provenance.parameters, json!({"size": 1}));
        // Another generator's stack stays unseen, whatever renders it.
        let other = Actor::Generator(w.other_generator);
        let err = cp.render(&other, w.stack, &source, json!({})).await.unwrap_err();
        assert!(matches!(err, Error::Store(store::Error::NotFound { .. })), "{err:?}");
    }
}

async fn audit_len(cp: &ControlPlane) -> usize {
    let page = PageRequest::first(1000);
    let records = cp
        .list_audit_records(&Actor::Admin, Default::default(), &page)
        .await;
    records.expect("admin reads the audit log").items.len()
}
