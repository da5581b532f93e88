//! Turns CSV bytes into BatchPutMessage batches: one row, one message, at most 100 a batch.
//!
//! Synchronous and push-fed, so the worker can drive it from a network stream and the
//! benchmark from memory; it holds at most one row and one batch, whatever the object's size.

use aws_sdk_iotanalytics::primitives::Blob;
use aws_sdk_iotanalytics::types::Message;
use bytes::BytesMut;

use crate::payload::{MAX_PAYLOAD_BYTES, PayloadEncoder, RowProblem, ValueMode, validate_header};
use crate::rows::{ReadOutcome, RowReader};

/// Messages per BatchPutMessage request, the service's fixed maximum.
pub const MAX_BATCH_MESSAGES: usize = 100;

/// Bytes of payload buffer allocated at a time: a batch of typical rows fits in one.
const ARENA_BYTES: usize = 32 * 1024;

/// The UTF-8 byte-order mark some tools write before the header.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A batch ready to send, with where its rows came from.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The messages; `messageId` is the row number.
    pub messages: Vec<Message>,
    /// Source line of each message, in the same order.
    pub lines: Vec<u64>,
    /// Data row number of the first message.
    pub first_row: u64,
    /// Data row number of the last message.
    pub last_row: u64,
    /// Where reading resumes after this batch's last row.
    pub resume: ResumePoint,
}

/// A row boundary to resume reading from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumePoint {
    /// Byte offset in the object.
    pub byte_offset: u64,
    /// Physical line at that offset.
    pub line: u64,
    /// Data row number the next row gets.
    pub next_row: u64,
}

/// A row that could not become a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// Physical line where the row starts.
    pub line: u64,
    /// Its data row number.
    pub row: u64,
    /// Why.
    pub problem: RowProblem,
    /// Where reading resumes after it.
    pub resume: ResumePoint,
}

/// What the batcher produced from the input it was given.
#[derive(Debug)]
pub enum Produced {
    /// More input is needed (or `&[]` at the end).
    NeedInput,
    /// The header row was read and accepted.
    Header,
    /// A full batch.
    Batch(Batch),
    /// A row that cannot be sent.
    BadRow(BadRow),
    /// The data ended; take the last partial batch with [`Batcher::finish`].
    End,
}

/// Why the header row was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderProblem(pub String);

/// CSV to batches.
#[derive(Debug)]
pub struct Batcher {
    reader: RowReader,
    encoder: Option<PayloadEncoder>,
    header: Vec<String>,
    mode: ValueMode,
    batch_limit: usize,
    next_row: u64,
    pending: Vec<Message>,
    pending_lines: Vec<u64>,
    payload: Vec<u8>,
    /// Where finished payloads are copied: each message's payload is a slice of one shared
    /// buffer, so a message costs no allocation of its own and its clone for a re-send only
    /// counts a reference.
    arena: BytesMut,
    bom_checked: bool,
    boundary_line: u64,
    /// Where the pending batch ends: just past its last row, before any bad row after it.
    pending_end: ResumePoint,
    /// Data row number of the pending batch's first row.
    pending_first_row: u64,
    /// `,"_src":"<source id>","_row":`, appended to every payload when rows carry their
    /// identity (see [`Batcher::with_row_identity`]).
    identity: Option<Vec<u8>>,
}

/// Attribute naming the source object of a row (see [`crate::completeness::source_id`]).
pub const SOURCE_ATTRIBUTE: &str = "_src";

/// Attribute holding a row's number within its object (its `messageId`).
pub const ROW_ATTRIBUTE: &str = "_row";

impl Batcher {
    /// A batcher at the start of an object: its first row is the header.
    pub fn at_start(mode: ValueMode, batch_limit: usize) -> Self {
        Self::new(RowReader::new(0, 1), None, Vec::new(), mode, batch_limit, 1)
    }

    /// A batcher resuming at a row boundary with a header read earlier.
    pub fn resume(
        header: Vec<String>,
        at: ResumePoint,
        mode: ValueMode,
        batch_limit: usize,
    ) -> Result<Self, HeaderProblem> {
        validate_header(&header).map_err(HeaderProblem)?;
        let encoder = PayloadEncoder::new(&header, mode);
        let mut batcher = Self::new(
            RowReader::new(at.byte_offset, at.line),
            Some(encoder),
            header,
            mode,
            batch_limit,
            at.next_row,
        );
        batcher.bom_checked = true;
        Ok(batcher)
    }

    fn new(
        reader: RowReader,
        encoder: Option<PayloadEncoder>,
        header: Vec<String>,
        mode: ValueMode,
        batch_limit: usize,
        next_row: u64,
    ) -> Self {
        let batch_limit = batch_limit.clamp(1, MAX_BATCH_MESSAGES);
        let boundary_line = reader.line();
        Self {
            reader,
            encoder,
            header,
            mode,
            batch_limit,
            next_row,
            pending: Vec::with_capacity(batch_limit),
            pending_lines: Vec::with_capacity(batch_limit),
            payload: Vec::with_capacity(256),
            arena: BytesMut::new(),
            bom_checked: false,
            boundary_line,
            pending_end: ResumePoint {
                byte_offset: 0,
                line: boundary_line,
                next_row,
            },
            pending_first_row: next_row,
            identity: None,
        }
    }

    /// Every payload also carries the row's identity: [`SOURCE_ATTRIBUTE`] = `source_id`
    /// and [`ROW_ATTRIBUTE`] = the row number, so a dataset query can count each object's
    /// distinct rows. A header that already has either name is refused.
    pub fn with_row_identity(mut self, source_id: &str) -> Result<Self, HeaderProblem> {
        check_identity_names(&self.header)?;
        let mut identity = Vec::with_capacity(source_id.len() + 20);
        identity.extend_from_slice(b",\"");
        identity.extend_from_slice(SOURCE_ATTRIBUTE.as_bytes());
        identity.extend_from_slice(b"\":\"");
        identity.extend_from_slice(source_id.as_bytes());
        identity.extend_from_slice(b"\",\"");
        identity.extend_from_slice(ROW_ATTRIBUTE.as_bytes());
        identity.extend_from_slice(b"\":");
        self.identity = Some(identity);
        Ok(self)
    }

    /// The header, once read.
    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// Whether the header has been read.
    pub fn has_header(&self) -> bool {
        self.encoder.is_some()
    }

    /// Byte offset of the first byte not yet consumed.
    pub fn offset(&self) -> u64 {
        self.reader.offset()
    }

    /// The boundary after the last row read: everything before it is in a batch already
    /// returned, in the pending batch, or reported as bad.
    pub fn resume_point(&self) -> ResumePoint {
        ResumePoint {
            byte_offset: self.reader.offset(),
            line: self.boundary_line,
            next_row: self.next_row,
        }
    }

    /// Consumes `input` until something is produced; returns it and the bytes consumed.
    /// Call again with the unconsumed rest; when it is used up, `NeedInput` asks for more.
    ///
    /// At the start of an object a byte-order mark is skipped; give at least 3 bytes (or the
    /// whole object, if shorter) in the first call so it can be recognised.
    pub fn push(&mut self, input: &[u8]) -> Result<(Produced, usize), HeaderProblem> {
        if input.is_empty() {
            return Ok((Produced::NeedInput, 0));
        }
        self.feed(input)
    }

    /// Tells the batcher the data is over; call until it returns [`Produced::End`], then take
    /// the last partial batch with [`Batcher::take_batch`].
    pub fn finish(&mut self) -> Result<Produced, HeaderProblem> {
        self.feed(&[]).map(|(produced, _)| produced)
    }

    /// The reader takes an empty slice as the end of the data, so only `finish` passes one.
    fn feed(&mut self, input: &[u8]) -> Result<(Produced, usize), HeaderProblem> {
        let mut skipped = 0;
        if !self.bom_checked {
            self.bom_checked = true;
            if input.starts_with(BOM) {
                skipped = BOM.len();
                self.reader = RowReader::new(BOM.len() as u64, 1);
            }
        }
        let mut used = skipped;
        loop {
            if used == input.len() && !input.is_empty() {
                return Ok((Produced::NeedInput, used));
            }
            let (outcome, n) = self.reader.read(&input[used..]);
            used += n;
            match outcome {
                ReadOutcome::NeedInput => return Ok((Produced::NeedInput, used)),
                ReadOutcome::End => return Ok((Produced::End, used)),
                ReadOutcome::Row => {
                    let position = self.reader.position();
                    self.boundary_line = position.end_line;
                    let produced = self.take_row(position.line)?;
                    self.reader.consume_row();
                    if let Some(produced) = produced {
                        return Ok((produced, used));
                    }
                }
            }
        }
    }

    /// Handles the row the reader just found; `None` when it only joined the pending batch.
    fn take_row(&mut self, line: u64) -> Result<Option<Produced>, HeaderProblem> {
        let Some(encoder) = &self.encoder else {
            return self.take_header().map(|()| Some(Produced::Header));
        };
        let row = self.next_row;
        self.next_row += 1;
        let encoded = if self.reader.row_is_unterminated() {
            Err(RowProblem::UnterminatedQuote)
        } else {
            let fields = self.reader.row();
            encoder.encode(ExactFields(fields), &mut self.payload)
        };
        let mut row_text = itoa::Buffer::new();
        let row_text = row_text.format(row);
        let encoded = encoded.and_then(|()| match &self.identity {
            Some(identity) => append_identity(&mut self.payload, identity, row_text),
            None => Ok(()),
        });
        if let Err(problem) = encoded {
            return Ok(Some(Produced::BadRow(BadRow {
                line,
                row,
                problem,
                resume: self.resume_point(),
            })));
        }
        if self.arena.capacity() < self.payload.len() {
            self.arena.reserve(ARENA_BYTES.max(self.payload.len()));
        }
        self.arena.extend_from_slice(&self.payload);
        let message = Message::builder()
            .message_id(row_text)
            .payload(Blob::from_maybe_shared(self.arena.split().freeze()))
            .build()
            .expect("message id and payload are always set");
        if self.pending.is_empty() {
            self.pending_first_row = row;
        }
        self.pending.push(message);
        self.pending_lines.push(line);
        self.pending_end = self.resume_point();
        if self.pending.len() >= self.batch_limit {
            Ok(self.take_batch().map(Produced::Batch))
        } else {
            Ok(None)
        }
    }

    fn take_header(&mut self) -> Result<(), HeaderProblem> {
        if self.reader.row_is_unterminated() {
            return Err(HeaderProblem("a quoted name is never closed".to_owned()));
        }
        let mut names = Vec::with_capacity(self.reader.row().remaining());
        for (index, field) in self.reader.row().enumerate() {
            let name = std::str::from_utf8(field).map_err(|_| {
                HeaderProblem(format!("column {} name is not valid UTF-8", index + 1))
            })?;
            names.push(name.to_owned());
        }
        validate_header(&names).map_err(HeaderProblem)?;
        if self.identity.is_some() {
            check_identity_names(&names)?;
        }
        self.encoder = Some(PayloadEncoder::new(&names, self.mode));
        self.header = names;
        Ok(())
    }

    /// Takes the pending rows as a batch, if there are any.
    pub fn take_batch(&mut self) -> Option<Batch> {
        if self.pending.is_empty() {
            return None;
        }
        let messages = std::mem::replace(&mut self.pending, Vec::with_capacity(self.batch_limit));
        let lines = std::mem::replace(
            &mut self.pending_lines,
            Vec::with_capacity(self.batch_limit),
        );
        // Rows set aside after the batch's last row are not part of it: resuming from here
        // reads them again, which is what a stop at a bad row needs.
        Some(Batch {
            messages,
            lines,
            first_row: self.pending_first_row,
            last_row: self.pending_end.next_row - 1,
            resume: self.pending_end,
        })
    }
}

/// Refuses a header with a column named as an identity attribute (names compare as the
/// service compares them, ignoring case).
fn check_identity_names(header: &[String]) -> Result<(), HeaderProblem> {
    match header.iter().find(|name| {
        name.eq_ignore_ascii_case(SOURCE_ATTRIBUTE) || name.eq_ignore_ascii_case(ROW_ATTRIBUTE)
    }) {
        Some(name) => Err(HeaderProblem(format!(
            "column {name} is reserved for the row identity (run with rowIdentity false to ingest it)"
        ))),
        None => Ok(()),
    }
}

/// Turns `{...}` into `{...,"_src":"..","_row":N}`.
fn append_identity(payload: &mut Vec<u8>, identity: &[u8], row: &str) -> Result<(), RowProblem> {
    payload.pop();
    payload.extend_from_slice(identity);
    payload.extend_from_slice(row.as_bytes());
    payload.push(b'}');
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(RowProblem::TooLarge {
            bytes: payload.len(),
        });
    }
    Ok(())
}

/// Adapts [`crate::rows::Fields`] to an exact-size iterator.
struct ExactFields<'a>(crate::rows::Fields<'a>);

impl<'a> Iterator for ExactFields<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next()
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let remaining = self.0.remaining();
        (remaining, Some(remaining))
    }
}

impl ExactSizeIterator for ExactFields<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_taken_after_a_bad_row_ends_before_it() {
        let data = b"a,b\n1,2\n3,4\n5\n7,8\n";
        let mut batcher = Batcher::at_start(ValueMode::Strings, 100);
        let mut used = 0;
        let bad = loop {
            let (produced, n) = batcher.push(&data[used..]).unwrap();
            used += n;
            if let Produced::BadRow(bad) = produced {
                break bad;
            }
        };
        assert_eq!((bad.line, bad.row), (4, 3));
        let batch = batcher.take_batch().unwrap();
        assert_eq!((batch.first_row, batch.last_row), (1, 2));
        // Resuming from the batch's end reads the bad row again, on its own line.
        assert_eq!(
            batch.resume,
            ResumePoint {
                byte_offset: 12,
                line: 4,
                next_row: 3
            }
        );
        assert_eq!(&data[12..14], b"5\n");
    }

    /// Feeds `data` in chunks of `chunk` bytes; returns (rows batched, bad rows, batches).
    fn run(data: &[u8], chunk: usize, limit: usize) -> (Vec<u64>, Vec<BadRow>, usize) {
        let mut batcher = Batcher::at_start(ValueMode::Strings, limit);
        let mut ids = Vec::new();
        let mut bad = Vec::new();
        let mut batches = 0;
        let take = |batch: Batch, ids: &mut Vec<u64>| {
            assert!(batch.messages.len() <= limit);
            ids.extend(
                batch
                    .messages
                    .iter()
                    .map(|m| m.message_id().parse::<u64>().unwrap()),
            );
        };
        let mut handle = |produced: Produced, ids: &mut Vec<u64>| match produced {
            Produced::Batch(batch) => {
                batches += 1;
                take(batch, ids);
                true
            }
            Produced::BadRow(row) => {
                bad.push(row);
                true
            }
            Produced::Header => true,
            Produced::NeedInput => false,
            Produced::End => panic!("the data ended before it was finished"),
        };
        for piece in data.chunks(chunk) {
            let mut pos = 0;
            loop {
                let (produced, used) = batcher.push(&piece[pos..]).unwrap();
                pos += used;
                if !handle(produced, &mut ids) {
                    break;
                }
            }
        }
        loop {
            match batcher.finish().unwrap() {
                Produced::End => break,
                other => {
                    handle(other, &mut ids);
                }
            }
        }
        if let Some(batch) = batcher.take_batch() {
            batches += 1;
            take(batch, &mut ids);
        }
        (ids, bad, batches)
    }

    fn csv(rows: u64) -> Vec<u8> {
        let mut data = b"deviceid,humidity,location,rowid\n".to_vec();
        for i in 0..rows {
            data.extend_from_slice(format!("{},{},A,{i}\n", i % 7, 30 + i % 41).as_bytes());
        }
        data
    }

    #[test]
    fn every_row_is_batched_once_whatever_the_chunking() {
        let data = csv(566);
        for chunk in [1, 7, 100, 4096, 8192, data.len()] {
            let (ids, bad, batches) = run(&data, chunk, MAX_BATCH_MESSAGES);
            assert_eq!(ids, (1..=566).collect::<Vec<_>>(), "chunk {chunk}");
            assert!(bad.is_empty());
            assert_eq!(batches, 6, "chunk {chunk}");
        }
    }

    #[test]
    fn a_smaller_batch_limit_is_respected() {
        let (ids, _, batches) = run(&csv(250), 64, 30);
        assert_eq!(ids.len(), 250);
        assert_eq!(batches, 9);
    }

    #[test]
    fn a_batch_resumes_where_its_last_row_ended() {
        let data = csv(150);
        let mut batcher = Batcher::at_start(ValueMode::Strings, 100);
        let mut pos = 0;
        let first = loop {
            let (produced, used) = batcher.push(&data[pos..]).unwrap();
            pos += used;
            if let Produced::Batch(batch) = produced {
                break batch;
            }
        };
        let at = first.resume;
        assert_eq!(at.next_row, 101);
        assert_eq!(at.line, 102);
        assert!(data[..at.byte_offset as usize].ends_with(b",A,99\n"));
    }

    #[test]
    fn each_payload_keeps_its_own_row_when_the_shared_buffer_is_refilled() {
        // Rows of about 2 KB: a batch of 100 spans several of the batcher's buffers.
        let mut data = b"id,text\n".to_vec();
        for i in 0..250u64 {
            let text = format!("{i}-").repeat(2_000 / (i.to_string().len() + 1));
            data.extend_from_slice(format!("{i},{text}\n").as_bytes());
        }
        let mut batcher = Batcher::at_start(ValueMode::Strings, 100)
            .with_row_identity("0123456789abcdef")
            .unwrap();
        let mut messages = Vec::new();
        let mut pos = 0;
        loop {
            let (produced, used) = batcher.push(&data[pos..]).unwrap();
            pos += used;
            match produced {
                Produced::Batch(batch) => messages.extend(batch.messages),
                Produced::NeedInput => break,
                Produced::Header => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(matches!(batcher.finish().unwrap(), Produced::End));
        messages.extend(batcher.take_batch().unwrap().messages);
        assert_eq!(messages.len(), 250);
        for (i, message) in messages.iter().enumerate() {
            let row = i as u64 + 1;
            let payload: serde_json::Value =
                serde_json::from_slice(message.payload().as_ref()).unwrap();
            let text = format!("{i}-").repeat(2_000 / (i.to_string().len() + 1));
            assert_eq!(
                payload,
                serde_json::json!({"id": i.to_string(), "text": text, "_src": "0123456789abcdef", "_row": row}),
                "row {row}"
            );
            assert_eq!(message.message_id(), row.to_string());
        }
    }
}
