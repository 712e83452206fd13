//! Loading the configuration: defaults, file, environment, ranges.

use std::io::Write;

use super::*;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn toml_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

#[test]
fn no_file_and_no_environment_gives_the_defaults() {
    let loaded = Config::load_with_env(None, env(&[("HOME", "/root")])).unwrap();
    assert_eq!(loaded, Config::default());
}

#[test]
fn the_file_overrides_defaults_and_the_environment_overrides_the_file() {
    let file = toml_file(
        "[server]\nlisten = \"0.0.0.0:8080\"\nbody_limit_bytes = 1024\n\
         [database]\nurl = \"sqlite://file.db\"\n[log]\nformat = \"json\"\n",
    );
    let loaded = Config::load_with_env(
        Some(file.path()),
        env(&[
            ("BROKKR__SERVER__LISTEN", "127.0.0.1:9000"),
            ("BROKKR__AGENTS__STALE_AFTER_SECS", "30"),
            ("BROKKR__DATABASE__RUN_MIGRATIONS", "false"),
            ("BROKKR__AGENTS__PLACEMENT_INTERVAL_MILLIS", "500"),
        ]),
    )
    .unwrap();
    assert_eq!(loaded.server.listen, "127.0.0.1:9000");
    assert_eq!(loaded.server.body_limit_bytes, 1024);
    assert_eq!(loaded.server.shutdown_grace_secs, 30);
    assert_eq!(loaded.database.url, "sqlite://file.db");
    assert!(!loaded.database.run_migrations);
    assert_eq!(loaded.agents.stale_after_secs, 30);
    assert_eq!(loaded.agents.placement_interval_millis, Some(500));
    assert_eq!(loaded.agents.placement_period(), Duration::from_millis(500));
    assert_eq!(loaded.log.format, LogFormat::Json);
}

#[test]
fn tls_is_off_by_default_and_set_from_the_environment_or_the_file() {
    assert_eq!(Config::default().server.tls, None);
    let loaded = Config::load_with_env(
        None,
        env(&[
            ("BROKKR__SERVER__TLS__CERT_FILE", "/etc/brokkr/tls.crt"),
            ("BROKKR__SERVER__TLS__KEY_FILE", "/etc/brokkr/tls.key"),
        ]),
    )
    .unwrap();
    let tls = loaded.server.tls.expect("a TLS section");
    assert_eq!(tls.cert_file, PathBuf::from("/etc/brokkr/tls.crt"));
    assert_eq!(tls.key_file, PathBuf::from("/etc/brokkr/tls.key"));
    assert_eq!(tls.reload_period(), Some(Duration::from_secs(10)));

    let file =
        toml_file("[server.tls]\ncert_file = \"a.crt\"\nkey_file = \"a.key\"\nreload_secs = 0\n");
    let loaded = Config::load_with_env(Some(file.path()), env(&[])).unwrap();
    assert_eq!(loaded.server.tls.unwrap().reload_period(), None);
}

#[test]
fn a_tls_section_without_its_key_is_refused_naming_it() {
    let err = Config::load_with_env(
        None,
        env(&[("BROKKR__SERVER__TLS__CERT_FILE", "/etc/brokkr/tls.crt")]),
    )
    .unwrap_err();
    let text = ErrorChainText(&err).to_string();
    assert!(text.contains("key_file"), "{text}");
}

#[test]
fn the_placement_period_follows_staleness_by_default() {
    let mut agents = AgentsSection::default();
    assert_eq!(agents.placement_period(), Duration::from_secs(30));
    agents.stale_after_secs = 2;
    assert_eq!(agents.placement_period(), Duration::from_secs(1));
}

#[test]
fn database_url_overrides_everything_else() {
    let file = toml_file("[database]\nurl = \"sqlite://file.db\"\n");
    let loaded = Config::load_with_env(
        Some(file.path()),
        env(&[
            ("BROKKR__DATABASE__URL", "sqlite://env.db"),
            ("DATABASE_URL", "postgres://db/brokkr"),
        ]),
    )
    .unwrap();
    assert_eq!(loaded.database.url, "postgres://db/brokkr");
}

#[test]
fn unknown_keys_are_rejected_with_their_name() {
    let file = toml_file("[server]\nlisen = \"0.0.0.0:1\"\n");
    let err = Config::load_with_env(Some(file.path()), env(&[])).unwrap_err();
    assert!(
        ErrorChainText(&err).to_string().contains("lisen"),
        "{}",
        ErrorChainText(&err)
    );

    let err = Config::load_with_env(None, env(&[("BROKKR__SERVR__LISTEN", "x")])).unwrap_err();
    assert!(ErrorChainText(&err).to_string().contains("servr"));
}

#[test]
fn wrong_types_and_bad_toml_are_errors() {
    let err = Config::load_with_env(None, env(&[("BROKKR__SERVER__BODY_LIMIT_BYTES", "lots")]))
        .unwrap_err();
    assert!(matches!(err, ConfigError::Invalid(_)));

    let file = toml_file("[server\n");
    let err = Config::load_with_env(Some(file.path()), env(&[])).unwrap_err();
    assert!(matches!(err, ConfigError::File { .. }));
}

#[test]
fn the_long_poll_bound_has_a_ceiling() {
    let at_ceiling = MAX_LONG_POLL_SECS.to_string();
    let loaded = Config::load_with_env(
        None,
        env(&[("BROKKR__AGENTS__LONG_POLL_MAX_SECS", &at_ceiling)]),
    )
    .unwrap();
    assert_eq!(loaded.agents.long_poll_max_secs, MAX_LONG_POLL_SECS);

    let above = (MAX_LONG_POLL_SECS + 1).to_string();
    let err = Config::load_with_env(None, env(&[("BROKKR__AGENTS__LONG_POLL_MAX_SECS", &above)]))
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::OutOfRange {
                key: "agents.long_poll_max_secs",
                ..
            }
        ),
        "{err}"
    );
}

struct ErrorChainText<'a>(&'a ConfigError);

impl std::fmt::Display for ErrorChainText<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::error::ErrorChain(self.0).fmt(f)
    }
}

#[test]
fn the_guard_defaults_are_the_cores_and_can_be_set_from_file_and_environment() {
    let defaults = Config::default().guard.policy();
    assert_eq!(defaults, brokkr_core::plan::GuardPolicy::default());
    assert_eq!(
        Config::default().runtime_settings().plan_ttl,
        Duration::from_secs(900)
    );

    let file = toml_file(
        "[server]\nplan_ttl_secs = 60\n\
         [guard]\nmax_removed_fraction = 0.5\nprotected_kinds = [\"Namespace\"]\n",
    );
    let loaded = Config::load_with_env(
        Some(file.path()),
        env(&[
            ("BROKKR__GUARD__MIN_REMOVED_AGENTS", "5"),
            ("BROKKR__GUARD__MAX_PRUNED_OBJECTS", "7"),
        ]),
    )
    .unwrap();
    let settings = loaded.runtime_settings();
    assert_eq!(settings.plan_ttl, Duration::from_secs(60));
    assert_eq!(settings.guard.max_removed_fraction, 0.5);
    assert_eq!(settings.guard.min_removed_agents, 5);
    assert_eq!(settings.guard.max_pruned_objects, 7);
    assert_eq!(
        settings.guard.protected_kinds,
        ["Namespace".to_owned()].into()
    );

    let loaded = Config::load_with_env(
        None,
        env(&[(
            "BROKKR__GUARD__PROTECTED_KINDS",
            "Namespace,PersistentVolumeClaim",
        )]),
    )
    .unwrap();
    assert_eq!(
        loaded.guard.protected_kinds,
        ["Namespace", "PersistentVolumeClaim"]
    );
}

#[test]
fn a_guard_limit_out_of_range_fails_the_load_naming_it() {
    let err = Config::load_with_env(None, env(&[("BROKKR__GUARD__MAX_REMOVED_FRACTION", "1.5")]))
        .unwrap_err();
    assert!(matches!(err, ConfigError::Guard(_)), "{err}");
    let text = ErrorChainText(&err).to_string();
    assert!(
        text.contains("[guard]") && text.contains("max_removed_fraction"),
        "{text}"
    );

    let file = toml_file("[guard]\nprotected_kinds = [\"not a kind\"]\n");
    let err = Config::load_with_env(Some(file.path()), env(&[])).unwrap_err();
    assert!(ErrorChainText(&err).to_string().contains("not a kind"));
}

#[test]
fn the_audit_seal_period_reaches_the_runtime() {
    assert_eq!(
        Config::default().runtime_settings().audit_seal_period,
        brokkr_core::runtime::Settings::default().audit_seal_period
    );
    let loaded =
        Config::load_with_env(None, env(&[("BROKKR__AUDIT__SEAL_MILLIS", "250")])).unwrap();
    assert_eq!(
        loaded.runtime_settings().audit_seal_period,
        Duration::from_millis(250)
    );
    let file = toml_file("[audit]\nseal_millis = 0\n");
    let loaded = Config::load_with_env(Some(file.path()), env(&[])).unwrap();
    assert_eq!(loaded.audit.seal_period(), Duration::from_millis(10));
}

/// The base64 of bytes 0..32 and 32..64.
const KEY_A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const KEY_B: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

#[test]
fn webhooks_are_off_by_default_with_the_runtimes_timings() {
    let section = Config::default().webhooks;
    assert!(!section.enabled());
    let settings = Config::default().runtime_settings().webhooks;
    assert_eq!(settings, brokkr_core::runtime::WebhookSettings::default());
}

#[test]
fn webhooks_are_set_from_the_file_and_the_environment() {
    let file = toml_file(&format!(
        "[webhooks]\nkeys = [\"k2:{KEY_B}\", \"k1:{KEY_A}\"]\n\
         allowed_hosts = [\"hooks.example.com\", \"*.example.org:8443\"]\n\
         timeout_millis = 2500\nmax_attempts = 3\n"
    ));
    let loaded = Config::load_with_env(
        Some(file.path()),
        env(&[
            ("BROKKR__WEBHOOKS__BACKOFF_BASE_MILLIS", "50"),
            ("BROKKR__WEBHOOKS__LEASE_SECS", "5"),
        ]),
    )
    .unwrap();
    assert!(loaded.webhooks.enabled());
    let settings = loaded.runtime_settings().webhooks;
    let keyring = settings.keyring.expect("a keyring");
    assert_eq!(keyring.key_ids().collect::<Vec<_>>(), ["k2", "k1"]);
    assert_eq!(settings.allowlist.patterns().len(), 2);
    assert_eq!(settings.timeout, Duration::from_millis(2500));
    assert_eq!(settings.max_attempts, 3);
    assert_eq!(settings.backoff_base, Duration::from_millis(50));
    assert_eq!(settings.lease, Duration::from_secs(5));

    // Lists in the environment are comma-separated, like the guard's kinds.
    let loaded = Config::load_with_env(
        None,
        env(&[
            ("BROKKR__WEBHOOKS__KEYS", &format!("k1:{KEY_A},old:{KEY_B}")),
            (
                "BROKKR__WEBHOOKS__ALLOWED_HOSTS",
                "127.0.0.1:9000,*.example.com",
            ),
        ]),
    )
    .unwrap();
    assert_eq!(loaded.webhooks.keys.len(), 2);
    assert_eq!(
        loaded.webhooks.allowed_hosts,
        ["127.0.0.1:9000", "*.example.com"]
    );
}

#[test]
fn a_bad_webhook_key_host_or_timing_fails_the_load_naming_it() {
    let check = |pairs: &[(&str, &str)], named: &[&str]| {
        let err = Config::load_with_env(None, env(pairs)).unwrap_err();
        assert!(matches!(err, ConfigError::Webhooks(_)), "{err}");
        let text = ErrorChainText(&err).to_string();
        for word in named {
            assert!(text.contains(word), "{text} should name {word}");
        }
    };
    check(
        &[("BROKKR__WEBHOOKS__KEYS", "k1:c2hvcnQ=")],
        &["[webhooks]", "keys", "\"k1\"", "32 bytes"],
    );
    check(&[("BROKKR__WEBHOOKS__KEYS", KEY_A)], &["keys", "key 1"]);
    check(
        &[("BROKKR__WEBHOOKS__ALLOWED_HOSTS", "hooks.example.com,*")],
        &["allowed_hosts", "\"*\""],
    );
    check(
        &[("BROKKR__WEBHOOKS__ALLOWED_HOSTS", "hooks.example.com:99999")],
        &["allowed_hosts", "port"],
    );
    check(
        &[("BROKKR__WEBHOOKS__TIMEOUT_MILLIS", "60000")],
        &["lease", "timeout"],
    );
    check(
        &[("BROKKR__WEBHOOKS__MAX_ATTEMPTS", "0")],
        &["max_attempts"],
    );
}

#[test]
fn the_webhooks_debug_never_shows_a_key() {
    let section = WebhooksSection {
        keys: vec![format!("k1:{KEY_A}")],
        ..WebhooksSection::default()
    };
    let shown = format!(
        "{:?}",
        Config {
            webhooks: section,
            ..Config::default()
        }
    );
    assert!(shown.contains("\"k1\""), "{shown}");
    assert!(!shown.contains(KEY_A), "{shown}");
}

#[test]
fn gate_secrets_are_none_by_default_and_set_from_the_file_and_the_environment() {
    assert!(Config::default().rollouts.gate_secrets.is_empty());
    let file = toml_file(
        "[rollouts]\ngate_secrets = { slo-hmac = \"file secret, 16 bytes+\", Mixed_Case = \"kept as written here\" }\n",
    );
    let loaded = Config::load_with_env(
        Some(file.path()),
        env(&[
            // Digits only, with a leading zero: read as text, never as a number.
            (
                "BROKKR__ROLLOUTS__GATE_SECRETS__DEPLOY_OK",
                "0123456789012345678",
            ),
            (
                "BROKKR__ROLLOUTS__GATE_SECRETS__BOOL",
                "true-but-long-enough",
            ),
        ]),
    )
    .unwrap();
    let secrets = loaded.rollouts.gate_secrets().unwrap();
    assert_eq!(
        secrets.get("slo-hmac"),
        Some(&b"file secret, 16 bytes+"[..])
    );
    assert_eq!(
        secrets.get("Mixed_Case"),
        Some(&b"kept as written here"[..])
    );
    assert_eq!(
        secrets.get("deploy_ok"),
        Some(&b"0123456789012345678"[..]),
        "environment names are read in lower case"
    );
    assert_eq!(secrets.get("bool"), Some(&b"true-but-long-enough"[..]));
    assert_eq!(secrets.names().count(), 4);

    // The environment overrides the file's entry of the same name.
    let loaded = Config::load_with_env(
        Some(file.path()),
        env(&[(
            "BROKKR__ROLLOUTS__GATE_SECRETS__SLO-HMAC",
            "from the environment",
        )]),
    )
    .unwrap();
    assert_eq!(
        loaded.rollouts.gate_secrets().unwrap().get("slo-hmac"),
        Some(&b"from the environment"[..])
    );
}

#[test]
fn a_short_or_misnamed_gate_secret_fails_the_load_without_showing_it() {
    let check = |pairs: &[(&str, &str)], named: &[&str], secret: &str| {
        let err = Config::load_with_env(None, env(pairs)).unwrap_err();
        assert!(matches!(err, ConfigError::Rollouts(_)), "{err}");
        let text = ErrorChainText(&err).to_string();
        for word in named {
            assert!(text.contains(word), "{text} should name {word}");
        }
        assert!(
            secret.is_empty() || !text.contains(secret),
            "{text} shows the secret"
        );
    };
    check(
        &[("BROKKR__ROLLOUTS__GATE_SECRETS__SLO", "too-short-123")],
        &["[rollouts]", "gate_secrets.slo", "13 bytes", "at least 16"],
        "too-short-123",
    );
    check(
        &[("BROKKR__ROLLOUTS__GATE_SECRETS__SLO", "")],
        &["gate_secrets.slo", "0 bytes"],
        "",
    );
    let file = toml_file("[rollouts]\ngate_secrets = { \"a b\" = \"0123456789abcdef\" }\n");
    let err = Config::load_with_env(Some(file.path()), env(&[])).unwrap_err();
    let text = ErrorChainText(&err).to_string();
    assert!(
        matches!(err, ConfigError::Rollouts(_)) && text.contains("\"a b\""),
        "{text}"
    );
}

#[test]
fn the_rollouts_debug_never_shows_a_gate_secret() {
    let shown = format!(
        "{:?}",
        Config {
            rollouts: RolloutsSection {
                gate_secrets: [("slo-hmac".to_owned(), "s3cr3t-value-0123".to_owned())].into(),
                ..RolloutsSection::default()
            },
            ..Config::default()
        }
    );
    assert!(shown.contains("slo-hmac"), "{shown}");
    assert!(!shown.contains("s3cr3t-value-0123"), "{shown}");
}

#[test]
fn the_webhook_gate_is_built_from_the_allowlist_and_the_secrets() {
    let config = Config {
        rollouts: RolloutsSection {
            gate_secrets: [("slo".to_owned(), "short".to_owned())].into(),
            ..RolloutsSection::default()
        },
        ..Config::default()
    };
    let err = config.webhook_gate().unwrap_err();
    assert!(err.starts_with("[rollouts] is invalid"), "{err}");
    let config = Config {
        rollouts: RolloutsSection {
            gate_secrets: [("slo".to_owned(), "0123456789abcdef".to_owned())].into(),
            ..RolloutsSection::default()
        },
        ..Config::default()
    };
    let gate = config.webhook_gate().unwrap();
    assert_eq!(brokkr_core::rollout::Gate::name(&gate), "webhook");
}

#[test]
fn the_rollout_driver_timings_come_from_the_environment_with_floors() {
    let loaded = Config::load_with_env(
        None,
        env(&[
            ("BROKKR__ROLLOUTS__POLL_MILLIS", "50"),
            ("BROKKR__ROLLOUTS__LEASE_SECS", "5"),
        ]),
    )
    .unwrap();
    let settings = loaded.rollouts.settings();
    assert_eq!(settings.poll, std::time::Duration::from_millis(50));
    assert_eq!(
        settings.lease,
        std::time::Duration::from_secs(61),
        "a lease shorter than the slowest gate is raised"
    );
    let defaults = Config::default().rollouts.settings();
    assert_eq!(defaults, brokkr_core::runtime::RolloutSettings::default());
}

#[test]
fn a_replica_name_reaches_the_runtime_and_a_bad_one_fails_the_load() {
    let loaded =
        Config::load_with_env(None, env(&[("BROKKR__SERVER__REPLICA_NAME", "brokkr-0")])).unwrap();
    assert_eq!(loaded.server.replica_name.as_deref(), Some("brokkr-0"));
    assert_eq!(
        loaded.runtime_settings().replica.as_deref(),
        Some("brokkr-0")
    );
    for bad in ["", "two words", &"x".repeat(129)] {
        let err =
            Config::load_with_env(None, env(&[("BROKKR__SERVER__REPLICA_NAME", bad)])).unwrap_err();
        assert!(matches!(err, ConfigError::ReplicaName(_)), "{bad:?}: {err}");
    }
    assert_eq!(Config::default().runtime_settings().replica, None);
}
