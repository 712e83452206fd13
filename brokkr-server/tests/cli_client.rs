//! The command-line client (`brokkr-server stacks|deploy|objects|agents|events|
//! placements|render`) as a user runs it: the real binary in a child process, with
//! `BROKKR_URL` and `BROKKR_PAK` in its environment, against a live server over a
//! loopback socket, on SQLite then PostgreSQL. Each command's JSON output is parsed
//! and its exit code checked, errors included: a refused request (1, with the
//! server's code on stderr), a usage error (2), a server that is not there (3), a
//! change the blast-radius guard stopped (4).

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{Backend, Mode, TestApp, Transport, test_config};
use serde_json::{Value, json};

#[path = "cli_client/guard.rs"]
mod guard;

/// What a finished command left behind.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Its stdout as JSON, after checking it succeeded.
    fn json(&self) -> Value {
        assert_eq!(self.code, 0, "{self:?}");
        serde_json::from_str(&self.stdout).unwrap_or_else(|err| panic!("{err}: {self:?}"))
    }

    /// Checks the exit code and that stderr holds `text`.
    fn fails(&self, code: i32, text: &str) {
        assert_eq!(self.code, code, "{self:?}");
        assert!(self.stderr.contains(text), "{text:?} not in {self:?}");
    }
}

/// The client binary pointed at one server with one key.
#[derive(Clone)]
struct Client {
    url: String,
    pak: String,
}

impl Client {
    async fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, None).await
    }

    /// Runs the binary on a blocking thread (the server under test shares this
    /// runtime), feeding `stdin` if given.
    async fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_brokkr-server"));
        command
            .args(args)
            .env("BROKKR_URL", &self.url)
            .env("BROKKR_PAK", &self.pak)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let stdin = stdin.map(str::to_owned);
        tokio::task::spawn_blocking(move || {
            let mut child = command.spawn().expect("start brokkr-server");
            if let Some(text) = stdin {
                let mut pipe = child.stdin.take().expect("piped stdin");
                pipe.write_all(text.as_bytes()).expect("write stdin");
            }
            let output = child.wait_with_output().expect("wait for brokkr-server");
            Run {
                code: output.status.code().expect("exited, not killed"),
                stdout: String::from_utf8(output.stdout).expect("utf-8 stdout"),
                stderr: String::from_utf8(output.stderr).expect("utf-8 stderr"),
            }
        })
        .await
        .expect("the child's thread")
    }
}

async fn start(backend: Backend) -> Option<(TestApp, Client)> {
    let app = TestApp::start_with(backend, Mode::Socket, test_config()).await?;
    let Transport::Socket { base, .. } = &app.replica.transport else {
        unreachable!("a socket replica");
    };
    let client = Client {
        url: base.clone(),
        pak: app.world.admin_key.clone(),
    };
    Some((app, client))
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write a fixture");
    path.display().to_string()
}

fn ids(items: &Value) -> Vec<&str> {
    items
        .as_array()
        .expect("a JSON array")
        .iter()
        .map(|item| item["id"].as_str().expect("an id"))
        .collect()
}

async fn stacks_objects_and_rendering(backend: Backend) {
    let Some((app, cli)) = start(backend).await else {
        return;
    };
    let files = tempfile::tempdir().unwrap();

    let created = cli
        .run(&[
            "stacks",
            "create",
            "cli-stack",
            "--description",
            "by the client",
            "--label",
            "team=red",
            "-o",
            "json",
        ])
        .await
        .json();
    assert_eq!(created["name"], "cli-stack");
    assert_eq!(created["labels"], json!({"team": "red"}));
    let stack_id = created["id"].as_str().unwrap().to_owned();

    let listed = cli
        .run(&["stacks", "list", "--name", "cli-stack", "-o", "json"])
        .await;
    assert_eq!(ids(&listed.json()), [stack_id.as_str()]);
    let all = cli
        .run(&["stacks", "list", "--output", "json"])
        .await
        .json();
    assert_eq!(all.as_array().unwrap().len(), 6, "five seeded and ours");
    let two = cli
        .run(&["stacks", "list", "--limit", "2", "-o", "json"])
        .await;
    assert_eq!(two.json().as_array().unwrap().len(), 2);
    let table = cli.run(&["stacks", "list"]).await;
    assert_eq!(table.code, 0, "{table:?}");
    let header = table.stdout.lines().next().unwrap();
    assert!(
        header.starts_with("ID") && header.contains("NAME"),
        "{table:?}"
    );
    assert!(
        table
            .stdout
            .lines()
            .any(|l| l.starts_with(&stack_id) && l.contains("team=red")),
        "{table:?}"
    );
    let shown = cli.run(&["stacks", "show", "cli-stack"]).await;
    assert!(
        shown.stdout.contains("DESCRIPTION  by the client"),
        "{shown:?}"
    );

    // A directory becomes one deployment object holding every file, in name order.
    let manifests = tempfile::tempdir().unwrap();
    write(
        manifests.path(),
        "1-namespace.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: cli\n",
    );
    write(manifests.path(), "2-config.yml", common::CONFIGMAP_YAML);
    write(manifests.path(), "README.md", "not a manifest");
    let dir = manifests.path().display().to_string();
    let object = cli
        .run(&["deploy", "cli-stack", &dir, "-o", "json"])
        .await
        .json();
    assert_eq!(object["stack_id"], stack_id.as_str());
    let object_id = object["id"].as_str().unwrap().to_owned();
    let shown = cli
        .run(&["objects", "show", &object_id, "-o", "json"])
        .await
        .json();
    let yaml = shown["yaml_content"].as_str().unwrap();
    assert!(
        yaml.find("kind: Namespace").unwrap() < yaml.find("kind: ConfigMap").unwrap(),
        "{yaml}"
    );
    assert!(!yaml.contains("not a manifest"));
    let shown = cli.run(&["objects", "show", &object_id]).await;
    assert!(
        shown.stdout.contains("\napiVersion: v1\nkind: Namespace"),
        "{shown:?}"
    );

    // From stdin, by id; then the history, newest first.
    let second = cli
        .run_with_stdin(
            &["deploy", &stack_id, "-", "-o", "json"],
            Some(common::CONFIGMAP_YAML),
        )
        .await
        .json();
    let history = cli
        .run(&["objects", "list", "cli-stack", "--desc", "-o", "json"])
        .await;
    assert_eq!(
        ids(&history.json()),
        [second["id"].as_str().unwrap(), object_id.as_str()]
    );

    // Bad YAML: refused by the server, its code on stderr, nothing stored.
    let bad = write(files.path(), "bad.yaml", "kind: [");
    cli.run(&["deploy", "cli-stack", &bad])
        .await
        .fails(1, "error: invalid_manifest: ");
    let history = cli
        .run(&["objects", "list", "cli-stack", "-o", "json"])
        .await;
    assert_eq!(history.json().as_array().unwrap().len(), 2);

    // A stored template with YAML parameters, and a registered generator dry run.
    let params = write(files.path(), "params.yaml", "name: from-template\n");
    let template = app.world.template.to_string();
    let rendered = cli
        .run(&[
            "render",
            &template,
            "--stack",
            "cli-stack",
            "--params",
            &params,
            "-o",
            "json",
        ])
        .await
        .json();
    assert_eq!(rendered["provenance"]["template_id"], template.as_str());
    assert_eq!(
        rendered["provenance"]["parameters"],
        json!({"name": "from-template"})
    );
    let params = write(files.path(), "params.json", r#"{"name": "dry"}"#);
    let dry = cli
        .run(&[
            "render",
            "--generator",
            "configmap",
            "--stack",
            "cli-stack",
            "--params",
            &params,
            "--dry-run",
        ])
        .await;
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(
        dry.stdout.contains("kind: ConfigMap") && dry.stdout.contains("name: dry"),
        "{dry:?}"
    );
    let history = cli
        .run(&["objects", "list", "cli-stack", "-o", "json"])
        .await;
    assert_eq!(
        history.json().as_array().unwrap().len(),
        3,
        "the dry run stored nothing"
    );
    let params = write(files.path(), "wrong.json", r#"{"name": "Not Valid"}"#);
    cli.run(&[
        "render",
        "--generator",
        "configmap",
        "--stack",
        "cli-stack",
        "--params",
        &params,
    ])
    .await
    .fails(1, "error: invalid_parameters: ");

    app.teardown().await;
}

async fn agents_events_and_placements(backend: Backend) {
    let Some((app, cli)) = start(backend).await else {
        return;
    };
    let world = app.world.clone();
    let agent = world.agent.to_string();

    let agents = cli
        .run(&["agents", "list", "--cluster", "cluster", "-o", "json"])
        .await
        .json();
    assert!(ids(&agents).contains(&agent.as_str()), "{agents}");
    let shown = cli
        .run(&["agents", "show", "cluster/agent-a", "-o", "json"])
        .await
        .json();
    assert_eq!(shown["id"], agent.as_str());
    let labels = cli
        .run(&[
            "agents",
            "label",
            "cluster/agent-a",
            "tier=gold",
            "team-",
            "-o",
            "json",
        ])
        .await
        .json();
    assert_eq!(labels, json!({"tier": "gold"}));
    let table = cli
        .run(&["agents", "label", &agent, "example.com/zone=a"])
        .await;
    assert_eq!(table.code, 0, "{table:?}");
    assert!(table.stdout.contains("example.com/zone  a"), "{table:?}");
    cli.run(&["agents", "label", &agent, "oops"])
        .await
        .fails(2, "neither key=value nor key-");

    // Placement: the seeded stack's policy, its direct target, and a new policy.
    let placement = cli
        .run(&["placements", "show", "stack-a", "-o", "json"])
        .await
        .json();
    assert_eq!(
        placement["policy"]["agent_selector"]["matchLabels"],
        json!({"placement": "seeded"})
    );
    let targets = cli
        .run(&["placements", "list", "stack-a", "-o", "json"])
        .await
        .json();
    assert_eq!(targets[0]["agent_id"], agent.as_str());
    assert_eq!(targets[0]["source"], "direct");
    let files = tempfile::tempdir().unwrap();
    let policy = write(
        files.path(),
        "policy.yaml",
        "agent_selector:\n  matchLabels:\n    tier: gold\n",
    );
    let set = cli
        .run(&["placements", "set", "stack-spare", &policy, "-o", "json"])
        .await
        .json();
    assert_eq!(
        set["policy"]["agent_selector"]["matchLabels"],
        json!({"tier": "gold"})
    );
    let decision = &set["decision"];
    let judged = decision["chosen"].as_array().unwrap().len() as u64
        + decision["rejected_total"].as_u64().unwrap();
    assert_eq!(judged, 3, "every seeded agent is judged: {set}");
    let bad = write(
        files.path(),
        "bad.json",
        r#"{"agent_selector": {"nope": 1}}"#,
    );
    cli.run(&["placements", "set", "stack-spare", &bad])
        .await
        .fails(1, "error: invalid_policy: ");

    // Events: the seeded one, by filter.
    let events = cli.run(&["events", "list", "-o", "json"]).await.json();
    assert_eq!(ids(&events), [world.event.to_string()]);
    let events = cli
        .run(&[
            "events", "list", "--agent", &agent, "--stack", "stack-a", "--status", "failure",
        ])
        .await;
    assert_eq!(
        events.stdout.lines().count(),
        1,
        "only the header: {events:?}"
    );

    // Tail prints what arrives after it starts, not what was there.
    let tail = {
        let cli = cli.clone();
        tokio::spawn(async move {
            cli.run(&[
                "events",
                "tail",
                "--interval",
                "1",
                "--max",
                "1",
                "--timeout",
                "30",
                "-o",
                "json",
            ])
            .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let event_id = uuid::Uuid::now_v7();
    app.post(
        &format!("/api/v1/agents/{agent}/events"),
        &world.agent_key,
        &json!({
            "id": event_id,
            "deployment_object_id": world.deployment_object,
            "event_type": "apply",
            "status": "failure",
            "message": "tailed",
        }),
    )
    .await
    .expect(201);
    let tailed = tail.await.unwrap();
    assert_eq!(tailed.code, 0, "{tailed:?}");
    let lines: Vec<Value> = tailed
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 1, "{tailed:?}");
    assert_eq!(lines[0]["id"], event_id.to_string());
    assert_eq!(lines[0]["message"], "tailed");

    // With --since, the past first; --timeout ends it when nothing more comes.
    let since = cli
        .run(&[
            "events",
            "tail",
            "--since",
            "2000-01-01T00:00:00Z",
            "--timeout",
            "2",
            "--interval",
            "1",
        ])
        .await;
    assert_eq!(since.code, 0, "{since:?}");
    assert_eq!(since.stdout.lines().count(), 2, "{since:?}");
    assert!(
        since.stdout.lines().nth(1).unwrap().ends_with("tailed"),
        "{since:?}"
    );

    // An agent key reads its own events, not everyone's.
    let as_agent = Client {
        pak: world.agent_key.clone(),
        ..cli.clone()
    };
    let own = as_agent
        .run(&["events", "list", "--agent", &agent, "-o", "json"])
        .await
        .json();
    assert_eq!(own.as_array().unwrap().len(), 2);
    as_agent
        .run(&["events", "list"])
        .await
        .fails(1, "error: forbidden: ");

    app.teardown().await;
}

async fn errors_and_exit_codes(backend: Backend) {
    let Some((app, cli)) = start(backend).await else {
        return;
    };
    let wrong_key = Client {
        pak: "brokkr_aaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb".into(),
        ..cli.clone()
    };
    wrong_key
        .run(&["stacks", "list"])
        .await
        .fails(1, "error: unauthorized: ");
    cli.run(&["stacks", "show", "no-such-stack"])
        .await
        .fails(1, "error: not_found: no stack named \"no-such-stack\"");
    cli.run(&["stacks", "create"]).await.fails(2, "NAME");
    cli.run(&["deploy", "stack-a", "/nonexistent/file.yaml"])
        .await
        .fails(2, "cannot read /nonexistent/file.yaml");
    cli.run(&["stacks", "create", "stack-a"])
        .await
        .fails(1, "error: conflict: ");

    // Flags win over the environment; a server that is not there is exit 3.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    cli.run(&["stacks", "list", "--url", &closed])
        .await
        .fails(3, &format!("error: cannot reach {closed}/api/v1/stacks"));
    let flags = Client {
        url: closed.clone(),
        pak: "wrong".into(),
    };
    let listed = flags
        .run(&[
            "stacks", "list", "--url", &cli.url, "--pak", &cli.pak, "-o", "json",
        ])
        .await;
    assert_eq!(
        listed.json().as_array().unwrap().len(),
        5,
        "the seeded stacks"
    );

    app.teardown().await;
}

/// More rows than one page holds: the client follows cursors and sizes its pages.
async fn listings_follow_cursors(backend: Backend) {
    let Some((app, cli)) = start(backend).await else {
        return;
    };
    let store = app.store();
    for chunk in (0..1005).collect::<Vec<_>>().chunks(201) {
        let creates = chunk.iter().map(|i| {
            store.create_stack(
                &brokkr_core::Actor::System,
                brokkr_core::NewStack {
                    name: format!("many-{i:04}"),
                    ..Default::default()
                },
            )
        });
        for created in futures::future::join_all(creates).await {
            created.expect("create a stack");
        }
    }
    let all = cli
        .run(&["stacks", "list", "--all", "-o", "json"])
        .await
        .json();
    let all = ids(&all).into_iter().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(all.len(), 1010);
    let mut unique = all.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique, all, "in id order, each once");
    let some = cli
        .run(&["stacks", "list", "--limit", "1003", "-o", "json"])
        .await
        .json();
    assert_eq!(ids(&some), all[..1003]);
    let newest = cli
        .run(&["stacks", "list", "--limit", "1", "--desc", "-o", "json"])
        .await
        .json();
    assert_eq!(ids(&newest), [all[all.len() - 1].as_str()]);
    app.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stacks_objects_and_rendering_on_sqlite() {
    stacks_objects_and_rendering(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stacks_objects_and_rendering_on_postgres() {
    stacks_objects_and_rendering(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_events_and_placements_on_sqlite() {
    agents_events_and_placements(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_events_and_placements_on_postgres() {
    agents_events_and_placements(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_and_exit_codes_on_sqlite() {
    errors_and_exit_codes(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_and_exit_codes_on_postgres() {
    errors_and_exit_codes(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_follow_cursors_on_sqlite() {
    listings_follow_cursors(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_follow_cursors_on_postgres() {
    listings_follow_cursors(Backend::Postgres).await;
}
