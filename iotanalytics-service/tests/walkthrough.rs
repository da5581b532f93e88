//! The 2018 article's command-line walk-through, through the real SDK client, plus the
//! validation queries it ran after ingesting CSV rows.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_article_walk_through_returns_the_two_temperatures() {
    let t = start().await;
    let client = client(&t.service.endpoint_url()).await;
    setup_flow(&client, "bpm_blog").await;

    let out = client
        .batch_put_message()
        .channel_name("bpm_blog_channel")
        .messages(message("1", r#"{"temp": 10}"#))
        .messages(message("2", r#"{"temp": 50}"#))
        .send()
        .await
        .unwrap();
    assert!(out.batch_put_message_error_entries().is_empty());

    let csv = run_sql(
        &client,
        "bpm_blog_dataset",
        "select temp from bpm_blog_datastore",
    )
    .await;
    assert_eq!(csv, "temp\n10\n50\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_articles_validation_queries_work_on_string_values() {
    let t = start().await;
    let client = client(&t.service.endpoint_url()).await;
    setup_flow(&client, "csv").await;

    // Rows as the worker sends them: every value a string. Rows 0..100 are sent twice, as a
    // retried worker would, and the DISTINCT counts must not change.
    let row = |i: usize| {
        format!(
            r#"{{"deviceid": "{}", "humidity": "{}", "location": "{}", "rowid": "{i}", "temp": "{}", "timestamp": "2018-04-18 19:04:35"}}"#,
            i % 7,
            40 + i % 20,
            if i.is_multiple_of(2) { "A" } else { "B" },
            50 + i % 30
        )
    };
    let ids: Vec<usize> = (0..600).chain(0..100).collect();
    for (batch_no, chunk) in ids.chunks(100).enumerate() {
        let mut req = client.batch_put_message().channel_name("csv_channel");
        for (j, i) in chunk.iter().enumerate() {
            req = req.messages(message(format!("{batch_no}-{j}"), &row(*i)));
        }
        let out = req.send().await.unwrap();
        assert!(out.batch_put_message_error_entries().is_empty());
    }

    let counts = run_sql(
        &client,
        "validation",
        "SELECT count(DISTINCT location), count(DISTINCT rowid) FROM csv_datastore",
    )
    .await;
    assert_eq!(counts.lines().nth(1), Some("2,600"), "{counts}");

    let one = run_sql(
        &client,
        "validation2",
        "select * from csv_datastore where rowid='575'",
    )
    .await;
    let lines: Vec<&str> = one.lines().collect();
    assert_eq!(lines[0], "deviceid,humidity,location,rowid,temp,timestamp");
    assert_eq!(
        lines[1..],
        [format!(
            "{},{},B,575,{},2018-04-18 19:04:35",
            575 % 7,
            40 + 575 % 20,
            50 + 575 % 30
        )]
    );
}
