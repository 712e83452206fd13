//! Onboarding: a generator key creating a tenant's stack, giving it to an agent (by
//! placement policy or by assignment) and appending its first object, by many clients
//! at once. See the crate documentation for what is measured and the budget.

use super::*;

/// How an onboarded stack is given to an agent.
#[derive(Clone, Copy)]
pub(super) enum Reach {
    /// `PUT /stacks/{id}/placement`: one agent of the tenant's cell.
    Placement,
    /// `POST /agents/{id}/targets`: an agent the control plane picked itself.
    Assign,
}

impl Reach {
    fn describe(self) -> &'static str {
        match self {
            Reach::Placement => "placed by policy (PUT /stacks/{id}/placement)",
            Reach::Assign => "assigned (POST /agents/{id}/targets)",
        }
    }
}

/// The generator's key and the agents tenants are placed on.
struct Tenancy {
    generator_key: String,
    agents: Vec<Uuid>,
}

/// What one onboarding client saw.
#[derive(Default)]
struct OnboardRun {
    /// Whole sequences (counted only), and each step.
    whole: Samples,
    steps: [Samples; 3],
    /// Stacks given to an agent, warm-up included: the targets there must be after.
    reached: usize,
    warm_up_errors: usize,
}

const STEPS: [&str; 3] = ["create stack", "reach an agent", "first object"];

pub(super) async fn onboarding(backend: Backend, settings: &Settings) -> Result {
    let Some(db) = ScratchDatabase::create(backend).await? else {
        return Ok(());
    };
    let outcome = measure_onboarding(&db.url, backend, settings).await;
    db.remove().await?;
    outcome
}

async fn measure_onboarding(url: &str, backend: Backend, settings: &Settings) -> Result {
    let admin = prepare(url).await?;
    let servers = start_servers(url, 1, &[]).await?;
    let base = servers[0].base.clone();
    let tenancy = Arc::new(setup_tenancy(&base, &admin, settings.onboard_agents).await?);
    println!(
        "{backend}: onboarding by {} clients with one generator key, {} over {} agents, \
         {} s after a {} s warm-up",
        settings.clients,
        settings.reach.describe(),
        tenancy.agents.len(),
        settings.measured.as_secs(),
        WARM_UP.as_secs()
    );

    let window = Window::starting_now(WARM_UP, settings.measured);
    let tasks: Vec<_> = (0..settings.clients)
        .map(|i| {
            let onboarder = Onboarder {
                base: base.clone(),
                tenancy: tenancy.clone(),
                reach: settings.reach,
                client: i,
            };
            tokio::spawn(onboarder.run(window))
        })
        .collect();
    let mut all = OnboardRun::default();
    for task in tasks {
        let run = task.await?;
        all.whole.merge(run.whole);
        for (step, samples) in all.steps.iter_mut().zip(run.steps) {
            step.merge(samples);
        }
        all.reached += run.reached;
        all.warm_up_errors += run.warm_up_errors;
    }
    let seconds = window.counted_seconds();

    report_onboarding(&mut all, seconds);
    verify_targets(&base, &admin, &tenancy, all.reached).await?;
    stop_servers(servers).await
}

/// A generator and `agents` agents in `CELLS` cells, each with one heartbeat (placement
/// chooses only agents that have beaten).
async fn setup_tenancy(base: &str, admin: &str, agents: usize) -> Result<Tenancy> {
    #[derive(Deserialize)]
    struct GeneratorWithKey {
        api_key: String,
    }
    #[derive(Deserialize)]
    struct AgentWithKey {
        agent: Created,
        initial_pak: String,
    }
    let client = support::client()?;
    let auth = format!("Bearer {admin}");
    let generator: GeneratorWithKey = expect_json(
        client
            .post(format!("{base}/api/v1/generators"))
            .header(AUTHORIZATION, &auth)
            .json(&json!({"name": "tenant-portal"}))
            .send()
            .await,
    )
    .await
    .map_err(|kind| format!("creating the generator: {kind}"))?;
    let mut ids = Vec::with_capacity(agents);
    for k in 0..agents {
        let created: AgentWithKey = expect_json(
            client
                .post(format!("{base}/api/v1/agents"))
                .header(AUTHORIZATION, &auth)
                .json(&json!({
                    "name": format!("agent-{k}"),
                    "cluster_name": format!("cluster-{k}"),
                    "labels": {"cell": format!("c{}", k % CELLS)},
                }))
                .send()
                .await,
        )
        .await
        .map_err(|kind| format!("creating an agent: {kind}"))?;
        let beat = client
            .post(format!(
                "{base}/api/v1/agents/{}/heartbeat",
                created.agent.id
            ))
            .header(AUTHORIZATION, format!("Bearer {}", created.initial_pak))
            .json(&json!({}))
            .send()
            .await?;
        if !beat.status().is_success() {
            return Err(format!("a heartbeat answered {}", beat.status()).into());
        }
        ids.push(created.agent.id);
    }
    Ok(Tenancy {
        generator_key: generator.api_key,
        agents: ids,
    })
}

/// One onboarding client.
struct Onboarder {
    base: String,
    tenancy: Arc<Tenancy>,
    reach: Reach,
    client: usize,
}

impl Onboarder {
    async fn run(self, window: Window) -> OnboardRun {
        let mut run = OnboardRun::default();
        let Ok(client) = support::client() else {
            run.whole.fail("client");
            return run;
        };
        for n in 0..MAX_REQUESTS_PER_CLIENT {
            let started = Instant::now();
            if started >= window.until {
                break;
            }
            let counted = window.counts(started);
            let mut steps: [Samples; 3] = Default::default();
            let outcome = self.onboard(&client, n, &mut steps, &mut run.reached).await;
            match (outcome, counted) {
                (Ok(()), true) => run.whole.ok(started),
                (Err(kind), true) => run.whole.fail(kind),
                (Ok(()), false) => {}
                (Err(_), false) => run.warm_up_errors += 1,
            }
            if counted {
                for (all, step) in run.steps.iter_mut().zip(steps) {
                    all.merge(step);
                }
            }
        }
        run
    }

    /// Tenant `n` of this client: its stack, an agent for it, its first object.
    async fn onboard(
        &self,
        client: &reqwest::Client,
        n: usize,
        steps: &mut [Samples; 3],
        reached: &mut usize,
    ) -> std::result::Result<(), String> {
        let base = &self.base;
        let auth = format!("Bearer {}", self.tenancy.generator_key);
        let tenant = format!("tenant-{}-{n}", self.client);

        let started = Instant::now();
        let stack: Created = expect_json(
            client
                .post(format!("{base}/api/v1/stacks"))
                .header(AUTHORIZATION, &auth)
                .json(&json!({"name": tenant}))
                .send()
                .await,
        )
        .await
        .map_err(|kind| format!("{}: {kind}", STEPS[0]))?;
        steps[0].ok(started);

        let started = Instant::now();
        self.reach(client, &auth, stack.id, self.client + n)
            .await
            .map_err(|kind| format!("{}: {kind}", STEPS[1]))?;
        steps[1].ok(started);
        *reached += 1;

        let started = Instant::now();
        expect_json::<Acked>(
            client
                .post(format!(
                    "{base}/api/v1/stacks/{}/deployment-objects",
                    stack.id
                ))
                .header(AUTHORIZATION, &auth)
                .json(&json!({"yaml_content": object_yaml(self.client, n)}))
                .send()
                .await,
        )
        .await
        .map_err(|kind| format!("{}: {kind}", STEPS[2]))?;
        steps[2].ok(started);
        Ok(())
    }

    /// Gives `stack` to one agent: of cell `pick % CELLS` by placement, or agent `pick`
    /// directly.
    async fn reach(
        &self,
        client: &reqwest::Client,
        auth: &str,
        stack: Uuid,
        pick: usize,
    ) -> std::result::Result<(), String> {
        #[derive(Deserialize)]
        struct Placed {
            decision: Decision,
        }
        #[derive(Deserialize)]
        struct Decision {
            chosen: Vec<Uuid>,
        }
        let base = &self.base;
        match self.reach {
            Reach::Placement => {
                let policy = json!({
                    "agent_selector": {"matchLabels": {"cell": format!("c{}", pick % CELLS)}},
                    "max_clusters": 1,
                });
                let placed: Placed = expect_json(
                    client
                        .put(format!("{base}/api/v1/stacks/{stack}/placement"))
                        .header(AUTHORIZATION, auth)
                        .json(&policy)
                        .send()
                        .await,
                )
                .await?;
                match placed.decision.chosen.len() {
                    1 => Ok(()),
                    chosen => Err(format!("{chosen} agents chosen")),
                }
            }
            Reach::Assign => {
                let agent = self.tenancy.agents[pick % self.tenancy.agents.len()];
                expect_json::<serde_json::Value>(
                    client
                        .post(format!("{base}/api/v1/agents/{agent}/targets"))
                        .header(AUTHORIZATION, auth)
                        .json(&json!({"stack_id": stack}))
                        .send()
                        .await,
                )
                .await
                .map(drop)
            }
        }
    }
}

fn report_onboarding(all: &mut OnboardRun, seconds: f64) {
    let whole = all.whole.summary();
    let rate = whole.count as f64 / seconds;
    budget(
        "onboardings/s",
        thousands(rate),
        "≥ 1,500/s",
        rate >= 1_500.0,
    );
    figure("whole sequence", whole);
    for (name, step) in STEPS.iter().zip(all.steps.iter_mut()) {
        figure(name, step.summary());
    }
    figure(
        "answered",
        format!(
            "{} onboarded in {seconds:.1} s",
            thousands(whole.count as f64)
        ),
    );
    errors("errors", &all.whole.errors);
    if all.warm_up_errors > 0 {
        figure("warm-up errors", all.warm_up_errors);
    }
}

/// Counts the agents' targets: every stack given to an agent must be there.
async fn verify_targets(base: &str, admin: &str, tenancy: &Tenancy, reached: usize) -> Result {
    let client = support::client()?;
    let listed: Vec<Result<Vec<serde_json::Value>>> = futures::stream::iter(&tenancy.agents)
        .map(|agent| {
            let url = format!("{base}/api/v1/agents/{agent}/targets");
            let client = &client;
            async move { list_all(client, &url, admin).await }
        })
        .buffered(SETUP_CONCURRENCY)
        .collect()
        .await;
    let mut targets = 0;
    for agent in listed {
        targets += agent?.len();
    }
    budget(
        "targets / stacks reached",
        format!(
            "{} / {}",
            thousands(targets as f64),
            thousands(reached as f64)
        ),
        "equal",
        targets == reached,
    );
    Ok(())
}
