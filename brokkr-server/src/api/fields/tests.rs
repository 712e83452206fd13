use brokkr_core::metadata::{validate_key, validate_label_value};
use brokkr_core::model::{validate_description, validate_name};
use poem_openapi::validation::{MaxLength, MinLength, Pattern, Validator};
use serde_json::json;

use super::*;

/// Whether a string passes a ruled string's schema, as a client's validator reads it.
fn schema_accepts<T: Type>(value: &str) -> bool {
    let MetaSchemaRef::Inline(schema) = T::schema_ref() else {
        panic!("{} has an inline schema", T::name());
    };
    let value = value.to_owned();
    schema
        .min_length
        .is_none_or(|min| MinLength::new(min).check(&value))
        && schema
            .max_length
            .is_none_or(|max| MaxLength::new(max).check(&value))
        && schema.pattern.as_deref().is_none_or(|pattern| {
            // `Pattern` takes a `'static` pattern; the schemas' patterns are constants.
            let pattern: &'static str = Box::leak(pattern.to_owned().into_boxed_str());
            Pattern::new(pattern).check(&value)
        })
}

/// The schema and the control plane agree on every sample.
fn check_agreement<T: Type>(samples: &[String], core_accepts: impl Fn(&str) -> bool) {
    for sample in samples {
        assert_eq!(
            schema_accepts::<T>(sample),
            core_accepts(sample),
            "{} and the core disagree on {sample:?}",
            T::name()
        );
    }
}

fn strings(samples: &[&str]) -> Vec<String> {
    samples.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn the_name_schema_states_the_core_rule() {
    let mut samples = strings(&[
        "",
        "a",
        "tenant-a prod",
        " lead",
        "trail ",
        "\tx",
        "x\n",
        "a\nb",
        "a\u{7f}b",
        "a\u{85}b",
        "\u{a0}x",
        "x\u{3000}",
        "\u{2009}x",
        "é",
        "日本",
        "a b",
        "x\u{feff}",
    ]);
    samples.push("n".repeat(MAX_NAME_LEN));
    samples.push("n".repeat(MAX_NAME_LEN + 1));
    samples.push(format!("{} ", "é".repeat(100)));
    check_agreement::<Name>(&samples, |s| validate_name("name", s).is_ok());
}

#[test]
fn the_description_schema_states_the_core_rule() {
    let samples = vec![
        String::new(),
        "free text\nwith lines".to_owned(),
        "é".repeat(MAX_DESCRIPTION_LEN),
        "é".repeat(MAX_DESCRIPTION_LEN + 1),
    ];
    check_agreement::<Description>(&samples, |s| validate_description(s).is_ok());
}

#[test]
fn the_key_schema_states_the_core_rule() {
    let mut samples = strings(&[
        "",
        "app",
        "a",
        "x_y-z.1",
        "app.kubernetes.io/name",
        "example.com/A1",
        "-app",
        "app-",
        "a/b/c",
        "/name",
        "prefix/",
        "Example.com/x",
        "ex_ample.com/x",
        "-ex.com/x",
        "ex-.com/x",
        "ex..com/x",
        "a b",
        "é",
    ]);
    samples.push("n".repeat(63));
    samples.push("n".repeat(64));
    samples.push(format!("{}/name", "p".repeat(63)));
    samples.push(format!("{}/name", "p".repeat(64)));
    check_agreement::<MetadataKey>(&samples, |s| validate_key(s).is_ok());
}

#[test]
fn the_label_value_schema_states_the_core_rule() {
    let mut samples = strings(&["", "v1", "eu-west-1", "a.b_c", "-x", "x-", "x y", "é"]);
    samples.push("v".repeat(63));
    samples.push("v".repeat(64));
    check_agreement::<LabelValue>(&samples, |s| validate_label_value("k", s).is_ok());
}

#[test]
fn null_is_refused_and_absence_is_none() {
    assert_eq!(no_null::<String>(None).ok(), Some(None));
    assert_eq!(
        no_null::<String>(Some(json!("x"))).ok(),
        Some(Some("x".to_owned()))
    );
    let refused = no_null::<String>(Some(Value::Null)).expect_err("null is refused");
    assert!(refused.message().contains("null"), "{}", refused.message());
    assert!(no_null::<uuid::Uuid>(Some(json!("not a uuid"))).is_err());
}

#[test]
fn ruled_strings_parse_like_strings() {
    assert_eq!(
        Name::parse_from_json(Some(json!("web"))).ok(),
        Some(Name("web".into()))
    );
    // Breaking the rule is the control plane's to refuse, with its own message.
    assert_eq!(
        Name::parse_from_json(Some(json!(" padded"))).ok(),
        Some(Name(" padded".into()))
    );
    assert!(Name::parse_from_json(Some(Value::Null)).is_err());
    assert!(Name::parse_from_json(Some(json!({"an": "object"}))).is_err());
    assert_eq!(Name("web".into()).to_json(), Some(json!("web")));
}
