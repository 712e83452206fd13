//! Local inputs: manifests from a file, a directory or stdin, and JSON or YAML
//! documents (template parameters, placement policies).

use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::error::{Error, Result};

/// The text of `path`, or of stdin for `-`.
pub fn read_text(path: &Path) -> Result<String> {
    let read = |path: &Path| -> std::io::Result<String> {
        if path == Path::new("-") {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text)?;
            Ok(text)
        } else {
            std::fs::read_to_string(path)
        }
    };
    read(path).map_err(|source| Error::Read {
        path: path.display().to_string(),
        source,
    })
}

/// The YAML of one deployment object: a file as it is, `-` for stdin, or every
/// `*.yaml` and `*.yml` file directly in a directory (not its subdirectories), in
/// name order, joined as one multi-document YAML: a deployment object is the whole
/// desired state of its stack, so the directory becomes one object.
pub fn manifests(path: &Path) -> Result<String> {
    if !path.is_dir() {
        return read_text(path);
    }
    let files = yaml_files(path)?;
    if files.is_empty() {
        return Err(Error::Input(format!(
            "{} holds no *.yaml or *.yml file",
            path.display()
        )));
    }
    let mut joined = String::new();
    for file in files {
        let text = read_text(&file)?;
        if !joined.is_empty() {
            // Empty documents are skipped by the server's parser, so a file that
            // starts with its own `---` is fine.
            joined.push_str("---\n");
        }
        joined.push_str(&text);
        if !text.ends_with('\n') {
            joined.push('\n');
        }
    }
    Ok(joined)
}

fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let unreadable = |source| Error::Read {
        path: dir.display().to_string(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let path = entry.map_err(unreadable)?.path();
        let yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        if yaml && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// A JSON value from a `.json` file, or from YAML otherwise (YAML 1.2 booleans:
/// `yes` stays a string, as Kubernetes reads it).
pub fn document(path: &Path) -> Result<Value> {
    let text = read_text(path)?;
    let invalid = |err: String| Error::Input(format!("{}: {err}", path.display()));
    if path.extension().is_some_and(|e| e == "json") {
        return serde_json::from_str(&text).map_err(|e| invalid(e.to_string()));
    }
    let mut options = serde_saphyr::Options::default();
    options.strict_booleans = true;
    options.legacy_octal_numbers = false;
    serde_saphyr::from_str_with_options(&text, options).map_err(|e| invalid(e.to_string()))
}

/// `key=value` pairs (labels, annotations) into a map.
pub fn pairs(pairs: &[String]) -> Result<serde_json::Map<String, Value>> {
    pairs
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
                .ok_or_else(|| Error::Input(format!("{pair:?} is not key=value")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_directory_becomes_one_document_stream_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.yml"), "kind: B").unwrap();
        std::fs::write(dir.path().join("a.yaml"), "---\nkind: A\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "skipped").unwrap();
        std::fs::create_dir(dir.path().join("sub.yaml")).unwrap();
        assert_eq!(
            manifests(dir.path()).unwrap(),
            "---\nkind: A\n---\nkind: B\n"
        );
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(manifests(empty.path()), Err(Error::Input(_))));
    }

    #[test]
    fn documents_are_json_or_yaml_1_2() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("p.yaml");
        std::fs::write(&yaml, "name: web\nreplicas: 2\nflag: yes\non: true\n").unwrap();
        assert_eq!(
            document(&yaml).unwrap(),
            json!({"name": "web", "replicas": 2, "flag": "yes", "on": true})
        );
        let json = dir.path().join("p.json");
        std::fs::write(&json, "{\"a\": [1]}").unwrap();
        assert_eq!(document(&json).unwrap(), json!({"a": [1]}));
        std::fs::write(&json, "{").unwrap();
        assert!(matches!(document(&json), Err(Error::Input(_))));
        assert!(matches!(
            document(&dir.path().join("missing.yaml")),
            Err(Error::Read { .. })
        ));
    }

    #[test]
    fn pairs_need_an_equals_sign() {
        let map = pairs(&["a=1".into(), "b=".into()]).unwrap();
        assert_eq!(Value::Object(map), json!({"a": "1", "b": ""}));
        assert!(pairs(&["nope".into()]).is_err());
    }
}
