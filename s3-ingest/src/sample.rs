//! The sample data set: the 2018 article's layout (5 folders × 20 files) with 56,570 rows,
//! generated deterministically so every run and every test sees the same data.

use std::path::{Path, PathBuf};

/// Folders in the data set.
pub const FOLDERS: u32 = 5;
/// Files per folder.
pub const FILES_PER_FOLDER: u32 = 20;
/// Rows over all files.
pub const TOTAL_ROWS: u64 = 56_570;
/// The CSV header.
pub const HEADER: &str = "deviceid,humidity,location,rowid,temp,timestamp";

/// The key of file `part` (1-based) in `folder` (1-based), e.g. `1/example_data_part_2.csv`.
pub fn key(folder: u32, part: u32) -> String {
    format!("{folder}/example_data_part_{part}.csv")
}

/// Row `rowid` as a CSV line (no line end).
///
/// Values follow fixed formulas, so the row with rowid 575 is the one the article shows:
/// deviceid 2, humidity 51, location B, temp 63, timestamp 2018-04-18 19:04:35.
pub fn row(rowid: u64) -> String {
    let deviceid = 1 + rowid % 7;
    let humidity = 30 + (rowid * 21) % 41;
    let location = if rowid % 2 == 1 { "B" } else { "A" };
    let temp = 40 + (rowid * 32) % 47;
    // One reading a second from 2018-04-18 18:55:00.
    let seconds = 18 * 3600 + 55 * 60 + rowid;
    let (day, rest) = (18 + seconds / 86_400, seconds % 86_400);
    let (hour, minute, second) = (rest / 3600, rest % 3600 / 60, rest % 60);
    format!(
        "{deviceid},{humidity},{location},{rowid},{temp},2018-04-{day:02} {hour:02}:{minute:02}:{second:02}"
    )
}

/// Every file of the data set as (key, first rowid, row count), in key order of creation.
pub fn files() -> Vec<(String, u64, u64)> {
    let count = u64::from(FOLDERS * FILES_PER_FOLDER);
    let (base, extra) = (TOTAL_ROWS / count, TOTAL_ROWS % count);
    let mut first = 0;
    let mut out = Vec::with_capacity(count as usize);
    for index in 0..count {
        let rows = base + u64::from(index < extra);
        let folder = 1 + (index / u64::from(FILES_PER_FOLDER)) as u32;
        let part = 1 + (index % u64::from(FILES_PER_FOLDER)) as u32;
        out.push((key(folder, part), first, rows));
        first += rows;
    }
    out
}

/// The bytes of the file whose rows start at `first`: the header and `rows` rows, each line
/// ended by `\n`. The same bytes whether uploaded by `run` or written by `sample`.
pub fn content(first: u64, rows: u64) -> Vec<u8> {
    let mut body = String::with_capacity(rows as usize * 48 + HEADER.len() + 1);
    body.push_str(HEADER);
    body.push('\n');
    for rowid in first..first + rows {
        body.push_str(&row(rowid));
        body.push('\n');
    }
    body.into_bytes()
}

/// Writes the data set under `dir`; returns the files written.
pub fn write(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (key, first, rows) in files() {
        let path = dir.join(&key);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, content(first, rows))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_articles_row_575_is_in_part_2_of_folder_1() {
        assert_eq!(row(575), "2,51,B,575,63,2018-04-18 19:04:35");
        let (key, first, rows) = files()
            .into_iter()
            .find(|(_, first, rows)| (*first..first + rows).contains(&575))
            .unwrap();
        assert_eq!(key, "1/example_data_part_2.csv");
        assert!(first <= 575 && 575 < first + rows);
    }

    #[test]
    fn the_data_set_has_100_files_and_56570_unique_rows() {
        let files = files();
        assert_eq!(files.len(), 100);
        assert_eq!(files.iter().map(|f| f.2).sum::<u64>(), TOTAL_ROWS);
        let last = files.last().unwrap();
        assert_eq!(
            last.1 + last.2,
            TOTAL_ROWS,
            "rowids are 0..56570 without gaps"
        );
        assert_eq!(last.0, "5/example_data_part_20.csv");
    }

    #[test]
    fn the_files_on_disk_hold_every_row_once() {
        let dir = tempfile::tempdir().unwrap();
        let paths = write(dir.path()).unwrap();
        assert_eq!(paths.len(), 100);
        let mut rowids = std::collections::HashSet::new();
        for path in paths {
            let text = std::fs::read_to_string(path).unwrap();
            let mut lines = text.lines();
            assert_eq!(lines.next(), Some(HEADER));
            for line in lines {
                assert!(rowids.insert(line.split(',').nth(3).unwrap().to_owned()));
            }
        }
        assert_eq!(rowids.len() as u64, TOTAL_ROWS);
    }

    #[test]
    fn the_worker_events_name_sample_objects_by_their_real_etag_and_size() {
        // `cargo lambda invoke --data-file events/worker.json worker` against the sample
        // must not fail with ObjectChanged: the events' ETags are the ones S3 gives the objects.
        use md5::Digest as _;
        let single: serde_json::Value =
            serde_json::from_str(include_str!("../../events/worker.json")).unwrap();
        let batch: serde_json::Value =
            serde_json::from_str(include_str!("../../events/worker-batch.json")).unwrap();
        let mut objects = vec![("events/worker.json", &single)];
        for item in batch["Items"].as_array().unwrap() {
            objects.push(("events/worker-batch.json", item));
        }
        for (file, object) in objects {
            let key = object["key"].as_str().unwrap();
            let (_, first, rows) = files().into_iter().find(|(k, _, _)| k == key).unwrap();
            let body = content(first, rows);
            let etag = format!("\"{}\"", hex::encode(md5::Md5::digest(&body)));
            assert_eq!(object["etag"], etag.as_str(), "{file}: {key}'s etag");
            assert_eq!(object["size"], body.len(), "{file}: {key}'s size");
        }
    }
}
