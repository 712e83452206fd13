//! The signature-verifying snippets of `docs/webhooks.md`, run against signatures made
//! by `brokkr_core::webhook::signature::sign`: the Python one with `python3`, the Rust
//! one compiled here from `webhook_docs/verify.rs`, which must be the page's block
//! byte for byte.

use std::io::Write;
use std::process::{Command, Stdio};

use brokkr_core::webhook::{generate_secret, signature};

#[path = "webhook_docs/verify.rs"]
mod verify;

const PAGE: &str = include_str!("../../docs/webhooks.md");

/// The first fenced block in `language` under the heading "Verifying a signature".
fn snippet(language: &str) -> String {
    let section = PAGE
        .split_once("## Verifying a signature")
        .expect("docs/webhooks.md has a \"Verifying a signature\" section")
        .1;
    let section = section.split_once("\n## ").map_or(section, |(s, _)| s);
    let fence = format!("```{language}\n");
    let start = section
        .find(&fence)
        .unwrap_or_else(|| panic!("no {language} block under \"Verifying a signature\""))
        + fence.len();
    let length = section[start..].find("```").expect("a closed block");
    section[start..start + length].to_owned()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A body like a delivery's, with bytes that re-encoding would change.
const BODY: &[u8] =
    br#"{"id":"0193a4f2-1c1e-7b3a-9c1d-3f7e5a2b8c4d","type":"webhook.test","data":{"note":"caf\u00e9 / \"quoted\""}}"#;

/// One request a receiver might get, and whether the snippets must accept it.
struct Case {
    name: &'static str,
    secret: String,
    timestamp: String,
    body: Vec<u8>,
    header: String,
    accept: bool,
}

fn cases() -> Vec<Case> {
    let secret = generate_secret();
    let at = now();
    let signed = signature::sign(secret.as_bytes(), at, BODY);
    let old = at - 600;
    let mut tampered = BODY.to_vec();
    tampered[10] ^= 1;
    let valid = Case {
        name: "valid",
        secret: secret.clone(),
        timestamp: at.to_string(),
        body: BODY.to_vec(),
        header: signed.clone(),
        accept: true,
    };
    let like_valid = |name, change: &dyn Fn(&mut Case)| {
        let mut case = Case {
            name,
            secret: valid.secret.clone(),
            timestamp: valid.timestamp.clone(),
            body: valid.body.clone(),
            header: valid.header.clone(),
            accept: false,
        };
        change(&mut case);
        case
    };
    vec![
        like_valid("upper-case hex", &|case| {
            case.header = signed.to_uppercase().replacen("SHA256=", "sha256=", 1);
            case.accept = true;
        }),
        like_valid("tampered body", &|case| case.body = tampered.clone()),
        like_valid("other timestamp", &|case| {
            case.timestamp = (at + 1).to_string()
        }),
        like_valid("other secret", &|case| case.secret = generate_secret()),
        like_valid("ten minutes old, though signed", &|case| {
            case.timestamp = old.to_string();
            case.header = signature::sign(secret.as_bytes(), old, BODY);
        }),
        like_valid("not a timestamp", &|case| case.timestamp = "soon".into()),
        like_valid("no scheme", &|case| {
            case.header = signed["sha256=".len()..].to_owned()
        }),
        valid,
    ]
}

#[test]
fn the_rust_block_of_the_page_is_the_file_compiled_here() {
    assert_eq!(
        snippet("rust"),
        include_str!("webhook_docs/verify.rs"),
        "docs/webhooks.md and brokkr-core/tests/webhook_docs/verify.rs must hold the same code"
    );
}

#[test]
fn the_rust_snippet_accepts_exactly_what_it_should() {
    for case in cases() {
        let verdict = verify::verify_brokkr_signature(
            &case.secret,
            &case.timestamp,
            &case.body,
            &case.header,
            now(),
        );
        assert_eq!(verdict, case.accept, "{}", case.name);
    }
}

#[test]
fn the_python_snippet_accepts_exactly_what_it_should() {
    // The snippet, then a harness reading one case per line (hex-encoded fields).
    let mut program = snippet("python");
    program.push_str(
        "\nimport sys\n\
         for line in sys.stdin:\n    \
             secret, timestamp, body, signature = (bytes.fromhex(f) for f in line.split())\n    \
             print(verify_brokkr_signature(secret.decode(), timestamp.decode(), body, signature.decode()))\n",
    );
    let cases = cases();
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let input: String = cases
        .iter()
        .map(|case| {
            format!(
                "{} {} {} {}\n",
                hex(case.secret.as_bytes()),
                hex(case.timestamp.as_bytes()),
                hex(&case.body),
                hex(case.header.as_bytes())
            )
        })
        .collect();
    let mut child = Command::new("python3")
        .args(["-c", &program])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs the documentation's snippet (install python3)");
    child
        .stdin
        .take()
        .expect("a piped stdin")
        .write_all(input.as_bytes())
        .expect("write the cases");
    let output = child.wait_with_output().expect("python3 finishes");
    assert!(
        output.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let verdicts: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(verdicts.len(), cases.len(), "{verdicts:?}");
    for (case, verdict) in cases.iter().zip(&verdicts) {
        let expected = if case.accept { "True" } else { "False" };
        assert_eq!(verdict, expected, "{}", case.name);
    }
}
