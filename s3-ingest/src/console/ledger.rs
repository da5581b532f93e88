//! The objects page: the ledger's record of each source object (state, rows, bad rows, run)
//! and the reports of what was set aside, by key and line. Both are read a page at a time with
//! ListObjectsV2 continuation tokens, so the page stays quick at any number of objects.

use std::fmt::Write;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::{Query, State};
use axum::response::Html;
use ingest::ledger::records::RangeRecord;
use ingest::ledger::{EntryState, LedgerEntry, ObjectReport};
use serde::de::DeserializeOwned;

use super::html::{self, badge, escape};
use super::{PageResult, Sources};

/// Ledger entries per page, at least: whole records are shown, each holding the entries of a
/// range of keys (a batch's, or so).
const OBJECTS_PAGE: usize = 50;
/// Records listed at once while a page is filled.
const RECORDS_LISTED: i32 = 10;
/// Report parts per page.
const REPORTS_PAGE: i32 = 10;
/// Bad rows shown per report part.
const ROWS_SHOWN: usize = 20;

/// The page's query: `?next=TOKEN&reports=TOKEN`.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct ObjectsQuery {
    #[serde(default)]
    next: String,
    #[serde(default)]
    reports: String,
}

/// One page of ledger objects under `prefix`, each read and parsed, and the next token.
async fn read_page<T: DeserializeOwned>(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    token: &str,
    limit: i32,
) -> anyhow::Result<(Vec<(String, anyhow::Result<T>)>, Option<String>)> {
    let mut request = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .max_keys(limit);
    if !token.is_empty() {
        request = request.continuation_token(token);
    }
    let listed = request
        .send()
        .await
        .with_context(|| format!("ListObjectsV2 s3://{bucket}/{prefix}"))?;
    let keys: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect();
    let bodies =
        futures::future::join_all(keys.iter().map(|key| read_json::<T>(s3, bucket, key))).await;
    let next = if listed.is_truncated() == Some(true) {
        listed.next_continuation_token().map(str::to_owned)
    } else {
        None
    };
    Ok((keys.into_iter().zip(bodies).collect(), next))
}

/// Entries of the ledger records under `folder`, whole records in key order after the record
/// named `after` (the start when empty) until at least [`OBJECTS_PAGE`] entries, each named by
/// its record; and the record the next page starts after.
async fn entries_page(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    folder: &str,
    after: &str,
) -> anyhow::Result<(Vec<(String, anyhow::Result<LedgerEntry>)>, Option<String>)> {
    let mut entries = Vec::new();
    let mut after = after.to_owned();
    loop {
        let mut request = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(folder)
            .max_keys(RECORDS_LISTED);
        if !after.is_empty() {
            request = request.start_after(&after);
        }
        let listed = request
            .send()
            .await
            .with_context(|| format!("ListObjectsV2 s3://{bucket}/{folder}"))?;
        let names: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
        let more_listed = listed.is_truncated() == Some(true);
        for (at, name) in names.iter().enumerate() {
            match read_json::<RangeRecord>(s3, bucket, name).await {
                Ok(record) => entries.extend(
                    record
                        .entries
                        .into_iter()
                        .map(|entry| ((*name).to_owned(), Ok(entry))),
                ),
                Err(error) => entries.push(((*name).to_owned(), Err(error))),
            }
            if entries.len() >= OBJECTS_PAGE {
                let more = more_listed || at + 1 < names.len();
                return Ok((entries, more.then(|| (*name).to_owned())));
            }
        }
        match names.last() {
            Some(last) if more_listed => after = (*last).to_owned(),
            _ => return Ok((entries, None)),
        }
    }
}

/// The JSON document at `key`.
async fn read_json<T: DeserializeOwned>(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> anyhow::Result<T> {
    let object = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .context("GetObject")?;
    let bytes = object
        .body
        .collect()
        .await
        .context("reading the object")?
        .into_bytes();
    serde_json::from_slice::<T>(&bytes).context("parsing the object")
}

fn state_name(state: EntryState) -> &'static str {
    match state {
        EntryState::InProgress => "IN_PROGRESS",
        EntryState::Ingested => "INGESTED",
        EntryState::SetAside => "SET_ASIDE",
    }
}

/// The objects and the reports.
pub(crate) async fn objects(
    State(sources): State<Arc<Sources>>,
    Query(query): Query<ObjectsQuery>,
) -> PageResult {
    let ledger = &sources.ledger;
    let (entries, next) = entries_page(
        &sources.s3,
        &ledger.bucket,
        &format!("{}records/", ledger.prefix),
        &query.next,
    )
    .await?;
    let mut body = format!(
        "<p>The ledger in <code>s3://{}/{}</code>: set-aside reports first, then every object.</p>",
        escape(&ledger.bucket),
        escape(&ledger.prefix)
    );
    let (reports, reports_next) = read_page::<ObjectReport>(
        &sources.s3,
        &ledger.bucket,
        &format!("{}reports/", ledger.prefix),
        &query.reports,
        REPORTS_PAGE,
    )
    .await?;
    body.push_str(
        "<h2>Set aside (reports, by key and line)</h2><table id=\"reports\"><thead><tr><th>Object</th><th>Line</th><th>Row</th>\
         <th>Why</th></tr></thead><tbody>",
    );
    for (report_key, report) in &reports {
        let Ok(report) = report else {
            let _ = write!(
                body,
                "<tr><td colspan=\"4\" class=\"error\">unreadable report {}</td></tr>",
                escape(report_key)
            );
            continue;
        };
        let object = format!("s3://{}/{}", report.bucket, report.key);
        let lines = report
            .stopped_at
            .iter()
            .map(|s| (s, "object stopped: "))
            .chain(report.bad_rows.iter().take(ROWS_SHOWN).map(|r| (r, "")));
        for (row, prefix) in lines {
            let _ = write!(
                body,
                "<tr><td class=\"key\">{}</td><td>{}</td><td>{}</td><td class=\"cause\">{}{}</td></tr>",
                escape(&object),
                row.line,
                row.row,
                prefix,
                escape(&row.reason)
            );
        }
        if report.bad_rows.len() > ROWS_SHOWN {
            let _ = write!(
                body,
                "<tr><td class=\"key\">{}</td><td colspan=\"3\">… and {} more rows in <code>{}</code></td></tr>",
                escape(&object),
                report.bad_rows.len() - ROWS_SHOWN,
                escape(report_key)
            );
        }
    }
    if reports.is_empty() {
        body.push_str("<tr><td colspan=\"4\" class=\"empty\">Nothing set aside.</td></tr>");
    }
    body.push_str("</tbody></table>");
    body.push_str(&html::pager(
        "/objects",
        &[("next", &query.next)],
        "reports",
        (!query.reports.is_empty()).then_some(query.reports.as_str()),
        reports_next.as_deref(),
    ));
    let _ = write!(body, "<h2>Objects (the ledger, {OBJECTS_PAGE} a page)</h2>");
    body.push_str(
        "<table id=\"objects\"><thead><tr><th>Object</th><th>State</th><th>Rows</th><th>Bad rows</th>\
         <th>Re-sends</th><th>Run</th><th>Updated</th><th>Reason</th></tr></thead><tbody>",
    );
    for (ledger_key, entry) in &entries {
        match entry {
            Ok(e) => {
                let updated = aws_sdk_sfn::primitives::DateTime::from_millis(e.updated_ms as i64);
                let _ = write!(
                    body,
                    "<tr><td class=\"key\">s3://{}/{}</td><td>{}</td><td data-rows>{}</td><td>{}</td><td>{}</td>\
                     <td>{}</td><td>{}</td><td class=\"cause\">{}</td></tr>",
                    escape(&e.bucket),
                    escape(&e.key),
                    badge(state_name(e.state)),
                    e.rows,
                    e.bad_rows,
                    e.retries,
                    escape(&e.run_id),
                    html::time(Some(&updated)),
                    escape(e.reason.as_deref().unwrap_or("")),
                );
            }
            Err(error) => {
                let _ = write!(
                    body,
                    "<tr><td class=\"key\">{}</td><td colspan=\"7\" class=\"error\">{}</td></tr>",
                    escape(ledger_key),
                    escape(&format!("{error:#}"))
                );
            }
        }
    }
    if entries.is_empty() {
        body.push_str("<tr><td colspan=\"8\" class=\"empty\">The ledger is empty.</td></tr>");
    }
    body.push_str("</tbody></table>");
    body.push_str(&html::pager(
        "/objects",
        &[("reports", &query.reports)],
        "next",
        (!query.next.is_empty()).then_some(query.next.as_str()),
        next.as_deref(),
    ));

    Ok(Html(html::page("Objects", &body)))
}
