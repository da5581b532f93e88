//! HTML building blocks every console page shares: escaping (object keys, causes and inputs are
//! user data), the page frame, status badges, times, durations and links that carry query
//! parameters.

use std::fmt::Write;

use aws_sdk_sfn::primitives::DateTime;
use aws_sdk_sfn::primitives::DateTimeFormat as Format;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// What a query value keeps as it is: letters, digits and `-_.~` (RFC 3986's unreserved).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// JSON longer than this is cut on the page (a page of history stays light).
const JSON_SHOWN: usize = 16 * 1024;

/// `text` with the five characters that mean something in HTML (in text and in quoted
/// attributes) replaced by their entities.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `value` encoded for a query string.
pub fn query_value(value: &str) -> String {
    utf8_percent_encode(value, QUERY_VALUE).to_string()
}

/// A link (`href` escaped for the attribute) around already escaped `inner_html`.
pub fn link(path: &str, params: &[(&str, &str)], inner_html: &str) -> String {
    format!(
        "<a href=\"{}\">{inner_html}</a>",
        escape(&href(path, params))
    )
}

/// `path?name=value&...`, the values percent-encoded; empty values are left out.
pub fn href(path: &str, params: &[(&str, &str)]) -> String {
    let mut out = path.to_owned();
    let mut first = true;
    for (name, value) in params.iter().filter(|(_, v)| !v.is_empty()) {
        out.push(if first { '?' } else { '&' });
        first = false;
        let _ = write!(out, "{name}={}", query_value(value));
    }
    out
}

/// A status as a coloured badge (the class is the lower-cased status).
pub fn badge(status: &str) -> String {
    let class: String = status
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    format!(
        "<span class=\"badge {class}\" data-status=\"{}\">{}</span>",
        escape(status),
        escape(status)
    )
}

/// A timestamp as UTC text, or `—` when absent.
pub fn time(at: Option<&DateTime>) -> String {
    // Whole milliseconds: the stored instants carry float noise below them.
    at.and_then(|t| t.to_millis().ok())
        .and_then(|ms| DateTime::from_millis(ms).fmt(Format::DateTime).ok())
        .map_or_else(|| "—".to_owned(), |t| escape(&t.replace('T', " ")))
}

/// How long from `start` to `stop` (or to now while running), as `1h 2m 3.4s`.
pub fn duration(start: Option<&DateTime>, stop: Option<&DateTime>) -> String {
    let Some(start) = start else {
        return "—".to_owned();
    };
    let stop = stop
        .copied()
        .unwrap_or_else(|| DateTime::from(std::time::SystemTime::now()));
    let millis = stop.to_millis().unwrap_or(0) - start.to_millis().unwrap_or(0);
    format_millis(millis.max(0) as u64)
}

/// Milliseconds as `1h 2m 3.4s`, `2m 3.4s` or `3.4s`.
pub fn format_millis(millis: u64) -> String {
    let secs = millis / 1000;
    let tenths = (millis % 1000) / 100;
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}.{tenths}s"),
        (0, _) => format!("{m}m {s}.{tenths}s"),
        _ => format!("{h}h {m}m {s}.{tenths}s"),
    }
}

/// JSON text pretty-printed (or as it came when it is not JSON), escaped, in a `<pre>`.
pub fn json_block(text: &str) -> String {
    let pretty = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| text.to_owned());
    if pretty.len() > JSON_SHOWN {
        let mut cut = JSON_SHOWN;
        while !pretty.is_char_boundary(cut) {
            cut -= 1;
        }
        return format!(
            "<pre class=\"json\">{}\n… ({} bytes in all)</pre>",
            escape(&pretty[..cut]),
            pretty.len()
        );
    }
    format!("<pre class=\"json\">{}</pre>", escape(&pretty))
}

/// The navigation bar's sections: (path, label).
const NAV: [(&str, &str); 3] = [
    ("/executions", "Executions"),
    ("/objects", "Objects"),
    ("/iotanalytics", "IoT Analytics"),
];

/// A whole page: `title` (plain text) and `body` (HTML). The script polls `/api/live` and
/// reloads the `<main>` element while a run is going.
pub fn page(title: &str, body: &str) -> String {
    let mut nav = String::new();
    for (path, label) in NAV {
        let _ = write!(nav, "<a href=\"{path}\">{label}</a>");
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · s3-ingest console</title>\
         <link rel=\"stylesheet\" href=\"/static/console.css\"></head>\
         <body><header><span class=\"brand\">s3-ingest console</span><nav>{nav}</nav>\
         <span id=\"live\" class=\"live\"></span></header>\
         <main><h1>{title}</h1>{body}</main>\
         <script src=\"/static/console.js\"></script></body></html>\n",
        title = escape(title),
    )
}

/// A "next page" link when the listing has more, and a "first page" link when this is not
/// the first: S3 and Step Functions tokens only go forwards.
pub fn pager(
    path: &str,
    params: &[(&str, &str)],
    token_name: &str,
    this: Option<&str>,
    next: Option<&str>,
) -> String {
    let mut out = String::from("<div class=\"pager\">");
    if this.is_some() {
        out.push_str(&link(path, params, "« first page"));
    }
    if let Some(next) = next {
        let mut with_token: Vec<(&str, &str)> = params.to_vec();
        with_token.push((token_name, next));
        out.push(' ');
        out.push_str(&link(path, &with_token, "next page »"));
    }
    out.push_str("</div>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_user_data_is_escaped_as_text() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(escape("plain/key_1.csv"), "plain/key_1.csv");
    }

    #[test]
    fn a_link_encodes_its_query_and_escapes_the_attribute() {
        let html = link(
            "/execution",
            &[("arn", "arn:aws:states:x:1:execution:m:a\"b&c")],
            "x",
        );
        assert_eq!(
            html,
            "<a href=\"/execution?arn=arn%3Aaws%3Astates%3Ax%3A1%3Aexecution%3Am%3Aa%22b%26c\">x</a>"
        );
        assert_eq!(
            href("/m", &[("arn", "a-b_c.d~e/f"), ("status", "")]),
            "/m?arn=a-b_c.d~e%2Ff"
        );
    }

    #[test]
    fn json_is_pretty_printed_and_escaped() {
        let html = json_block(r#"{"key":"<b>"}"#);
        assert!(
            html.contains("&quot;key&quot;: &quot;&lt;b&gt;&quot;"),
            "{html}"
        );
        assert_eq!(
            json_block("<not json>"),
            "<pre class=\"json\">&lt;not json&gt;</pre>"
        );
        let long = format!("\"{}\"", "é".repeat(JSON_SHOWN));
        let cut = json_block(&long);
        assert!(cut.len() < JSON_SHOWN + 200, "{}", cut.len());
        assert!(
            cut.ends_with(&format!("… ({} bytes in all)</pre>", long.len())),
            "{cut}"
        );
    }

    #[test]
    fn durations_read_as_hours_minutes_and_seconds() {
        assert_eq!(format_millis(3_400), "3.4s");
        assert_eq!(format_millis(123_400), "2m 3.4s");
        assert_eq!(format_millis(3_723_400), "1h 2m 3.4s");
    }

    #[test]
    fn a_status_badge_escapes_its_text() {
        assert_eq!(
            badge("FAILED<"),
            "<span class=\"badge failed\" data-status=\"FAILED&lt;\">FAILED&lt;</span>"
        );
    }
}
