//! Answers that do not grow with the fleet: the agents a decision did not choose,
//! counted per reason code, with one page of them listed.

use std::collections::BTreeMap;

use crate::id::AgentId;

use super::Rejection;

/// Which rejected agents an answer lists: those after `after` (by id), at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RejectionPage {
    /// List agents with a greater id only (the previous page's `next`).
    pub after: Option<AgentId>,
    /// At most this many (clamped to 1..=[`RejectionPage::MAX_LIMIT`]).
    pub limit: usize,
}

impl RejectionPage {
    /// The default page size.
    pub const DEFAULT_LIMIT: usize = 100;
    /// The largest page size.
    pub const MAX_LIMIT: usize = 1_000;
}

impl Default for RejectionPage {
    fn default() -> Self {
        Self {
            after: None,
            limit: Self::DEFAULT_LIMIT,
        }
    }
}

/// The agents a decision did not choose: counted per reason, one page listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rejections {
    /// How many agents were not chosen.
    pub total: usize,
    /// How many per reason code ([`Rejection::code`]).
    pub by_reason: BTreeMap<String, usize>,
    /// One page of them, ordered by agent id.
    pub agents: Vec<(AgentId, Rejection)>,
    /// The `after` of the next page, when there is one.
    pub next: Option<AgentId>,
}

impl Rejections {
    /// Summarizes `rejected` (in any order), leaving out agents in `exclude` (ordered
    /// by id): every reason counted, the page picked by selection rather than by
    /// sorting them all.
    pub fn summarize(
        mut rejected: Vec<(AgentId, Rejection)>,
        exclude: &[AgentId],
        page: RejectionPage,
    ) -> Self {
        let limit = page.limit.clamp(1, RejectionPage::MAX_LIMIT);
        let mut out = Self::default();
        if !exclude.is_empty() {
            rejected.retain(|(agent, _)| exclude.binary_search(agent).is_err());
        }
        out.total = rejected.len();
        for (_, why) in &rejected {
            // Look up before inserting: one allocation per reason, not per agent.
            match out.by_reason.get_mut(why.code()) {
                Some(count) => *count += 1,
                None => {
                    out.by_reason.insert(why.code().to_owned(), 1);
                }
            }
        }
        if let Some(after) = page.after {
            rejected.retain(|(agent, _)| *agent > after);
        }
        let more = rejected.len() > limit;
        if more {
            rejected.select_nth_unstable_by_key(limit, |(agent, _)| *agent);
            rejected.truncate(limit);
        }
        rejected.sort_unstable_by_key(|(agent, _)| *agent);
        out.next = more.then(|| rejected.last().map(|(id, _)| *id)).flatten();
        out.agents = rejected;
        out
    }
}
