//! A push-fed CSV row reader that knows each row's byte offset and line, so a worker can
//! stop after any row and resume from there with a ranged GET.

/// What [`RowReader::read`] found in the input it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// All input was consumed without completing a row: give it more (or `&[]` at the end).
    NeedInput,
    /// A row is complete: look at it through [`RowReader::row`].
    Row,
    /// The end of the data was reached (only after being given `&[]`).
    End,
}

/// Where a row sits in its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowPosition {
    /// Physical line (1-based) of the row's first byte.
    pub line: u64,
    /// Byte offset just past the row: where reading resumes for the next one.
    pub end_offset: u64,
    /// Line counter just past the row, to restore on resume.
    pub end_line: u64,
}

/// Streaming CSV reader over `csv-core`, fed chunk by chunk.
///
/// Memory is bounded by the longest row, whatever the object's size. Blank lines are skipped,
/// `\n`, `\r\n` and `\r` all end rows, and quoted fields may hold delimiters, quotes (doubled)
/// and line breaks.
#[derive(Debug)]
pub struct RowReader {
    parser: csv_core::Reader,
    fields: Vec<u8>,
    fields_len: usize,
    ends: Vec<usize>,
    ends_len: usize,
    offset: u64,
    line: u64,
    row_started: bool,
    row_line: u64,
    row_quotes: u64,
    last: Option<RowPosition>,
    last_unterminated: bool,
}

impl RowReader {
    /// A reader positioned at `offset` bytes into the object, at physical line `line`.
    ///
    /// `offset` must be the start of the object or a row boundary reported by an earlier
    /// reader ([`RowPosition::end_offset`]).
    pub fn new(offset: u64, line: u64) -> Self {
        Self {
            parser: csv_core::ReaderBuilder::new().build(),
            fields: vec![0; 4096],
            fields_len: 0,
            ends: vec![0; 64],
            ends_len: 0,
            offset,
            line,
            row_started: false,
            row_line: line,
            row_quotes: 0,
            last: None,
            last_unterminated: false,
        }
    }

    /// Byte offset of the first byte not yet consumed.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Physical line of the first byte not yet consumed.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Feeds `input` (an empty slice means the end of the data) and returns what was found
    /// with how many bytes of `input` were consumed. Unconsumed bytes must be given again.
    pub fn read(&mut self, input: &[u8]) -> (ReadOutcome, usize) {
        let at_end = input.is_empty();
        let mut consumed = 0;
        loop {
            let (result, nin, nout, nend) = self.parser.read_record(
                &input[consumed..],
                &mut self.fields[self.fields_len..],
                &mut self.ends[self.ends_len..],
            );
            self.account(&input[consumed..consumed + nin]);
            consumed += nin;
            self.fields_len += nout;
            self.ends_len += nend;
            match result {
                csv_core::ReadRecordResult::InputEmpty => {
                    return (ReadOutcome::NeedInput, consumed);
                }
                csv_core::ReadRecordResult::OutputFull => {
                    let grown = self.fields.len() * 2;
                    self.fields.resize(grown, 0);
                    if consumed == input.len() && !at_end {
                        return (ReadOutcome::NeedInput, consumed);
                    }
                }
                csv_core::ReadRecordResult::OutputEndsFull => {
                    let grown = self.ends.len() * 2;
                    self.ends.resize(grown, 0);
                    if consumed == input.len() && !at_end {
                        return (ReadOutcome::NeedInput, consumed);
                    }
                }
                csv_core::ReadRecordResult::Record => {
                    self.last = Some(RowPosition {
                        line: self.row_line,
                        end_offset: self.offset,
                        end_line: self.line,
                    });
                    // A row cut short by the end of the data with an odd number of quote
                    // characters was swallowed by a quote that never closed.
                    self.last_unterminated = at_end && self.row_quotes % 2 == 1;
                    self.row_started = false;
                    self.row_quotes = 0;
                    return (ReadOutcome::Row, consumed);
                }
                csv_core::ReadRecordResult::End => return (ReadOutcome::End, consumed),
            }
        }
    }

    /// Tracks lines, the row's first line and its quote count over the bytes just consumed.
    fn account(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        if !self.row_started {
            // Terminators before a row's first byte are blank lines or the `\n` of a `\r\n`.
            let skipped = rest
                .iter()
                .take_while(|&&b| b == b'\n' || b == b'\r')
                .count();
            self.line += count_byte(&rest[..skipped], b'\n');
            rest = &rest[skipped..];
            if !rest.is_empty() {
                self.row_started = true;
                self.row_line = self.line;
            }
        }
        self.line += count_byte(rest, b'\n');
        self.row_quotes += count_byte(rest, b'"');
        self.offset += bytes.len() as u64;
        if !self.row_started {
            self.row_line = self.line;
        }
    }

    /// The row just found: its fields as raw bytes.
    pub fn row(&self) -> Fields<'_> {
        Fields {
            data: &self.fields[..self.fields_len],
            ends: &self.ends[..self.ends_len],
            next: 0,
            start: 0,
        }
    }

    /// Where the row just found sits.
    ///
    /// # Panics
    /// Before the first [`ReadOutcome::Row`].
    pub fn position(&self) -> RowPosition {
        self.last
            .expect("position() is only called after a row was read")
    }

    /// Whether the row just found ended inside a quoted field that never closed.
    pub fn row_is_unterminated(&self) -> bool {
        self.last_unterminated
    }

    /// Clears the row buffers: call once the row just found has been handled.
    pub fn consume_row(&mut self) {
        self.fields_len = 0;
        self.ends_len = 0;
    }
}

fn count_byte(bytes: &[u8], needle: u8) -> u64 {
    bytes.iter().filter(|&&b| b == needle).count() as u64
}

/// The fields of one row, in order.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    data: &'a [u8],
    ends: &'a [usize],
    next: usize,
    start: usize,
}

impl Fields<'_> {
    /// How many fields are left to iterate.
    pub fn remaining(&self) -> usize {
        self.ends.len() - self.next
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<Self::Item> {
        let end = *self.ends.get(self.next)?;
        let field = &self.data[self.start..end];
        self.start = end;
        self.next += 1;
        Some(field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads all rows of `data` fed in chunks of `chunk` bytes.
    fn rows(data: &[u8], chunk: usize) -> Vec<(Vec<String>, RowPosition, bool)> {
        let mut reader = RowReader::new(0, 1);
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            let end = (pos + chunk).min(data.len());
            let (outcome, n) = reader.read(&data[pos..end]);
            pos += n;
            match outcome {
                ReadOutcome::Row => {
                    let fields = reader
                        .row()
                        .map(|f| String::from_utf8_lossy(f).into_owned())
                        .collect();
                    out.push((fields, reader.position(), reader.row_is_unterminated()));
                    reader.consume_row();
                }
                ReadOutcome::NeedInput if pos < data.len() => {}
                ReadOutcome::NeedInput => {
                    let (outcome, _) = reader.read(&[]);
                    if outcome == ReadOutcome::Row {
                        let fields = reader
                            .row()
                            .map(|f| String::from_utf8_lossy(f).into_owned())
                            .collect();
                        out.push((fields, reader.position(), reader.row_is_unterminated()));
                        reader.consume_row();
                        continue;
                    }
                    break;
                }
                ReadOutcome::End => break,
            }
        }
        out
    }

    #[test]
    fn rows_are_the_same_whatever_the_chunk_size() {
        let data = b"a,b\n1,\"x\ny\"\r\n\n3,\"q\"\"z\"\n";
        let whole = rows(data, data.len());
        for chunk in 1..data.len() {
            assert_eq!(rows(data, chunk), whole, "chunk size {chunk}");
        }
        let fields: Vec<_> = whole.iter().map(|r| r.0.clone()).collect();
        assert_eq!(
            fields,
            vec![vec!["a", "b"], vec!["1", "x\ny"], vec!["3", "q\"z"]]
        );
    }

    #[test]
    fn rows_report_their_first_line_across_quoted_newlines_and_blank_lines() {
        let data = b"h1,h2\n1,\"multi\nline\"\n\n\n2,two\r\n3,three";
        let lines: Vec<u64> = rows(data, 5).iter().map(|r| r.1.line).collect();
        assert_eq!(lines, vec![1, 2, 6, 7]);
    }

    #[test]
    fn a_reader_started_at_a_row_boundary_continues_identically() {
        let data = b"h\r\n1\r\n2\r\n\r\n3\r\n4";
        let all = rows(data, 3);
        let cut = all[2].1;
        let mut reader = RowReader::new(cut.end_offset, cut.end_line);
        let rest = &data[cut.end_offset as usize..];
        let mut resumed = Vec::new();
        let mut pos = 0;
        loop {
            let (outcome, n) = reader.read(&rest[pos..]);
            pos += n;
            match outcome {
                ReadOutcome::Row => {
                    resumed.push(reader.position());
                    reader.consume_row();
                }
                ReadOutcome::NeedInput if pos < rest.len() => {}
                ReadOutcome::NeedInput => {
                    if reader.read(&[]).0 == ReadOutcome::Row {
                        resumed.push(reader.position());
                        reader.consume_row();
                    }
                    break;
                }
                ReadOutcome::End => break,
            }
        }
        let expected: Vec<RowPosition> = all[3..].iter().map(|r| r.1).collect();
        assert_eq!(resumed, expected);
    }

    #[test]
    fn an_unterminated_quote_is_detected_at_the_end() {
        let found = rows(b"a,b\n1,\"open\n2,3\n", 4);
        assert_eq!(found.len(), 2);
        assert!(found[1].2, "the swallowed row is flagged");
        assert_eq!(found[1].1.line, 2);
        let fine = rows(b"a,b\n1,\"closed\"", 4);
        assert!(!fine[1].2);
    }

    #[test]
    fn long_rows_grow_the_buffers() {
        let long = "x".repeat(10_000);
        let data = format!("a,{}\n{long},{}\n", "b,".repeat(99) + "c", "1,".repeat(100));
        let found = rows(data.as_bytes(), 333);
        assert_eq!(found[1].0[0].len(), 10_000);
        assert_eq!(found[0].0.len(), 101);
    }
}
