//! The IoT Analytics page: channels, datastores (size, last arrival, and the row counts their
//! datasets' latest contents hold) and datasets with their latest content: its state, its
//! first rows and a link to the CSV.

use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::response::Html;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::html::{self, badge, escape};
use super::{PageResult, Sources};

/// Rows of a content shown on the page.
const PREVIEW_ROWS: usize = 10;
/// Bytes of a content read: its preview, and its counts when it is no longer than this.
const CONTENT_BYTES: u64 = 4 * 1024 * 1024;

/// An IoT Analytics timestamp as text.
fn when(at: Option<&aws_sdk_iotanalytics::primitives::DateTime>) -> String {
    let at = at.map(|t| aws_sdk_sfn::primitives::DateTime::from_millis(t.to_millis().unwrap_or(0)));
    html::time(at.as_ref())
}

/// A dataset's latest content.
struct Content {
    dataset: String,
    sql: String,
    state: String,
    reason: Option<String>,
    timestamp: String,
    uri: Option<String>,
    rows: Option<Vec<Vec<String>>>,
    counts: Vec<(String, String)>,
}

/// The page.
pub(crate) async fn page(State(sources): State<Arc<Sources>>) -> PageResult {
    let client = &sources.iotanalytics;
    let channels = client
        .list_channels()
        .max_results(250)
        .send()
        .await
        .context("ListChannels")?;
    let mut body = String::from(
        "<h2>Channels</h2><table id=\"channels\"><thead><tr><th>Name</th><th>Status</th>\
         <th>Last message</th></tr></thead><tbody>",
    );
    for channel in channels.channel_summaries() {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(channel.channel_name().unwrap_or_default()),
            badge(channel.status().map(|s| s.as_str()).unwrap_or("?")),
            when(channel.last_message_arrival_time()),
        );
    }
    body.push_str("</tbody></table>");

    let datasets = client
        .list_datasets()
        .max_results(250)
        .send()
        .await
        .context("ListDatasets")?;
    let mut contents = Vec::new();
    for dataset in datasets.dataset_summaries() {
        let name = dataset.dataset_name().unwrap_or_default().to_owned();
        contents.push(latest_content(client, name).await);
    }

    let datastores = client
        .list_datastores()
        .max_results(250)
        .send()
        .await
        .context("ListDatastores")?;
    body.push_str(
        "<h2>Datastores</h2><table id=\"datastores\"><thead><tr><th>Name</th><th>Status</th>\
         <th>Size</th><th>Last message</th><th>Rows (latest dataset content)</th></tr></thead><tbody>",
    );
    for datastore in datastores.datastore_summaries() {
        let name = datastore.datastore_name().unwrap_or_default();
        let size = client
            .describe_datastore()
            .datastore_name(name)
            .include_statistics(true)
            .send()
            .await
            .ok()
            .and_then(|d| d.statistics()?.size()?.estimated_size_in_bytes())
            .map_or_else(|| "—".to_owned(), |b| format!("{:.0} bytes", b));
        // The service counts nothing on its own: the counts are what the datasets over this
        // datastore found the last time they ran.
        let mut counts = String::new();
        for content in contents.iter().filter(|c| c.sql.contains(name)) {
            if content.counts.is_empty() {
                continue;
            }
            let _ = write!(
                counts,
                "<div class=\"counts-from\">{}: ",
                escape(&content.dataset)
            );
            for (label, value) in &content.counts {
                let _ = write!(
                    counts,
                    "<span class=\"count\" data-column=\"{l}\">{l} <b>{v}</b></span> ",
                    l = escape(label),
                    v = escape(value)
                );
            }
            counts.push_str("</div>");
        }
        let _ = write!(
            body,
            "<tr data-datastore=\"{n}\"><td>{n}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            badge(datastore.status().map(|s| s.as_str()).unwrap_or("?")),
            escape(&size),
            when(datastore.last_message_arrival_time()),
            if counts.is_empty() {
                "—".to_owned()
            } else {
                counts
            },
            n = escape(name),
        );
    }
    body.push_str("</tbody></table><h2>Datasets</h2>");
    for content in &contents {
        let _ = write!(
            body,
            "<section class=\"dataset\" data-dataset=\"{n}\"><h3>{n}</h3><pre class=\"sql\">{}</pre>\
             <p>Latest content: {} {}{}</p>",
            escape(&content.sql),
            badge(&content.state),
            content.timestamp,
            content
                .reason
                .as_deref()
                .map(|r| format!(" <span class=\"cause\">{}</span>", escape(r)))
                .unwrap_or_default(),
            n = escape(&content.dataset),
        );
        if let Some(uri) = &content.uri {
            let _ = write!(
                body,
                "<p><a class=\"csv\" href=\"{}\">Download the CSV</a></p>",
                escape(uri)
            );
        }
        if let Some(rows) = &content.rows {
            body.push_str("<table class=\"preview\">");
            for (i, row) in rows.iter().enumerate() {
                let cell = if i == 0 { "th" } else { "td" };
                body.push_str("<tr>");
                for value in row {
                    let _ = write!(body, "<{cell}>{}</{cell}>", escape(value));
                }
                body.push_str("</tr>");
            }
            body.push_str("</table>");
        }
        body.push_str("</section>");
    }
    if contents.is_empty() {
        body.push_str("<p class=\"empty\">No datasets.</p>");
    }
    Ok(Html(html::page("IoT Analytics", &body)))
}

/// A dataset's SQL and latest content, with the first rows of its CSV when it succeeded.
async fn latest_content(client: &aws_sdk_iotanalytics::Client, dataset: String) -> Content {
    let sql = client
        .describe_dataset()
        .dataset_name(&dataset)
        .send()
        .await
        .ok()
        .and_then(|d| {
            d.dataset()?
                .actions()
                .iter()
                .find_map(|a| a.query_action().map(|q| q.sql_query().to_owned()))
        })
        .unwrap_or_default();
    let mut content = Content {
        dataset,
        sql,
        state: "NONE".to_owned(),
        reason: None,
        timestamp: String::new(),
        uri: None,
        rows: None,
        counts: Vec::new(),
    };
    let Ok(latest) = client
        .get_dataset_content()
        .dataset_name(&content.dataset)
        .version_id("$LATEST")
        .send()
        .await
    else {
        return content;
    };
    if let Some(status) = latest.status() {
        content.state = status.state().map_or("?", |s| s.as_str()).to_owned();
        content.reason = status.reason().map(str::to_owned);
    }
    content.timestamp = when(latest.timestamp());
    content.uri = latest
        .entries()
        .iter()
        .find_map(|e| e.data_uri().map(str::to_owned));
    if let Some(uri) = &content.uri {
        match fetch_loopback(uri).await {
            Ok(text) => {
                content.rows = Some(preview(&text));
                if text.len() as u64 <= CONTENT_BYTES {
                    content.counts = counts(&text);
                }
            }
            Err(error) => tracing::debug!(%error, "no preview of {uri}"),
        }
    }
    content
}

/// The counts a content holds: each column of a one-row result (`distinct_rowids 56570`), or
/// the sum of each whole-number column of a longer one (`sum of stored over 100 rows 56570`,
/// the row-identity validation's per-object counts).
pub(crate) fn counts(text: &str) -> Vec<(String, String)> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().filter_map(Result::ok).collect();
    let Some((header, data)) = rows.split_first() else {
        return Vec::new();
    };
    if data.len() == 1 {
        return header
            .iter()
            .zip(data[0].iter())
            .map(|(h, v)| (h.to_owned(), v.to_owned()))
            .collect();
    }
    header
        .iter()
        .enumerate()
        .filter_map(|(i, column)| {
            let values: Option<Vec<u64>> = data.iter().map(|r| r.get(i)?.parse().ok()).collect();
            let sum: u64 = values.filter(|v| !v.is_empty())?.iter().sum();
            Some((
                format!("sum of {column} over {} rows", data.len()),
                sum.to_string(),
            ))
        })
        .collect()
}

/// The first rows of a CSV text, the header first.
pub(crate) fn preview(text: &str) -> Vec<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    reader
        .records()
        .take(PREVIEW_ROWS + 1)
        .filter_map(Result::ok)
        .map(|r| r.iter().map(str::to_owned).collect())
        .collect()
}

/// GETs a plain-HTTP loopback URL (the local service's content links) and returns the start of
/// its body. Anything else (an `https` presigned URL, another host) is left to the browser.
async fn fetch_loopback(uri: &str) -> anyhow::Result<String> {
    let rest = uri.strip_prefix("http://").context("not plain HTTP")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    anyhow::ensure!(
        matches!(host, "127.0.0.1" | "localhost" | "[::1]"),
        "not a loopback address"
    );
    let path = if path.is_empty() { "/" } else { path };
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(authority).await?;
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let mut response = Vec::new();
        stream
            .take(CONTENT_BYTES + 1)
            .read_to_end(&mut response)
            .await?;
        anyhow::Ok(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .context("timed out")??;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").context("no HTTP head")?;
    anyhow::ensure!(
        head.starts_with("HTTP/1.1 200"),
        "{}",
        head.lines().next().unwrap_or_default()
    );
    anyhow::ensure!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "chunked body"
    );
    Ok(body.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preview_keeps_the_header_and_the_first_rows() {
        let mut text = String::from("a,\"b,c\"\n");
        for i in 0..20 {
            text.push_str(&format!("{i},x\n"));
        }
        let rows = preview(&text);
        assert_eq!(rows.len(), PREVIEW_ROWS + 1);
        assert_eq!(rows[0], ["a", "b,c"]);
        assert_eq!(rows[1], ["0", "x"]);
    }

    #[test]
    fn a_one_row_result_counts_by_column_and_a_longer_one_sums_its_whole_numbers() {
        assert_eq!(
            counts("locations,distinct_rowids\n2,56570\n"),
            [
                ("locations".to_owned(), "2".to_owned()),
                ("distinct_rowids".to_owned(), "56570".to_owned())
            ]
        );
        assert_eq!(
            counts("source,stored,share\nab12,566,0.5\n99cd,4,0.5\n"),
            [("sum of stored over 2 rows".to_owned(), "570".to_owned())]
        );
        assert!(counts("a\n").is_empty());
    }
}
