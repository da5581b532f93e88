//! The read loop: turns the object's bytes into batches, keeps up to `maxInFlight` of them
//! sending, checkpoints the claim every `checkpointEvery` acknowledged batches, and stops at
//! the time budget, a lost claim or the first error.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::task::JoinSet;

use super::claim::{Claim, LedgerUpdate, Saved};
use super::io::{WorkerInput, header_error};
use super::progress::{Progress, collect};
use super::reader::ObjectReader;
use crate::batches::{Batcher, Produced};
use crate::error::IngestError;
use crate::sender::{BatchReport, BatchSender};

/// Why the read loop ended early without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// The time budget ran out.
    OutOfTime,
    /// Another run took the object over (this claim's lease had ended).
    ClaimLost,
}

/// How the read loop ended, once every dispatched batch is answered.
pub(super) struct LoopEnd {
    /// The error that stopped the object, if any (the first one).
    pub(super) failure: Option<IngestError>,
    /// Why the loop stopped early without an error, if it did.
    pub(super) stop: Option<Stop>,
}

/// What the read loop works with.
pub(super) struct Reading<'r, 'a, 'c> {
    pub(super) input: &'r WorkerInput,
    pub(super) batcher: &'r mut Batcher,
    pub(super) progress: &'r mut Progress,
    pub(super) source: &'r mut ObjectReader<'a>,
    pub(super) sender: &'r Arc<BatchSender>,
    pub(super) claim: Option<&'r mut Claim<'c>>,
    /// When to stop starting batches.
    pub(super) stop_at: Instant,
}

/// Reads and sends until the object ends, the time budget runs out, the claim is lost or
/// something fails; then waits for every batch still in flight. An error saving the claim's
/// checkpoint returns at once (the batches in flight are dropped).
pub(super) async fn read_and_send(reading: Reading<'_, '_, '_>) -> Result<LoopEnd, IngestError> {
    let Reading {
        input,
        batcher,
        progress,
        source,
        sender,
        mut claim,
        stop_at,
    } = reading;
    let mut in_flight: JoinSet<(u64, Result<BatchReport, IngestError>)> = JoinSet::new();
    let mut failure: Option<IngestError> = None;
    let mut stop = None;

    let mut chunk = Bytes::new();
    let mut at_end = false;
    loop {
        if chunk.is_empty() && !at_end {
            match source.next_chunk().await {
                Ok(Some(bytes)) => chunk = bytes,
                Ok(None) => at_end = true,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
            continue;
        }
        let produced = if at_end {
            batcher.finish()
        } else {
            match batcher.push(&chunk) {
                Ok((produced, used)) => {
                    chunk = chunk.slice(used..);
                    Ok(produced)
                }
                Err(problem) => Err(problem),
            }
        };
        let produced = match produced {
            Ok(produced) => produced,
            Err(problem) => {
                failure = Some(header_error(input, problem.0));
                break;
            }
        };
        match produced {
            Produced::NeedInput | Produced::Header => {}
            Produced::End => break,
            Produced::Batch(batch) => {
                progress.dispatch(&mut in_flight, sender, batch);
                // Bounded by the batches not yet under the watermark, not by the tasks still
                // running: batches acknowledged out of order past a slow one cannot be
                // checkpointed, so after a crash they would all be sent again.
                while progress.pending.len() >= input.max_in_flight && !in_flight.is_empty() {
                    if let Some(e) = collect(&mut in_flight, progress).await {
                        failure = Some(e);
                    }
                }
                if failure.is_some() {
                    break;
                }
                if let Some(claim) = claim.as_deref_mut()
                    && progress.since_checkpoint >= input.checkpoint_every
                {
                    let at = progress.checkpoint(batcher);
                    if claim.save(LedgerUpdate::InProgress(at), progress).await? == Saved::TakenOver
                    {
                        stop = Some(Stop::ClaimLost);
                        break;
                    }
                    progress.since_checkpoint = 0;
                }
                if Instant::now() >= stop_at {
                    stop = Some(Stop::OutOfTime);
                    break;
                }
            }
            Produced::BadRow(bad) => {
                if let Err(e) = progress.bad_row(bad, input) {
                    failure = Some(e);
                    break;
                }
            }
        }
    }
    // A bad row or header under the `fail` policy sets the object aside: the rows before it
    // still go out, so the ledger's checkpoint lands exactly on the bad row. After any other
    // failure the rows not yet dispatched stay unsent.
    let set_aside = matches!(
        failure,
        Some(IngestError::MalformedRow { .. } | IngestError::InvalidHeader { .. })
    );
    let flush = stop.is_none() && (failure.is_none() || set_aside);
    if flush && let Some(batch) = batcher.take_batch() {
        progress.dispatch(&mut in_flight, sender, batch);
    }
    while !in_flight.is_empty() {
        if let Some(e) = collect(&mut in_flight, progress).await {
            failure.get_or_insert(e);
        }
    }
    if failure.is_none() && stop.is_none() {
        progress.settle_parse_bad_rows();
    }
    Ok(LoopEnd { failure, stop })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{clients, input, later};
    use super::super::{Outcome, ingest_object};

    #[tokio::test]
    async fn every_row_becomes_a_message_numbered_by_its_row() {
        let (clients, sent) = clients(b"\xEF\xBB\xBFdeviceid,temp\r\n1,20\r\n2,\"2,5\"\r\n");
        let out = ingest_object(&clients, &input(serde_json::json!({})), later())
            .await
            .unwrap();
        assert!(out.done);
        assert_eq!(out.outcome, Outcome::Ingested);
        assert_eq!((out.rows, out.batches), (2, 1));
        let sent = sent.lock().unwrap();
        assert_eq!(sent[0].0, "1");
        assert_eq!(
            sent[0].1,
            serde_json::json!({"deviceid": "1", "temp": "20"})
        );
        assert_eq!(
            sent[1].1,
            serde_json::json!({"deviceid": "2", "temp": "2,5"})
        );
    }

    #[tokio::test]
    async fn batches_hold_at_most_a_hundred_rows_or_the_rate() {
        let mut csv = String::from("n\n");
        for i in 0..250 {
            csv.push_str(&format!("{i}\n"));
        }
        let data: &'static [u8] = Box::leak(csv.into_bytes().into_boxed_slice());
        let (c, sent) = clients(data);
        let out = ingest_object(&c, &input(serde_json::json!({})), later())
            .await
            .unwrap();
        assert_eq!((out.rows, out.batches), (250, 3));
        let (c, _) = clients(data);
        let paced = ingest_object(&c, &input(serde_json::json!({"rate": 1000})), later())
            .await
            .unwrap();
        assert_eq!(paced.batches, 3);
        // Paced from an empty bucket, 70 rows at 30/s take over two seconds.
        let few: String = (1..=70).map(|i| format!("{i}\n")).collect();
        let few: &'static [u8] = Box::leak(format!("n\n{few}").into_bytes().into_boxed_slice());
        let (c, _) = clients(few);
        let small = ingest_object(&c, &input(serde_json::json!({"rate": 30})), later())
            .await
            .unwrap();
        assert_eq!(
            (small.rows, small.batches),
            (70, 3),
            "batches of at most 30"
        );
        let ids: std::collections::HashSet<_> = sent
            .lock()
            .unwrap()
            .iter()
            .map(|(id, _)| id.clone())
            .collect();
        assert_eq!(ids.len(), 250);
    }

    #[tokio::test]
    async fn the_skip_policy_sets_bad_rows_aside_and_names_them() {
        let (c, sent) = clients(b"a,b\n1,2\n3\n\xff,4\n5,6\n7,\"open\n");
        let out = ingest_object(&c, &input(serde_json::json!({"badRows": "skip"})), later())
            .await
            .unwrap();
        assert_eq!((out.rows, out.bad_rows), (2, 3));
        let lines: Vec<u64> = out.bad_row_details.iter().map(|b| b.line).collect();
        assert_eq!(lines, vec![3, 4, 6]);
        assert!(out.bad_row_details[1].reason.contains("UTF-8"));
        assert!(out.bad_row_details[2].reason.contains("never closed"));
        assert_eq!(sent.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn typed_values_become_numbers() {
        let (c, sent) = clients(b"a,b,c\n1,2.5,x\n");
        ingest_object(&c, &input(serde_json::json!({"values": "typed"})), later())
            .await
            .unwrap();
        assert_eq!(
            sent.lock().unwrap()[0].1,
            serde_json::json!({"a": 1, "b": 2.5, "c": "x"})
        );
    }
}
