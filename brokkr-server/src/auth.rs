//! Who is calling: `Authorization: Bearer <key>` resolved to an [`Identity`].
//!
//! Keys are looked up by their public short id through a small cache
//! ([`KeyCache`]), then verified against the stored SHA-256 in constant time. A
//! lookup miss is verified against a dummy hash, so an unknown key costs the same
//! work as a known one. Rotating or revoking a key through this server invalidates
//! its cache entry at once; another replica notices within the cache TTL.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use brokkr_core::{Actor, AgentId, ApiKey, GeneratorId, KeyHash, KeyOwner, Pak, Store};
use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The role and identity behind a valid key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Identity {
    /// Everything.
    Admin,
    /// Only its own agent, target state, heartbeat and events.
    Agent(AgentId),
    /// Only the stacks (and their deployment objects) and templates it created.
    Generator(GeneratorId),
}

impl From<KeyOwner> for Identity {
    fn from(owner: KeyOwner) -> Self {
        match owner {
            KeyOwner::Admin => Self::Admin,
            KeyOwner::Agent(id) => Self::Agent(id),
            KeyOwner::Generator(id) => Self::Generator(id),
        }
    }
}

impl Identity {
    /// The actor recorded in audit records.
    pub fn actor(&self) -> Actor {
        match *self {
            Self::Admin => Actor::Admin,
            Self::Agent(id) => Actor::Agent(id),
            Self::Generator(id) => Actor::Generator(id),
        }
    }

    /// `admin`, `agent` or `generator`.
    pub fn role(&self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Agent(_) => "agent",
            Self::Generator(_) => "generator",
        }
    }

    /// 403 unless admin.
    pub fn require_admin(&self) -> ApiResult<()> {
        match self {
            Self::Admin => Ok(()),
            other => Err(forbidden_role(other)),
        }
    }

    /// 403 unless admin or the agent itself.
    pub fn require_agent_or_admin(&self, agent: AgentId) -> ApiResult<()> {
        match self {
            Self::Admin => Ok(()),
            Self::Agent(id) if *id == agent => Ok(()),
            other => Err(forbidden_role(other)),
        }
    }

    /// 403 unless the caller is this very agent (its heartbeats and events are its own
    /// word; not even admin may speak for it).
    pub fn require_agent(&self, agent: AgentId) -> ApiResult<()> {
        match self {
            Self::Agent(id) if *id == agent => Ok(()),
            other => Err(ApiError::forbidden(format!(
                "only agent {agent} may do this, not the {} role",
                other.role()
            ))),
        }
    }

    /// 403 for agents: admin and generators may pass (generators then only see their
    /// own rows).
    pub fn require_admin_or_generator(&self) -> ApiResult<()> {
        match self {
            Self::Admin | Self::Generator(_) => Ok(()),
            other => Err(forbidden_role(other)),
        }
    }
}

fn forbidden_role(identity: &Identity) -> ApiError {
    ApiError::forbidden(format!("the {} role may not do this", identity.role()))
}

/// `Authorization: Bearer brokkr_<short id>_<secret>`.
#[derive(SecurityScheme)]
#[oai(
    ty = "bearer",
    bearer_format = "brokkr_<short id>_<secret>",
    checker = "authenticate"
)]
pub struct BearerAuth(pub Identity);

async fn authenticate(req: &Request, bearer: Bearer) -> poem::Result<Identity> {
    let state = req
        .data::<AppState>()
        .expect("app() attaches AppState to every request");
    Ok(state
        .keys
        .authenticate(state.store.as_ref(), &bearer.token)
        .await?)
}

struct CachedKey {
    record: Option<ApiKey>,
    expires: Instant,
}

/// Recently looked-up key records by short id, bounded in size and age.
pub struct KeyCache {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<String, CachedKey>>,
}

impl KeyCache {
    /// A cache keeping each entry for at most `ttl` (a random 50-100% of it), and at
    /// most `capacity` entries.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Resolves a presented key. Every well-formed key costs one SHA-256 and one
    /// constant-time comparison, found or not.
    pub async fn authenticate(&self, store: &dyn Store, presented: &str) -> ApiResult<Identity> {
        let pak = Pak::parse(presented).map_err(|_| {
            ApiError::unauthorized("malformed key: expected brokkr_<short id>_<secret>")
        })?;
        let record = self.lookup(store, pak.short_id()).await?;
        let (hash, owner) = match &record {
            Some(key) => (key.hash, Some(key.owner)),
            None => (KeyHash::DUMMY, None),
        };
        match (hash.verify(&pak), owner) {
            (true, Some(owner)) => Ok(owner.into()),
            _ => Err(ApiError::unauthorized("unknown or revoked key")),
        }
    }

    async fn lookup(&self, store: &dyn Store, short_id: &str) -> ApiResult<Option<ApiKey>> {
        if let Some(hit) = self.cached(short_id) {
            return Ok(hit);
        }
        let record = store.find_api_key(short_id).await?;
        self.insert(short_id, record.clone());
        Ok(record)
    }

    fn cached(&self, short_id: &str) -> Option<Option<ApiKey>> {
        let entries = self.entries.lock().expect("key cache lock poisoned");
        entries
            .get(short_id)
            .filter(|entry| Instant::now() < entry.expires)
            .map(|entry| entry.record.clone())
    }

    fn insert(&self, short_id: &str, record: Option<ApiKey>) {
        let mut entries = self.entries.lock().expect("key cache lock poisoned");
        let now = Instant::now();
        if entries.len() >= self.capacity {
            entries.retain(|_, entry| now < entry.expires);
            if entries.len() >= self.capacity {
                // Still full of fresh entries: start over rather than grow.
                entries.clear();
            }
        }
        entries.insert(
            short_id.to_owned(),
            CachedKey {
                record,
                // Each entry lives a random 50-100% of the TTL: keys cached together
                // (a fleet of agents after a restart) then expire apart instead of
                // sending every lookup to the database in the same instant. The TTL
                // stays the upper bound for noticing a revocation.
                expires: now + self.ttl.mul_f64(rand::random_range(0.5..=1.0)),
            },
        );
    }

    /// Forgets every cached key of `owner` (after rotation or deletion) and any
    /// negative entry for `new_short_id` (after issuing a key).
    pub fn invalidate(&self, owner: KeyOwner, new_short_id: Option<&str>) {
        let mut entries = self.entries.lock().expect("key cache lock poisoned");
        entries.retain(|short_id, entry| {
            let owned = entry.record.as_ref().is_some_and(|key| key.owner == owner);
            !owned && Some(short_id.as_str()) != new_short_id
        });
    }
}

#[cfg(test)]
mod tests {
    use brokkr_core::testing::MemoryStore;
    use brokkr_core::{NewAgent, Store};

    use super::*;

    fn mk_agent(key: &Pak) -> NewAgent {
        NewAgent {
            name: "a".into(),
            cluster_name: "c".into(),
            labels: Default::default(),
            annotations: Default::default(),
            key: key.stored(),
        }
    }

    #[tokio::test]
    async fn resolves_valid_keys_and_rejects_the_rest() {
        let store = MemoryStore::new();
        let key = Pak::generate();
        let agent = store
            .create_agent(&Actor::Admin, mk_agent(&key))
            .await
            .unwrap();
        let cache = KeyCache::new(Duration::from_secs(60), 10);

        let who = cache.authenticate(&store, key.expose()).await.unwrap();
        assert_eq!(who, Identity::Agent(agent.id));

        let unknown = Pak::generate();
        for bad in ["", "Bearer x", unknown.expose()] {
            assert_eq!(
                cache.authenticate(&store, bad).await.unwrap_err().status(),
                401
            );
        }
        // Right short id, wrong secret.
        let forged = format!("{}X", &key.expose()[..key.expose().len() - 1]);
        let forged = if forged == key.expose() {
            forged.replace('X', "Y")
        } else {
            forged
        };
        assert_eq!(
            cache
                .authenticate(&store, &forged)
                .await
                .unwrap_err()
                .status(),
            401
        );
    }

    #[tokio::test]
    async fn rotation_takes_effect_at_once_after_invalidation() {
        let store = MemoryStore::new();
        let old = Pak::generate();
        let agent = store
            .create_agent(&Actor::Admin, mk_agent(&old))
            .await
            .unwrap();
        let cache = KeyCache::new(Duration::from_secs(600), 10);
        cache.authenticate(&store, old.expose()).await.unwrap();

        let new = Pak::generate();
        let owner = KeyOwner::Agent(agent.id);
        store
            .rotate_api_key(&Actor::Admin, owner, new.stored())
            .await
            .unwrap();
        cache.invalidate(owner, Some(new.short_id()));

        assert_eq!(
            cache
                .authenticate(&store, old.expose())
                .await
                .unwrap_err()
                .status(),
            401
        );
        assert!(cache.authenticate(&store, new.expose()).await.is_ok());
    }

    #[tokio::test]
    async fn the_cache_stays_bounded() {
        let store = MemoryStore::new();
        let cache = KeyCache::new(Duration::from_secs(600), 3);
        for _ in 0..10 {
            let _ = cache.authenticate(&store, Pak::generate().expose()).await;
        }
        assert!(cache.entries.lock().unwrap().len() <= 3);
    }
}
