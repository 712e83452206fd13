//! Authentication: a presented API key resolved to an [`Actor`].
//!
//! Keys are looked up by their public short id through a small cache ([`KeyCache`]),
//! then verified against the stored SHA-256 in constant time. A lookup miss is verified
//! against a dummy hash, so an unknown key costs the same work as a known one. Rotating
//! or revoking a key through this control plane invalidates its cache entry at once;
//! every other replica, and a server whose database a command line changed, forgets
//! its cached keys when the store's revocation counter moves
//! ([`Store::key_revocations`], polled every
//! [`Settings::key_revocation_poll`](super::Settings::key_revocation_poll)).
//!
//! While the database cannot be reached, a key whose entry has expired still
//! authenticates from that entry: agents keep reading their cached target states
//! through an outage. One lookup a second probes whether the database is back.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::model::{Actor, ApiKey, KeyOwner};
use crate::pak::{KeyHash, Pak};
use crate::store::{self, Store};

use super::error::{Error, Result};
use crate::sync::lock;

struct CachedKey {
    record: Option<ApiKey>,
    expires: Instant,
}

/// Recently looked-up key records by short id, bounded in size and age.
pub struct KeyCache {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    by_short_id: HashMap<String, CachedKey>,
    /// Advances at every invalidation. A lookup caches its answer only if no
    /// invalidation happened while it read the store: one that read a key just before
    /// its rotation committed would otherwise cache the revoked key after the rotation
    /// forgot it, and the key would keep working for a TTL.
    generation: u64,
    /// Set while the store is unreachable: until then, expired entries answer without
    /// asking it.
    next_probe: Option<Instant>,
}

/// How often a lookup asks an unreachable store whether it is back.
const OUTAGE_PROBE_PERIOD: Duration = Duration::from_secs(1);

/// How long a lookup waits for the store when an expired entry could answer.
const STALE_KEY_PATIENCE: Duration = Duration::from_secs(1);

/// What the cache holds for a short id.
enum Cached {
    /// A fresh entry: the answer.
    Fresh(Option<ApiKey>),
    /// The store is known to be unreachable and an expired entry names a key: use it.
    Stale(ApiKey),
    /// Ask the store, starting at this generation; `stale` answers if it cannot.
    Miss {
        generation: u64,
        stale: Option<ApiKey>,
    },
}

impl KeyCache {
    /// A cache keeping each entry for at most `ttl` (a random 50-100% of it), and at
    /// most `capacity` entries.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity: capacity.max(1),
            entries: Mutex::new(Entries::default()),
        }
    }

    /// Resolves a presented key. Every well-formed key costs one SHA-256 and one
    /// constant-time comparison, found or not.
    pub async fn authenticate(&self, store: &dyn Store, presented: &str) -> Result<Actor> {
        let pak = Pak::parse(presented).map_err(|_| {
            Error::Unauthenticated("malformed key: expected brokkr_<short id>_<secret>")
        })?;
        let record = self.lookup(store, pak.short_id()).await?;
        let (hash, owner) = match &record {
            Some(key) => (key.hash, Some(key.owner)),
            None => (KeyHash::DUMMY, None),
        };
        match (hash.verify(&pak), owner) {
            (true, Some(owner)) => Ok(owner.into()),
            _ => Err(Error::Unauthenticated("unknown or revoked key")),
        }
    }

    async fn lookup(&self, store: &dyn Store, short_id: &str) -> Result<Option<ApiKey>> {
        let (generation, stale) = match self.cached(short_id) {
            Cached::Fresh(hit) => return Ok(hit),
            Cached::Stale(key) => return Ok(Some(key)),
            Cached::Miss { generation, stale } => (generation, stale),
        };
        let read = store.find_api_key(short_id);
        let read = match stale {
            // A key that authenticated a moment ago does not wait out the pool's
            // acquire timeout before the request's own query waits it out again.
            Some(_) => tokio::time::timeout(STALE_KEY_PATIENCE, read)
                .await
                .unwrap_or_else(|_| {
                    Err(store::Error::Unavailable(
                        "no answer within the patience for a known key".into(),
                    ))
                }),
            None => read.await,
        };
        match read {
            Ok(record) => {
                self.insert(short_id, record.clone(), generation);
                Ok(record)
            }
            Err(store::Error::Unavailable(cause)) => {
                self.store_unreachable();
                match stale {
                    Some(key) => Ok(Some(key)),
                    None => Err(store::Error::Unavailable(cause).into()),
                }
            }
            Err(other) => Err(other.into()),
        }
    }

    /// What the cache holds for `short_id`. While the store is unreachable, the first
    /// lookup after each probe period asks it again (a miss); the others use an expired
    /// entry when there is one.
    fn cached(&self, short_id: &str) -> Cached {
        let mut entries = lock(&self.entries);
        let now = Instant::now();
        let entry = entries.by_short_id.get(short_id);
        if let Some(entry) = entry.filter(|entry| now < entry.expires) {
            return Cached::Fresh(entry.record.clone());
        }
        let stale = entry.and_then(|entry| entry.record.clone());
        match (entries.next_probe, stale) {
            (Some(probe), Some(key)) if now < probe => Cached::Stale(key),
            (Some(probe), stale) if now >= probe => {
                // This lookup probes; the others keep using what they have meanwhile.
                entries.next_probe = Some(now + OUTAGE_PROBE_PERIOD);
                Cached::Miss {
                    generation: entries.generation,
                    stale,
                }
            }
            (_, stale) => Cached::Miss {
                generation: entries.generation,
                stale,
            },
        }
    }

    fn store_unreachable(&self) {
        let mut entries = lock(&self.entries);
        if entries.next_probe.is_none() {
            tracing::warn!("the store is unreachable: cached keys keep authenticating");
        }
        entries.next_probe = Some(Instant::now() + OUTAGE_PROBE_PERIOD);
    }

    /// Caches what a lookup that started at `generation` read, unless an invalidation
    /// happened since.
    fn insert(&self, short_id: &str, record: Option<ApiKey>, generation: u64) {
        let mut guard = lock(&self.entries);
        if guard.next_probe.take().is_some() {
            tracing::info!("the store is reachable again");
        }
        if guard.generation != generation {
            return;
        }
        let entries = &mut guard.by_short_id;
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

    /// Forgets every cached key (another process revoked one: which, it does not say).
    pub fn forget_all(&self) {
        let mut guard = lock(&self.entries);
        guard.generation += 1;
        guard.by_short_id.clear();
    }

    /// Forgets every cached key of `owner` (after rotation or deletion) and any
    /// negative entry for `new_short_id` (after issuing a key).
    pub fn invalidate(&self, owner: KeyOwner, new_short_id: Option<&str>) {
        let mut guard = lock(&self.entries);
        guard.generation += 1;
        guard.by_short_id.retain(|short_id, entry| {
            let owned = entry.record.as_ref().is_some_and(|key| key.owner == owner);
            !owned && Some(short_id.as_str()) != new_short_id
        });
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use crate::testing::MemoryStore;
    use crate::testing::conformance::new_agent;

    use super::*;

    #[tokio::test]
    async fn resolves_valid_keys_and_rejects_the_rest() {
        let store = MemoryStore::new();
        let key = Pak::generate();
        let agent = store
            .create_agent(&Actor::Admin, new_agent("a", "c", &key))
            .await
            .unwrap();
        let cache = KeyCache::new(Duration::from_secs(60), 10);

        let who = cache.authenticate(&store, key.expose()).await.unwrap();
        assert_eq!(who, Actor::Agent(agent.id));

        let unknown = Pak::generate();
        for bad in ["", "Bearer x", unknown.expose()] {
            assert!(matches!(
                cache.authenticate(&store, bad).await,
                Err(Error::Unauthenticated(_))
            ));
        }
        // Right short id, wrong secret.
        let forged = format!("{}X", &key.expose()[..key.expose().len() - 1]);
        let forged = if forged == key.expose() {
            forged.replace('X', "Y")
        } else {
            forged
        };
        assert!(matches!(
            cache.authenticate(&store, &forged).await,
            Err(Error::Unauthenticated(_))
        ));
    }

    #[tokio::test]
    async fn rotation_takes_effect_at_once_after_invalidation() {
        let store = MemoryStore::new();
        let old = Pak::generate();
        let agent = store
            .create_agent(&Actor::Admin, new_agent("a", "c", &old))
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

        assert!(matches!(
            cache.authenticate(&store, old.expose()).await,
            Err(Error::Unauthenticated(_))
        ));
        assert!(cache.authenticate(&store, new.expose()).await.is_ok());
    }

    /// A lookup that read the key before a rotation committed, and finishes after the
    /// rotation forgot the cached keys, must not cache the old key again.
    #[tokio::test]
    async fn a_lookup_overtaken_by_a_rotation_does_not_cache_the_old_key() {
        let store = MemoryStore::new();
        let old = Pak::generate();
        let agent = store
            .create_agent(&Actor::Admin, new_agent("a", "c", &old))
            .await
            .unwrap();
        let cache = KeyCache::new(Duration::from_secs(600), 10);

        // The lookup starts and reads the key as it is before the rotation...
        let Cached::Miss {
            generation: started_at,
            ..
        } = cache.cached(old.short_id())
        else {
            panic!("nothing is cached yet");
        };
        let read = store.find_api_key(old.short_id()).await.unwrap();
        assert!(read.is_some());
        // ...the rotation commits and forgets the cached keys...
        let owner = KeyOwner::Agent(agent.id);
        store
            .rotate_api_key(&Actor::Admin, owner, Pak::generate().stored())
            .await
            .unwrap();
        cache.invalidate(owner, None);
        // ...then the lookup finishes.
        cache.insert(old.short_id(), read, started_at);

        assert!(matches!(
            cache.authenticate(&store, old.expose()).await,
            Err(Error::Unauthenticated(_))
        ));
    }

    #[tokio::test]
    async fn the_cache_stays_bounded() {
        let store = MemoryStore::new();
        let cache = KeyCache::new(Duration::from_secs(600), 3);
        for _ in 0..10 {
            let _ = cache.authenticate(&store, Pak::generate().expose()).await;
        }
        assert!(cache.entries.lock().unwrap().by_short_id.len() <= 3);
    }
}
