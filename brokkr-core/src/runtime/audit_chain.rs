//! The audit chain in the control plane: the sealer task that links new audit records
//! every [`Settings::audit_seal_period`](super::Settings::audit_seal_period), and the
//! admin's check of the whole chain, read in bounded pages.

use tracing::instrument::WithSubscriber;

use crate::audit_chain::{ChainHead, ChainMismatch};
use crate::model::Actor;

use super::ControlPlane;
use super::access;
use super::error::{ErrorChain, Result};

/// Most records one seal links, and most links one check reads: what a call holds in
/// memory, whatever the chain's length.
const PAGE: usize = 1_000;

/// The answer of [`ControlPlane::verify_audit_chain`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditChainReport {
    /// Links found to match, from the first.
    pub checked: u64,
    /// The last matching link: the whole chain's head when nothing mismatched. Keep
    /// its hash elsewhere to prove later that no sealed record was dropped from the
    /// end or rewritten with the rest of the chain.
    pub head: Option<ChainHead>,
    /// The first link that does not match; the check stops there.
    pub mismatch: Option<ChainMismatch>,
    /// Records written but not sealed yet when the check ended (written after its
    /// seal began); the next seal covers them.
    pub unsealed: u64,
    /// With a kept head to compare: whether the chain still holds a link at its
    /// position with its hash. `false` means the chain was cut short or rewritten from
    /// some record on, which the links alone cannot show.
    pub anchor_matches: Option<bool>,
}

impl AuditChainReport {
    /// Whether every link checked matches, and the kept head if one was given.
    pub fn ok(&self) -> bool {
        self.mismatch.is_none() && self.anchor_matches != Some(false)
    }
}

impl ControlPlane {
    /// Seals every audit record pending now, in calls of a bounded size; returns how
    /// many it linked. The sealer task does this every period; records a call finds
    /// still arriving wait for the next one.
    pub async fn seal_audit_chain(&self) -> Result<usize> {
        let mut sealed = 0;
        loop {
            let linked = self.store().seal_audit_chain(PAGE).await?;
            sealed += linked;
            if linked < PAGE {
                return Ok(sealed);
            }
        }
    }

    /// Checks the whole audit chain (admin or system): seals what is pending first, so
    /// a change just made is covered, then reads the chain in pages of at most 1,000
    /// links, recomputing every record's content hash and every chain hash, and stops
    /// at the first link that does not match. `anchor` is a head kept from an earlier
    /// check, elsewhere: the chain must still have its link (see
    /// [`AuditChainReport::anchor_matches`]).
    pub async fn verify_audit_chain(
        &self,
        caller: &Actor,
        anchor: Option<ChainHead>,
    ) -> Result<AuditChainReport> {
        access::require_admin(caller)?;
        self.seal_audit_chain().await?;
        let store = self.store();
        let mut report = AuditChainReport {
            checked: 0,
            head: None,
            mismatch: None,
            unsealed: 0,
            anchor_matches: None,
        };
        loop {
            let page = store.verify_audit_chain(report.head, PAGE).await?;
            report.checked += page.checked;
            report.head = page.last.or(report.head);
            report.mismatch = page.mismatch;
            if page.mismatch.is_some() || !page.more {
                break;
            }
        }
        if let Some(anchor) = anchor {
            let link = match anchor.position.checked_sub(1) {
                Some(before) => store.list_audit_chain(before, 1).await?.pop(),
                None => None,
            };
            report.anchor_matches = Some(link.is_some_and(|link| {
                link.position == anchor.position && link.chain_hash == anchor.hash
            }));
        }
        report.unsealed = store.unsealed_audit_records().await?;
        Ok(report)
    }

    /// Seals new audit records every period. A failed seal (the database away) changes
    /// nothing: the records stay queued for the next one.
    pub(super) fn spawn_audit_sealer(&self) -> tokio::task::JoinHandle<()> {
        let control_plane = self.clone();
        let period = self.settings().audit_seal_period;
        tokio::spawn(
            async move {
                let mut tick = tokio::time::interval(period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    if let Err(err) = control_plane.seal_audit_chain().await {
                        tracing::warn!(
                            error = %ErrorChain(&err),
                            "sealing audit records failed; they stay queued for the next seal"
                        );
                    }
                }
            }
            .with_current_subscriber(),
        )
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use crate::model::NewStack;
    use crate::runtime::{Error, Settings};
    use crate::testing::MemoryStore;

    use super::*;

    fn control_plane(seal: Duration) -> ControlPlane {
        ControlPlane::builder(Arc::new(MemoryStore::new()))
            .settings(Settings {
                audit_seal_period: seal,
                ..Settings::default()
            })
            .build()
    }

    async fn change(cp: &ControlPlane, name: &str) {
        let new = NewStack {
            name: name.into(),
            ..Default::default()
        };
        cp.create_stack(&Actor::Admin, new).await.expect("create");
    }

    #[tokio::test]
    async fn the_check_seals_first_and_reads_every_page() {
        let cp = control_plane(Duration::from_secs(3600));
        for i in 0..(PAGE + 5) {
            change(&cp, &format!("s{i}")).await;
        }
        let report = cp
            .verify_audit_chain(&Actor::Admin, None)
            .await
            .expect("verify");
        assert!(report.ok());
        assert_eq!(report.checked, PAGE as u64 + 5);
        assert_eq!(report.head.map(|h| h.position), Some(PAGE as u64 + 5));
        assert_eq!((report.unsealed, report.anchor_matches), (0, None));
    }

    #[tokio::test]
    async fn a_kept_head_must_still_be_in_the_chain() {
        let cp = control_plane(Duration::from_secs(3600));
        change(&cp, "a").await;
        let admin = Actor::Admin;
        let kept = cp.verify_audit_chain(&admin, None).await.unwrap().head;
        let kept = kept.expect("a head");
        change(&cp, "b").await;
        let later = cp.verify_audit_chain(&admin, Some(kept)).await.unwrap();
        assert_eq!(later.anchor_matches, Some(true));
        assert!(later.ok());
        assert_eq!(later.head.map(|h| h.position), Some(kept.position + 1));

        let elsewhere = [
            ChainHead {
                hash: crate::audit_chain::GENESIS,
                ..kept
            },
            ChainHead {
                position: kept.position + 5,
                ..kept
            },
            ChainHead {
                position: 0,
                ..kept
            },
        ];
        for anchor in elsewhere {
            let report = cp.verify_audit_chain(&admin, Some(anchor)).await.unwrap();
            assert_eq!(report.anchor_matches, Some(false), "{anchor:?}");
            assert!(!report.ok());
            assert_eq!(report.mismatch, None, "the links themselves match");
        }
    }

    #[tokio::test]
    async fn only_admin_checks_the_chain() {
        let cp = control_plane(Duration::from_secs(3600));
        let agent = Actor::Agent(crate::AgentId::new());
        assert!(matches!(
            cp.verify_audit_chain(&agent, None).await,
            Err(Error::Forbidden(_))
        ));
    }

    #[tokio::test]
    async fn the_sealer_task_links_new_records_within_a_period() {
        let cp = control_plane(Duration::from_millis(20));
        let background = cp.start();
        change(&cp, "s").await;
        let store = cp.store();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while store.unsealed_audit_records().await.unwrap() > 0 {
            assert!(tokio::time::Instant::now() < deadline, "never sealed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(store.list_audit_chain(0, 10).await.unwrap().len(), 1);
        background.shutdown().await;
    }
}
