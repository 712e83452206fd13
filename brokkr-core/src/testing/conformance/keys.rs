//! API keys: lookup, rotation, unique short ids.

use super::fixtures::{ADMIN, mk_generator, new_agent, new_generator};
use super::support::{all_agents, expect_conflict, expect_not_found};
use crate::model::{Actor, KeyOwner};
use crate::pak::Pak;
use crate::store::{AgentFilter, Store};

cases!(
    /// A key is found by its short id while it is unrevoked, and verifies the presented key.
    pub async fn keys_find_by_short_id(store: &dyn Store) {
        let agent_key = Pak::generate();
        let agent = store
            .create_agent(&ADMIN, new_agent("a", "c", &agent_key))
            .await
            .expect("create agent");
        let generator_key = Pak::generate();
        let generator = store
            .create_generator(&ADMIN, new_generator("g", &generator_key))
            .await
            .expect("create generator");

        let found = store
            .find_api_key(agent_key.short_id())
            .await
            .expect("find")
            .expect("the agent's key");
        assert_eq!(found.short_id, agent_key.short_id());
        assert_eq!(found.owner, KeyOwner::Agent(agent.id));
        assert_eq!(found.hash, agent_key.hash());
        assert!(found.hash.verify(&agent_key));
        assert!(!found.hash.verify(&generator_key));
        assert_eq!(found.revoked_at, None);

        let found = store
            .find_api_key(generator_key.short_id())
            .await
            .expect("find")
            .expect("the generator's key");
        assert_eq!(found.owner, KeyOwner::Generator(generator.id));
        assert_eq!(
            store.find_api_key("nosuchkey000").await.expect("find"),
            None
        );

        let active = store
            .active_api_keys(KeyOwner::Agent(agent.id))
            .await
            .expect("active");
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].short_id, agent_key.short_id());
        let admin = store
            .active_api_keys(KeyOwner::Admin)
            .await
            .expect("active");
        assert!(admin.is_empty());
    }

    /// The revocation counter moves at every rotation and every deletion of a key's
    /// owner, and at nothing else: control planes forget cached keys when it moves.
    pub async fn keys_revocations_move_the_counter(store: &dyn Store) {
        let counter = || async { store.key_revocations().await.expect("read the counter") };
        let start = counter().await;
        let key = Pak::generate();
        let agent = store
            .create_agent(&ADMIN, new_agent("a", "c", &key))
            .await
            .expect("create agent");
        let generator = mk_generator(store, "g").await;
        assert_eq!(counter().await, start, "issuing a key revokes nothing");

        let mut last = start;
        store
            .rotate_api_key(&ADMIN, KeyOwner::Agent(agent.id), Pak::generate().stored())
            .await
            .expect("rotate");
        let after_rotation = counter().await;
        assert_ne!(after_rotation, last, "a rotation did not move the counter");
        last = after_rotation;
        store
            .delete_agent(&ADMIN, agent.id)
            .await
            .expect("delete agent");
        let after_agent = counter().await;
        assert_ne!(
            after_agent, last,
            "deleting an agent did not move the counter"
        );
        last = after_agent;
        store
            .delete_generator(&ADMIN, generator.id)
            .await
            .expect("delete generator");
        assert_ne!(
            counter().await,
            last,
            "deleting a generator did not move the counter"
        );
    }

    /// Rotating issues the new key and revokes every earlier key of the same owner only,
    /// for agents, generators and the admin.
    pub async fn keys_rotation_revokes_previous_keys(store: &dyn Store) {
        let old = Pak::generate();
        let agent = store
            .create_agent(&ADMIN, new_agent("a", "c", &old))
            .await
            .expect("create agent");
        let bystander = Pak::generate();
        store
            .create_agent(&ADMIN, new_agent("b", "c", &bystander))
            .await
            .expect("create bystander");
        let owner = KeyOwner::Agent(agent.id);

        let new = Pak::generate();
        let issued = store
            .rotate_api_key(&Actor::Agent(agent.id), owner, new.stored())
            .await
            .expect("rotate");
        assert_eq!(issued.owner, owner);
        assert_eq!(issued.short_id, new.short_id());
        assert_eq!(issued.hash, new.hash());
        assert_eq!(issued.revoked_at, None);
        assert_eq!(
            store.find_api_key(old.short_id()).await.expect("find"),
            None
        );
        let found = store.find_api_key(new.short_id()).await.expect("find");
        assert_eq!(found, Some(issued.clone()));
        assert_eq!(
            store.active_api_keys(owner).await.expect("active"),
            vec![issued]
        );
        assert!(
            store
                .find_api_key(bystander.short_id())
                .await
                .expect("find")
                .is_some(),
            "rotation revoked another owner's key"
        );

        let newest = Pak::generate();
        store
            .rotate_api_key(&ADMIN, owner, newest.stored())
            .await
            .expect("rotate again");
        let active = store.active_api_keys(owner).await.expect("active");
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].short_id, newest.short_id());

        let generator = mk_generator(store, "g").await;
        let generator_key = Pak::generate();
        store
            .rotate_api_key(
                &ADMIN,
                KeyOwner::Generator(generator.id),
                generator_key.stored(),
            )
            .await
            .expect("rotate generator key");
        let active = store
            .active_api_keys(KeyOwner::Generator(generator.id))
            .await
            .expect("active");
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].short_id, generator_key.short_id());

        for _ in 0..2 {
            let admin_key = Pak::generate();
            store
                .rotate_api_key(&Actor::System, KeyOwner::Admin, admin_key.stored())
                .await
                .expect("rotate admin key");
            let active = store
                .active_api_keys(KeyOwner::Admin)
                .await
                .expect("active");
            assert_eq!(active.len(), 1);
            assert_eq!(active[0].short_id, admin_key.short_id());
        }

        store.delete_agent(&ADMIN, agent.id).await.expect("delete");
        expect_not_found(
            store
                .rotate_api_key(&ADMIN, owner, Pak::generate().stored())
                .await,
            "agent",
        );
    }

    /// Short ids are unique across key records: creating an agent or generator, or
    /// rotating, with a taken short id is a `Conflict` and changes nothing.
    pub async fn keys_short_ids_are_unique(store: &dyn Store) {
        let key = Pak::generate();
        let agent = store
            .create_agent(&ADMIN, new_agent("a", "c", &key))
            .await
            .expect("create agent");
        expect_conflict(store.create_agent(&ADMIN, new_agent("b", "c", &key)).await);
        expect_conflict(
            store
                .create_generator(&ADMIN, new_generator("g", &key))
                .await,
        );
        let generator = mk_generator(store, "g").await;
        let owner = KeyOwner::Generator(generator.id);
        let before = store.active_api_keys(owner).await.expect("active");
        expect_conflict(store.rotate_api_key(&ADMIN, owner, key.stored()).await);
        assert_eq!(store.active_api_keys(owner).await.expect("active"), before);
        // Reissuing its own current key to the same owner is a conflict too.
        let own = KeyOwner::Agent(agent.id);
        expect_conflict(store.rotate_api_key(&ADMIN, own, key.stored()).await);
        assert_eq!(store.active_api_keys(own).await.expect("active").len(), 1);
        let filter = AgentFilter {
            include_deleted: true,
            ..Default::default()
        };
        assert_eq!(all_agents(store, filter).await.len(), 1);
    }
);
