//! Parked: what one waiting agent costs the server, in resident memory.
//!
//! A fleet spends nearly all its time parked in long polls, so the server's memory at
//! scale is this figure times the fleet. The bench starts the server in a child process
//! (the real serve path, SQLite in a temporary file), creates one agent with a stack
//! and a deployment object, then opens `BROKKR_PARKED_CONNECTIONS` (default 3,000)
//! connections from this process and measures the child's `VmRSS`: after opening them,
//! and again after each has sent `GET /agents/{id}/target-state?wait=60` with the
//! agent's current ETag, so that every request waits. It prints KiB per idle
//! connection and per parked long poll. Every connection belongs to the same agent:
//! the per-agent cache entry (about 1 KiB) is not in the figure.
//!
//! ```text
//! cargo bench -p brokkr-server --bench parked
//! BROKKR_PARKED_CONNECTIONS=10000 cargo bench -p brokkr-server --bench parked
//! ```

mod support;

use std::time::Duration;

use brokkr_core::{Actor, NewAgent, NewDeploymentObject, NewStack, Pak, Store};
use reqwest::header::{AUTHORIZATION, ETAG};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use support::{Backend, Child, Result, Rss, ScratchDatabase};

/// Time for the server to take every request (or connection) just sent.
const SETTLE: Duration = Duration::from_millis(1500);

fn main() -> Result {
    if let Some(outcome) = support::run_child_role() {
        return outcome;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let connections = support::env_usize("BROKKR_PARKED_CONNECTIONS", 3_000).max(1);
    support::check_open_files(connections + 200, "BROKKR_PARKED_CONNECTIONS")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let db = ScratchDatabase::create(Backend::Sqlite)
            .await?
            .ok_or("no SQLite scratch database")?;
        let outcome = measure(&db.url, connections).await;
        db.remove().await?;
        outcome
    })
}

async fn measure(url: &str, connections: usize) -> Result {
    let (agent, key) = {
        let store = support::open_store(url).await?;
        seed(&store).await?
    };
    let server = Child::spawn_server(url)?;
    server.wait_ready("/readyz").await?;
    let path = format!("/api/v1/agents/{agent}/target-state");
    let etag = reqwest::Client::new()
        .get(format!("{}{path}", server.base))
        .header(AUTHORIZATION, format!("Bearer {key}"))
        .send()
        .await?
        .error_for_status()?
        .headers()
        .get(ETAG)
        .ok_or("no ETag")?
        .to_str()?
        .to_owned();

    let addr = server.base.trim_start_matches("http://").to_owned();
    let before = rss(&server)?;
    let mut streams = Vec::with_capacity(connections);
    for _ in 0..connections {
        streams.push(TcpStream::connect(&addr).await?);
    }
    tokio::time::sleep(SETTLE).await;
    let idle = rss(&server)?;
    let request = format!(
        "GET {path}?wait=60 HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {key}\r\n\
         if-none-match: {etag}\r\nuser-agent: brokkr-agent\r\naccept: */*\r\n\r\n"
    );
    for stream in &mut streams {
        stream.write_all(request.as_bytes()).await?;
    }
    tokio::time::sleep(SETTLE).await;
    let parked = rss(&server)?;
    drop(streams);
    server.stop().await?;

    let per = |from: &Rss, to: &Rss| (to.now_kib as f64 - from.now_kib as f64) / connections as f64;
    println!("SQLite, {connections} connections to one server:");
    println!(
        "  server VmRSS: {:.1} MiB before, {:.1} MiB idle, {:.1} MiB parked",
        before.now_kib as f64 / 1024.0,
        idle.now_kib as f64 / 1024.0,
        parked.now_kib as f64 / 1024.0
    );
    println!(
        "  per connection: {:.1} KiB idle, {:.1} KiB more with a parked long poll, {:.1} KiB in all",
        per(&before, &idle),
        per(&idle, &parked),
        per(&before, &parked)
    );
    Ok(())
}

fn rss(server: &Child) -> Result<Rss> {
    Ok(server.rss().ok_or("cannot read the server's memory")?)
}

/// One agent targeted to one stack with one deployment object; its id and key.
async fn seed(store: &dyn Store) -> Result<(String, String)> {
    let sys = Actor::System;
    let key = Pak::generate();
    let agent = store
        .create_agent(
            &sys,
            NewAgent {
                name: "parked".into(),
                cluster_name: "parked".into(),
                labels: Default::default(),
                annotations: Default::default(),
                key: key.stored(),
            },
        )
        .await?;
    let stack = store
        .create_stack(
            &sys,
            NewStack {
                name: "parked".into(),
                ..Default::default()
            },
        )
        .await?;
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: parked\n  namespace: default\n";
    store
        .append_deployment_object(&sys, NewDeploymentObject::from_yaml(stack.id, yaml)?)
        .await?;
    store.assign_stack(&sys, agent.id, stack.id).await?;
    Ok((agent.id.to_string(), key.expose().to_owned()))
}
