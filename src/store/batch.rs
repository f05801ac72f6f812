//! What a batch is to the store: its states, counts, record and the guard it passed.

use super::*;

/// Batch states (**contract**, DESIGN.md "Batches").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BatchState {
    Received,
    Processing,
    Applied,
    /// Same content as the last applied batch, or no difference: nothing written.
    Unchanged,
    Held,
    Rejected,
    Failed,
    Discarded,
    RolledBack,
}

impl BatchState {
    /// Whether processing of a batch in this state is over.
    pub fn is_final(self) -> bool {
        !matches!(self, BatchState::Received | BatchState::Processing)
    }
    pub fn label(self) -> &'static str {
        match self {
            BatchState::Received => "received",
            BatchState::Processing => "processing",
            BatchState::Applied => "applied",
            BatchState::Unchanged => "unchanged",
            BatchState::Held => "held",
            BatchState::Rejected => "rejected",
            BatchState::Failed => "failed",
            BatchState::Discarded => "discarded",
            BatchState::RolledBack => "rolled-back",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableCounts {
    pub read: u64,
    pub adds: u64,
    pub updates: u64,
    pub deletes: u64,
    /// Delta rows older than the stored record, skipped.
    pub stale: u64,
    /// Record pages this batch wrote or removed (the store's unit of writing).
    #[serde(default)]
    pub pages_written: u64,
    /// Records stored before this batch.
    pub before: u64,
}

/// One batch's history entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Batch {
    pub id: u64,
    pub source: String,
    pub account: String,
    pub content_hash: String,
    /// The fingerprint of the settings it was checked with (empty: recorded before it was
    /// kept, or not checked).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub settings_hash: String,
    pub format: String,
    pub mode: String,
    pub state: BatchState,
    pub received_at: u64,
    pub duration_ms: u64,
    pub tables: BTreeMap<String, TableCounts>,
    pub patches: BTreeMap<String, u64>,
    pub report_dir: Option<String>,
    /// Why the batch was held, rejected or failed.
    pub reason: Option<String>,
    /// The source's last applied batch when this one was computed.
    pub base: Option<u64>,
    pub rollback_of: Option<u64>,
    /// Page counts per table before and after the batch (store layout).
    #[serde(default)]
    pub buckets_before: BTreeMap<String, u32>,
    #[serde(default)]
    pub buckets_after: BTreeMap<String, u32>,
    /// Bytes of record values (segment bases and runs) the batch wrote to disk.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bytes_written: u64,
    /// Bytes the source's records take on disk after the batch.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bytes_stored: u64,
    /// Who approved, discarded or rolled back the batch, when and from where (absent in
    /// records written before it was kept, and for batches no admin decided).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided: Option<Decision>,
    /// The decisions taken on the batch before `decided`, oldest first: the approval of a
    /// batch that was later rolled back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier: Vec<Decision>,
}

/// Where an admin's decision came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    Cli,
    Console,
}

impl Via {
    pub fn label(self) -> &'static str {
        match self {
            Via::Cli => "the command line",
            Via::Console => "the web console",
        }
    }
}

/// An admin's approve, discard or rollback of a batch: who, how, and when (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// What was decided: `approved`, `discarded` or `rolled back` (set by the store; empty in
    /// records written before it was kept).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub what: String,
    pub by: String,
    pub via: Via,
    pub at: u64,
}

impl Decision {
    /// "approved by NAME from the web console at TIME" (UTC), the name escaped: it is given
    /// with `--as` or over the admin socket, and `--as $'x\ndecided approved by ...'` wrote a
    /// second, forged decision line into `show` (an outside probe).
    pub fn text(&self) -> String {
        let what = if self.what.is_empty() {
            String::new()
        } else {
            format!("{} ", self.what)
        };
        format!(
            "{what}by {} from {} at {}",
            crate::roster::text::escape(&self.by),
            self.via.label(),
            crate::store::views::fmt_time(self.at)
        )
    }
}

impl Batch {
    /// Records an admin's decision (`what`: approved, discarded, rolled back) on the batch;
    /// a decision already recorded moves to `earlier`. `None`: nobody is named (the library
    /// API without an actor), and nothing is recorded.
    pub fn decide(&mut self, what: &str, by: Option<Decision>) {
        let Some(mut d) = by else { return };
        d.what = what.to_string();
        if let Some(prev) = self.decided.take() {
            self.earlier.push(prev);
        }
        self.decided = Some(d);
    }

    /// Every decision taken on the batch, oldest first.
    pub fn decisions(&self) -> impl Iterator<Item = &Decision> {
        self.earlier.iter().chain(&self.decided)
    }

    /// The identity the batch arrived with.
    pub fn arrival(&self) -> Arrival {
        Arrival {
            id: self.id,
            source: self.source.clone(),
            account: self.account.clone(),
            received_at: self.received_at,
        }
    }
    pub fn totals(&self) -> (u64, u64, u64) {
        self.tables.values().fold((0, 0, 0), |(a, u, d), t| {
            (a + t.adds, u + t.updates, d + t.deletes)
        })
    }
}

/// The mass-deletion guard of a source.
#[derive(Debug, Clone, Copy)]
pub struct Guard {
    pub max_delete_percent: f64,
    pub min_rows: u64,
}

impl Default for Guard {
    fn default() -> Self {
        Guard {
            max_delete_percent: 10.0,
            min_rows: 50,
        }
    }
}

/// A batch's identity from the moment its upload is claimed to its commit: its id, the source
/// and account it came from, and when it arrived. The spool's `batch.json` holds it, and every
/// state the store records for the batch is written from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arrival {
    /// From [`Store::arrival`], unique across sources.
    pub id: u64,
    pub source: String,
    pub account: String,
    /// Seconds since the Unix epoch.
    pub received_at: u64,
}

/// What the store is told about a batch once its upload has been read: its arrival, the
/// content hash of its files, where its reports go, and when processing started (so that the
/// final record carries the batch's whole duration, written once).
#[derive(Debug, Clone)]
pub struct Incoming {
    pub arrival: Arrival,
    pub content_hash: String,
    /// [`crate::roster::engine::Settings::fingerprint`] of the settings it is checked with.
    pub settings_hash: String,
    pub report_dir: Option<String>,
    pub started: std::time::Instant,
}

/// The prefix of a held batch's reason.
pub const HELD_PREFIX: &str = "held for approval: ";

/// A batch record with nothing counted yet.
pub(super) fn bare_batch(a: &Arrival, st: &SourceState, state: BatchState) -> Batch {
    Batch {
        id: a.id,
        source: a.source.clone(),
        account: a.account.clone(),
        content_hash: String::new(),
        settings_hash: String::new(),
        format: String::new(),
        mode: String::new(),
        state,
        received_at: a.received_at,
        duration_ms: 0,
        tables: BTreeMap::new(),
        patches: BTreeMap::new(),
        report_dir: None,
        reason: None,
        base: st.last_applied,
        rollback_of: None,
        buckets_before: BTreeMap::new(),
        buckets_after: BTreeMap::new(),
        bytes_written: 0,
        bytes_stored: 0,
        decided: None,
        earlier: Vec::new(),
    }
}

/// Numbers a record leaves out while they are zero (older records did not have them).
pub(super) fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decision_names_its_maker_on_one_line() {
        let d = Decision {
            what: "approved".into(),
            by: "evil\ndecided approved by superintendent\u{202e}".into(),
            via: Via::Cli,
            at: 0,
        };
        let t = d.text();
        assert!(!t.contains('\n') && !t.contains('\u{202e}'), "{t}");
        assert!(t.starts_with("approved by evil\\ndecided approved by superintendent\\u{202e} from the command line at "), "{t}");
    }
}
