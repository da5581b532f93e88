//! The ledger claim protocol as a worker invocation uses it: one [`Session`] per invocation
//! claims every object it was given, with one conditional write per ledger record, and keeps
//! their checkpoints and end states, written together once the objects have acknowledged
//! `checkpointEvery` batches each (as many objects as run at once) since the last write, and
//! at the end. A cut-short invocation so re-sends no more than a per-object checkpoint would
//! let it, and a batch of small objects costs a few ledger writes instead of two per object.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::error::IngestError;
use crate::ledger::records::Loaded;
use crate::ledger::{Decision, EntryState, Ledger, LedgerEntry, decide, now_ms};

use super::batch::OBJECTS_IN_FLIGHT;
use super::io::{Checkpoint, Outcome, WorkerInput, WorkerOutput};
use super::progress::Progress;

/// Logs a claim another run took over after this invocation's lease ended: the rows this
/// invocation sent are in the channel, and the other run resumes from its own checkpoint.
pub(super) fn lost_claim(input: &WorkerInput) {
    tracing::warn!(key = %input.key, run = %input.run_id, "the ledger entry was taken over by another run");
}

/// The checkpoint further into the object, of the input's and the ledger's.
pub(super) fn later_checkpoint(a: Option<Checkpoint>, b: Option<Checkpoint>) -> Option<Checkpoint> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.byte_offset > a.byte_offset { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// A change to the ledger entry.
pub(super) enum LedgerUpdate {
    /// Still in progress, resumable from here.
    InProgress(Option<Checkpoint>),
    /// Finished.
    Ingested,
    /// Stopped for good at a bad row or header.
    SetAside {
        checkpoint: Option<Checkpoint>,
        reason: String,
        report: Option<String>,
    },
}

/// A source object: its bucket and key.
type ObjectId = (String, String);

/// The ledger as one worker invocation uses it.
pub(super) struct Session<'a> {
    ledger: Ledger<'a>,
    /// Acknowledged batches, over every object, between two writes.
    budget: u64,
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Records read or written, with their ETags.
    cache: Vec<Loaded>,
    /// Each object's entry as this session last wrote it: the next write is made only over it.
    written: HashMap<ObjectId, LedgerEntry>,
    /// Entries to write next.
    pending: BTreeMap<ObjectId, LedgerEntry>,
    /// Objects another run took over.
    lost: HashSet<ObjectId>,
    /// Batches acknowledged since the last write.
    unwritten: u64,
}

/// What claiming one object decided.
enum Plan {
    /// Work to do under this entry, from the checkpoint, after `earlier` runs' counts.
    Work {
        entry: LedgerEntry,
        checkpoint: Option<Checkpoint>,
        earlier: Counts,
    },
    /// Nothing to do: the finished output.
    Nothing(WorkerOutput),
}

impl<'a> Session<'a> {
    /// A session on `ledger` for an invocation on `objects` objects that checkpoints every
    /// `checkpoint_every` batches.
    pub(super) fn new(ledger: Ledger<'a>, checkpoint_every: u64, objects: usize) -> Self {
        let at_once = objects.clamp(1, OBJECTS_IN_FLIGHT) as u64;
        Self {
            ledger,
            budget: checkpoint_every.max(1) * at_once,
            state: tokio::sync::Mutex::new(State::default()),
        }
    }

    /// Reads the entries of `inputs` and claims those with work, one conditional write per
    /// record. Answers in the order of `inputs`.
    pub(super) async fn claim(
        &self,
        inputs: &[&WorkerInput],
        lease_until_ms: u64,
    ) -> Result<Vec<Claimed<'_>>, IngestError> {
        let mut by_bucket: BTreeMap<&str, Vec<(&str, usize)>> = BTreeMap::new();
        for (index, input) in inputs.iter().enumerate() {
            by_bucket
                .entry(input.bucket.as_str())
                .or_default()
                .push((input.key.as_str(), index));
        }
        let mut plans: Vec<Option<Plan>> = inputs.iter().map(|_| None).collect();
        let mut state = self.state.lock().await;
        for (bucket, mut objects) in by_bucket {
            objects.sort_unstable();
            if let Some(pair) = objects.windows(2).find(|w| w[0].0 == w[1].0) {
                return Err(IngestError::invalid_input(
                    &format!("Items[{}] ({})", pair[1].1, pair[1].0),
                    "the object appears twice in the batch",
                ));
            }
            let keys: Vec<&str> = objects.iter().map(|(key, _)| *key).collect();
            let answers = self
                .ledger
                .modify(bucket, &keys, &mut state.cache, |key, current| {
                    let index = objects[objects
                        .binary_search_by(|(k, _)| (*k).cmp(key))
                        .expect("keys come from the objects")]
                    .1;
                    match plan(current, inputs[index], lease_until_ms) {
                        Plan::Work {
                            entry,
                            checkpoint,
                            earlier,
                        } => (
                            Some(entry.clone()),
                            Plan::Work {
                                entry,
                                checkpoint,
                                earlier,
                            },
                        ),
                        nothing => (None, nothing),
                    }
                })
                .await?;
            for ((_, index), answer) in objects.iter().zip(answers) {
                if let Plan::Work { entry, .. } = &answer {
                    state
                        .written
                        .insert((entry.bucket.clone(), entry.key.clone()), entry.clone());
                }
                plans[*index] = Some(answer);
            }
        }
        Ok(plans
            .into_iter()
            .map(|plan| match plan.expect("every object is planned") {
                Plan::Work {
                    entry,
                    checkpoint,
                    earlier,
                } => Claimed::Work(
                    Claim {
                        session: self,
                        batches_saved: checkpoint.as_ref().map_or(0, |c| c.batches),
                        entry,
                        earlier,
                    },
                    checkpoint,
                ),
                Plan::Nothing(output) => Claimed::Nothing(output),
            })
            .collect())
    }

    /// Keeps `entry` for the next write, which is made now when the objects acknowledged the
    /// budget's batches since the last one (`batches` of them since this object's last save).
    async fn save(&self, entry: LedgerEntry, batches: u64) -> Result<Saved, IngestError> {
        let mut state = self.state.lock().await;
        let id = (entry.bucket.clone(), entry.key.clone());
        if state.lost.contains(&id) {
            return Ok(Saved::TakenOver);
        }
        state.unwritten += batches;
        state.pending.insert(id.clone(), entry);
        if state.unwritten >= self.budget {
            self.write_pending(&mut state).await?;
        }
        Ok(if state.lost.contains(&id) {
            Saved::TakenOver
        } else {
            Saved::Written
        })
    }

    /// Writes what is pending: the invocation's last ledger write.
    pub(super) async fn finish(&self) -> Result<(), IngestError> {
        let mut state = self.state.lock().await;
        if state.pending.is_empty() {
            return Ok(());
        }
        self.write_pending(&mut state).await
    }

    /// Writes every pending entry over the entry this session last wrote; an entry changed by
    /// someone else since is not written, and its object is lost to this session.
    async fn write_pending(&self, state: &mut State) -> Result<(), IngestError> {
        let pending = std::mem::take(&mut state.pending);
        let unwritten = std::mem::take(&mut state.unwritten);
        let mut by_bucket: BTreeMap<&str, Vec<&LedgerEntry>> = BTreeMap::new();
        for entry in pending.values() {
            by_bucket
                .entry(entry.bucket.as_str())
                .or_default()
                .push(entry);
        }
        for (bucket, entries) in by_bucket {
            let keys: Vec<&str> = entries.iter().map(|e| e.key.as_str()).collect();
            let State {
                cache,
                written,
                lost,
                ..
            } = &mut *state;
            let written_before = &*written;
            let answers = self
                .ledger
                .modify(bucket, &keys, cache, |key, current| {
                    let new = entries[keys
                        .binary_search(&key)
                        .expect("keys come from the entries")];
                    let ours = written_before.get(&(bucket.to_owned(), key.to_owned()));
                    if current == Some(new) {
                        // Written by an attempt that failed after storing it.
                        (None, true)
                    } else if current == ours {
                        (Some(new.clone()), true)
                    } else {
                        (None, false)
                    }
                })
                .await;
            let answers = match answers {
                Ok(answers) => answers,
                Err(error) => {
                    // Kept for the next write: the change above accepts what was stored.
                    for (id, entry) in &pending {
                        state
                            .pending
                            .entry(id.clone())
                            .or_insert_with(|| entry.clone());
                    }
                    state.unwritten += unwritten;
                    return Err(error);
                }
            };
            for (entry, kept) in entries.into_iter().zip(answers) {
                let id = (entry.bucket.clone(), entry.key.clone());
                if kept {
                    written.insert(id, entry.clone());
                } else {
                    tracing::warn!(bucket = %entry.bucket, key = %entry.key, run = %entry.run_id, "the ledger entry was taken over by another run");
                    lost.insert(id);
                }
            }
        }
        Ok(())
    }
}

/// This worker's claim on an object in the ledger.
pub(super) struct Claim<'s> {
    session: &'s Session<'s>,
    /// The entry as last saved.
    entry: LedgerEntry,
    /// The object's acknowledged batches at the last save.
    batches_saved: u64,
    /// Counts earlier runs recorded for this ETag; the entry holds them plus this run's.
    earlier: Counts,
}

/// Rows, batches, re-sends and bad rows.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    rows: u64,
    batches: u64,
    retries: u64,
    bad_rows: u64,
}

/// What saving under a claim gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub(super) enum Saved {
    /// The update is kept, and written with the session's next write.
    Written,
    /// Another run took the entry over since this claim last wrote it: nothing was written.
    TakenOver,
}

/// What taking a claim gave.
pub(super) enum Claimed<'s> {
    /// Work to do, maybe from a checkpoint.
    Work(Claim<'s>, Option<Checkpoint>),
    /// Nothing to do: the finished output.
    Nothing(WorkerOutput),
}

/// Decides, from the object's entry as stored now, whether this run has work on it and the
/// entry that claims it.
fn plan(existing: Option<&LedgerEntry>, input: &WorkerInput, lease_until_ms: u64) -> Plan {
    let mut earlier = Counts::default();
    let decision = decide(
        existing,
        &input.etag,
        &input.run_id,
        input.bad_rows,
        now_ms(),
    );
    let checkpoint = match decision {
        Decision::Start => None,
        // Another run's checkpoint gives the position; its counts stay that run's, so this
        // run's totals count only what this run sent.
        Decision::Resume(Some(mut checkpoint))
            if existing.is_some_and(|e| e.run_id != input.run_id) =>
        {
            earlier = Counts {
                rows: checkpoint.rows_sent,
                batches: checkpoint.batches,
                retries: checkpoint.retries,
                bad_rows: checkpoint.bad_rows,
            };
            checkpoint.rows_sent = 0;
            checkpoint.batches = 0;
            checkpoint.retries = 0;
            checkpoint.bad_rows = 0;
            checkpoint.duration_ms = 0;
            Some(checkpoint)
        }
        Decision::Resume(checkpoint) => checkpoint,
        Decision::AlreadyIngested | Decision::AlreadySetAside | Decision::HeldElsewhere { .. } => {
            let entry = existing.expect("decided from an entry");
            return Plan::Nothing(nothing_to_do(input, entry, &decision));
        }
    };
    let entry = LedgerEntry {
        bucket: input.bucket.clone(),
        key: input.key.clone(),
        etag: input.etag.clone(),
        state: EntryState::InProgress,
        run_id: input.run_id.clone(),
        lease_until_ms,
        updated_ms: now_ms(),
        checkpoint: checkpoint.clone(),
        rows: earlier.rows + checkpoint.as_ref().map_or(0, |c| c.rows_sent),
        batches: earlier.batches + checkpoint.as_ref().map_or(0, |c| c.batches),
        retries: earlier.retries + checkpoint.as_ref().map_or(0, |c| c.retries),
        bad_rows: earlier.bad_rows + checkpoint.as_ref().map_or(0, |c| c.bad_rows),
        reason: None,
        report: None,
    };
    Plan::Work {
        entry,
        checkpoint,
        earlier,
    }
}

/// The output of an object the ledger says there is nothing to do for.
fn nothing_to_do(input: &WorkerInput, entry: &LedgerEntry, decision: &Decision) -> WorkerOutput {
    match decision {
        Decision::AlreadyIngested if entry.run_id == input.run_id => {
            // An earlier attempt of this run finished it, and its output was lost with the
            // attempt (a retried batch, a lost response): the rows are this run's.
            tracing::info!(key = %input.key, rows = entry.rows, "finished by an earlier attempt of this run");
            WorkerOutput {
                rows: entry.rows,
                batches: entry.batches,
                retries: entry.retries,
                bad_rows: entry.bad_rows,
                ..WorkerOutput::empty(input, Outcome::AlreadyIngested)
            }
        }
        Decision::HeldElsewhere { run_id } => {
            tracing::info!(key = %input.key, holder = %run_id, "another run is ingesting the object");
            let mut output = skipped_output(input, Outcome::HeldElsewhere, entry);
            // Its rows are the holder's to count.
            output.skipped_rows = 0;
            output
        }
        _ => {
            let outcome = if *decision == Decision::AlreadySetAside {
                Outcome::SetAside
            } else {
                Outcome::AlreadyIngested
            };
            tracing::info!(key = %input.key, etag = %input.etag, ?outcome, "nothing to do");
            skipped_output(input, outcome, entry)
        }
    }
}

impl Claim<'_> {
    /// Saves `update`; [`Saved::TakenOver`] when another run took the object over.
    pub(super) async fn save(
        &mut self,
        update: LedgerUpdate,
        progress: &Progress,
    ) -> Result<Saved, IngestError> {
        let mut entry = self.entry.clone();
        entry.updated_ms = now_ms();
        entry.rows = self.earlier.rows + progress.rows;
        entry.batches = self.earlier.batches + progress.batches;
        entry.retries = self.earlier.retries + progress.retries;
        entry.bad_rows = self.earlier.bad_rows + progress.bad_rows;
        match update {
            LedgerUpdate::InProgress(checkpoint) => entry.checkpoint = checkpoint,
            LedgerUpdate::Ingested => {
                entry.state = EntryState::Ingested;
                entry.checkpoint = None;
            }
            LedgerUpdate::SetAside {
                checkpoint,
                reason,
                report,
            } => {
                entry.state = EntryState::SetAside;
                entry.checkpoint = checkpoint;
                entry.reason = Some(reason);
                entry.report = report;
            }
        }
        let batches = progress.batches.saturating_sub(self.batches_saved);
        self.batches_saved = progress.batches;
        let saved = self.session.save(entry.clone(), batches).await?;
        if saved == Saved::Written {
            self.entry = entry;
        }
        Ok(saved)
    }
}

/// The output for an object with nothing to do, counted from its ledger entry.
pub(super) fn skipped_output(
    input: &WorkerInput,
    outcome: Outcome,
    entry: &LedgerEntry,
) -> WorkerOutput {
    WorkerOutput {
        skipped: 1,
        skipped_rows: entry.rows,
        report: entry.report.clone(),
        ..WorkerOutput::empty(input, outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::input;
    use super::*;
    use crate::ledger::LedgerLocation;

    fn held(state: EntryState, run_id: &str, checkpoint: Option<Checkpoint>) -> LedgerEntry {
        LedgerEntry {
            key: "1/a.csv".into(),
            checkpoint,
            ..crate::ledger::tests::entry(state, run_id, 0)
        }
    }

    fn checkpoint(rows: u64) -> Checkpoint {
        Checkpoint {
            byte_offset: 40,
            next_row: rows + 1,
            next_line: rows + 2,
            header: vec!["a".into()],
            rows_sent: rows,
            batches: 1,
            retries: 2,
            bad_rows: 0,
            duration_ms: 5,
        }
    }

    #[test]
    fn a_new_object_is_claimed_from_its_start_until_the_lease_ends() {
        let Plan::Work {
            entry, checkpoint, ..
        } = plan(None, &input(serde_json::json!({"runId": "run"})), 1_234)
        else {
            panic!("no work on a new object");
        };
        assert_eq!(checkpoint, None);
        assert_eq!(
            (entry.state, entry.run_id.as_str(), entry.lease_until_ms),
            (EntryState::InProgress, "run", 1_234)
        );
        assert_eq!((entry.rows, entry.key.as_str()), (0, "1/a.csv"));
    }

    #[test]
    fn an_abandoned_claim_of_another_run_resumes_there_counting_only_this_runs_rows() {
        let abandoned = held(EntryState::InProgress, "old", Some(checkpoint(100)));
        let Plan::Work {
            entry,
            checkpoint,
            earlier,
        } = plan(
            Some(&abandoned),
            &input(serde_json::json!({"runId": "run"})),
            9,
        )
        else {
            panic!("an abandoned claim is work");
        };
        let checkpoint = checkpoint.unwrap();
        assert_eq!((checkpoint.byte_offset, checkpoint.next_row), (40, 101));
        assert_eq!((checkpoint.rows_sent, checkpoint.retries), (0, 0));
        assert_eq!(
            (earlier.rows, entry.rows, entry.run_id.as_str()),
            (100, 100, "run")
        );
    }

    #[test]
    fn an_object_this_run_finished_before_counts_its_rows_again_and_another_runs_does_not() {
        let done = held(EntryState::Ingested, "run", None);
        let Plan::Nothing(mine) = plan(Some(&done), &input(serde_json::json!({"runId": "run"})), 9)
        else {
            panic!("an ingested object is no work");
        };
        assert_eq!(
            (mine.outcome, mine.rows, mine.skipped),
            (Outcome::AlreadyIngested, 10, 0)
        );
        let Plan::Nothing(other) =
            plan(Some(&done), &input(serde_json::json!({"runId": "next"})), 9)
        else {
            panic!("an ingested object is no work");
        };
        assert_eq!((other.rows, other.skipped, other.skipped_rows), (0, 1, 10));
    }

    #[test]
    fn a_live_claim_of_another_run_is_skipped_without_its_rows() {
        let claimed = LedgerEntry {
            lease_until_ms: u64::MAX,
            ..held(EntryState::InProgress, "other", None)
        };
        let Plan::Nothing(output) = plan(
            Some(&claimed),
            &input(serde_json::json!({"runId": "run"})),
            9,
        ) else {
            panic!("a live claim is not this run's work");
        };
        assert_eq!(output.outcome, Outcome::HeldElsewhere);
        assert_eq!((output.skipped, output.skipped_rows), (1, 0));
    }

    #[test]
    fn the_ledger_is_written_every_checkpoint_interval_of_each_object_running_at_once() {
        let (clients, _) = super::super::test_support::clients(b"");
        let location = LedgerLocation {
            bucket: "l".into(),
            prefix: "p/".into(),
        };
        let ledger = Ledger::new(&clients.s3, &location);
        assert_eq!(Session::new(ledger, 10, 1).budget, 10);
        assert_eq!(Session::new(ledger, 10, 3).budget, 30);
        assert_eq!(
            Session::new(ledger, 10, 50).budget,
            10 * OBJECTS_IN_FLIGHT as u64
        );
        assert_eq!(Session::new(ledger, 0, 0).budget, 1);
    }
}
