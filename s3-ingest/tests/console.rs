//! The web console in a real browser: headless Chromium loads every page over real runs of
//! the real `s3-ingest` binary (`run --console`, then `serve`), the test checks what the pages
//! show against the run's JSON summary and the Step Functions, S3 and IoT Analytics APIs, and
//! saves a screenshot of each page under the target directory.
//!
//! Needs Debian's `chromium` (`apt-get install -y chromium`); `CHROMIUM` names another binary.
//! `S3_INGEST_SKIP_BROWSER_TESTS=1` skips the test (it fails without a browser otherwise).

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use aws_sdk_sfn::types::ExecutionStatus;
use serde_json::{Value, json};

/// The browser, or `None` when browser tests are skipped on purpose.
fn chromium() -> Option<PathBuf> {
    if std::env::var("S3_INGEST_SKIP_BROWSER_TESTS").as_deref() == Ok("1") {
        eprintln!("S3_INGEST_SKIP_BROWSER_TESTS=1: the console's browser test is skipped");
        return None;
    }
    let candidates = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .into_iter()
        .chain(["/usr/bin/chromium", "/usr/bin/chromium-browser"].map(PathBuf::from));
    let found = candidates.into_iter().find(|p| p.exists());
    assert!(
        found.is_some(),
        "the console's browser test needs headless Chromium: install it with \
         `apt-get install -y chromium` (or set CHROMIUM=/path/to/chromium), or set \
         S3_INGEST_SKIP_BROWSER_TESTS=1 to skip this test"
    );
    found
}

struct Browser {
    binary: PathBuf,
    shots: PathBuf,
}

impl Browser {
    fn args(&self) -> Command {
        let mut command = Command::new(&self.binary);
        command.args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-extensions",
        ]);
        command.stderr(Stdio::null());
        command
    }

    /// Runs the browser with `args`, once more if it fails (a headless browser on a loaded
    /// machine sometimes exits early); its output.
    fn run(&self, args: &[String]) -> std::process::Output {
        let mut output = self.args().args(args).output().unwrap();
        if !output.status.success() {
            output = self.args().args(args).output().unwrap();
        }
        assert!(output.status.success(), "chromium {args:?}: {output:?}");
        output
    }

    /// The page's DOM after its script has run (two seconds of virtual time).
    fn dom(&self, url: &str) -> String {
        let output = self.run(&[
            "--virtual-time-budget=2000".to_owned(),
            "--dump-dom".to_owned(),
            url.to_owned(),
        ]);
        let dom = String::from_utf8(output.stdout).unwrap();
        assert!(
            dom.contains("s3-ingest console"),
            "not a console page: {url}\n{dom}"
        );
        dom
    }

    /// A 1280-pixel-wide screenshot of the page, saved as `name.png`; its path is printed.
    #[allow(
        clippy::print_stdout,
        reason = "the screenshots' paths are for the person running the test"
    )]
    fn screenshot(&self, url: &str, name: &str, height: u32) -> PathBuf {
        let path = self.shots.join(format!("{name}.png"));
        self.run(&[
            format!("--window-size=1280,{height}"),
            format!("--screenshot={}", path.display()),
            url.to_owned(),
        ]);
        assert!(
            std::fs::metadata(&path).unwrap().len() > 1000,
            "{}",
            path.display()
        );
        println!("screenshot: {}", path.display());
        path
    }
}

/// Text as a browser serialises it in a DOM dump.
fn text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Every line the stream prints, as it comes.
fn lines(stream: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    receive
}

/// Waits for the first line `pick` accepts, returning what it made of it.
fn wait_for<T>(
    lines: &mpsc::Receiver<String>,
    what: &str,
    mut pick: impl FnMut(&str) -> Option<T>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("no {what} line: {e}"));
        if let Some(found) = pick(&line) {
            return found;
        }
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([name, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The links of a page to `path?...`, as the browser serialised them (decoded `&amp;`).
fn links_to(dom: &str, path: &str) -> Vec<String> {
    let needle = format!("href=\"{path}?");
    dom.match_indices(&needle)
        .map(|(at, _)| {
            let start = at + "href=\"".len();
            let end = start + dom[start..].find('"').unwrap();
            dom[start..end].replace("&amp;", "&")
        })
        .collect()
}

fn count(dom: &str, needle: &str) -> usize {
    dom.matches(needle).count()
}

#[test]
fn the_console_shows_runs_objects_and_iotanalytics_as_the_apis_do() {
    let Some(binary) = chromium() else {
        return;
    };
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let browser = Browser { binary, shots };
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");

    // 1. The sample run with --console: the console serves during the run and after it.
    let mut run = Command::new(env!("CARGO_BIN_EXE_s3-ingest"))
        .args([
            "run",
            "--time-scale",
            "0.05",
            // Batches through Express children: ten of ten, as many as the ten workers.
            "--objects-per-batch",
            "25",
            "--output",
            "json",
            "--console",
            "--data-dir",
        ])
        .arg(&data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = lines(run.stderr.take().unwrap());
    let mut stdout = run.stdout.take().unwrap();
    let console = wait_for(&stderr, "console URL", |l| {
        l.strip_prefix("console: http://")
            .map(|rest| format!("http://{}", rest.trim_end_matches('/')))
    });
    assert!(console.starts_with("http://127.0.0.1:"), "{console}");
    // The execution appears once the bucket is filled; the page shows it while it runs.
    let deadline = Instant::now() + Duration::from_secs(120);
    let during = loop {
        let dom = browser.dom(&format!("{console}/executions"));
        if dom.contains("<tr data-arn=") || Instant::now() > deadline {
            break dom;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(count(&during, "<tr data-arn="), 1, "{during}");
    if during.contains("data-status=\"RUNNING\"") {
        let running = links_to(&during, "/execution").remove(0);
        browser.screenshot(&format!("{console}{running}"), "0-execution-running", 1100);
    }
    wait_for(&stderr, "still serving", |l| {
        l.contains("still serving").then_some(())
    });
    // The summary is printed before the console says it stays; it is one JSON document.
    let mut printed = Vec::new();
    let reader = std::thread::spawn(move || {
        let _ = stdout.read_to_end(&mut printed);
        printed
    });

    let executions = browser.dom(&format!("{console}/executions"));
    browser.screenshot(&format!("{console}/executions"), "1-executions", 500);
    let execution = links_to(&executions, "/execution").remove(0);
    assert!(
        executions.contains("data-status=\"SUCCEEDED\""),
        "{executions}"
    );

    let page = browser.dom(&format!("{console}{execution}"));
    browser.screenshot(&format!("{console}{execution}"), "2-execution", 1800);
    assert!(page.contains("<svg class=\"graph\""), "{page}");
    for state in [
        "Initialize",
        "List page",
        "Ingest small objects",
        "Ingest large objects",
        "Summarize",
        "Ingested and validated",
    ] {
        assert!(
            page.contains(&format!(" visited\" data-state=\"{state}\"")),
            "{state} not marked visited"
        );
    }
    assert!(!page.contains(" failed\" data-state="), "no state failed");
    for (from, to) in [
        ("List page", "Ingest small objects"),
        ("Ingest small objects", "Ingest large objects"),
    ] {
        assert!(
            page.contains(&format!(
                "class=\"edge taken\" data-from=\"{from}\" data-to=\"{to}\""
            )),
            "{from} → {to} not marked taken"
        );
    }
    assert!(page.contains("ExecutionStarted") && page.contains("MapRunStarted"));

    // The small objects' Map Run counts items (objects), not its four Express children, which
    // Step Functions does not keep.
    let map_run = links_to(&page, "/map-run")
        .into_iter()
        .find(|link| link.contains("IngestSmallObjects"))
        .expect("a link to the small objects' Map Run");
    let page = browser.dom(&format!("{console}{map_run}"));
    browser.screenshot(&format!("{console}{map_run}"), "3-map-run", 900);
    assert!(
        page.contains("<td data-count=\"succeeded\">100</td>"),
        "{page}"
    );
    assert!(page.contains("<td data-count=\"total\">100</td>"), "{page}");
    assert!(page.contains("No item failed."));
    assert!(page.contains("id=\"express-children\""), "{page}");
    assert_eq!(
        count(&page, "data-status=\"SUCCEEDED\""),
        1,
        "the run's status, and no child execution listed"
    );

    // The ledger, in two pages: every object ingested, the rows adding up to the run's.
    let first = browser.dom(&format!("{console}/objects"));
    browser.screenshot(&format!("{console}/objects"), "4-objects", 900);
    let next: Vec<String> = links_to(&first, "/objects");
    assert_eq!(next.len(), 1, "only a next page link on the first page");
    let second = browser.dom(&format!("{console}{}", next[0]));
    let rows = |dom: &str| -> u64 {
        dom.match_indices("<td data-rows=\"\">")
            .map(|(at, m)| {
                let rest = &dom[at + m.len()..];
                rest[..rest.find('<').unwrap()].parse::<u64>().unwrap()
            })
            .sum()
    };
    // Whole ledger records a page, at least 50 objects on the first.
    let (on_first, on_second) = (
        count(&first, "data-status=\"INGESTED\""),
        count(&second, "data-status=\"INGESTED\""),
    );
    assert!(on_first >= 50, "{on_first} objects on the first page");
    assert_eq!(on_first + on_second, 100);

    let iota = browser.dom(&format!("{console}/iotanalytics"));
    browser.screenshot(&format!("{console}/iotanalytics"), "5-iotanalytics", 900);

    signal(&run, "-INT");
    let status = run.wait().unwrap();
    let summary: Value =
        serde_json::from_slice(&reader.join().unwrap()).expect("one JSON document");
    assert_eq!(status.code(), Some(0), "{summary}");
    assert_eq!(summary["status"], "SUCCEEDED");
    assert_eq!(summary["objects"], 100);
    assert_eq!(
        rows(&first) + rows(&second),
        summary["rows"].as_u64().unwrap()
    );
    // The validation counts distinct rows: as many as the run ingested.
    let counted = summary["rows"].as_u64().unwrap();
    assert!(
        iota.contains(&format!(
            "data-column=\"distinct_rowids\">distinct_rowids <b>{counted}</b>"
        )),
        "{iota}"
    );
    assert!(executions.contains(summary["executions"][0].as_str().unwrap()));

    // 2. `serve` on the same data: a run with an object set aside, then one whose channel
    //    disappears mid-run so items fail, checked against the APIs.
    let mut serve = Command::new(env!("CARGO_BIN_EXE_s3-ingest"))
        .args(["serve", "--data-dir"])
        .arg(&data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = lines(serve.stdout.take().unwrap());
    let mut env = std::collections::HashMap::new();
    wait_for(&out, "end of exports", |l| {
        if let Some((name, value)) = l.strip_prefix("export ").and_then(|e| e.split_once('=')) {
            env.insert(name.to_owned(), value.to_owned());
        }
        l.starts_with('#').then_some(())
    });
    let console = env["S3_INGEST_CONSOLE_URL"]
        .trim_end_matches('/')
        .to_owned();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let checked = runtime.block_on(failing_runs(&env));

    let page = browser.dom(&format!("{console}/executions?status=FAILED"));
    browser.screenshot(
        &format!("{console}/executions?status=FAILED"),
        "6-executions-failed",
        500,
    );
    assert!(page.contains(&checked.failed_name), "{page}");
    assert!(!page.contains("data-status=\"SUCCEEDED\""), "{page}");

    let url = format!("{console}/execution?arn={}", checked.failed_arn);
    let page = browser.dom(&url);
    browser.screenshot(&url, "7-execution-failed", 1800);
    assert!(
        page.contains("failed\" data-state=\"Ingest large objects\""),
        "Ingest large objects marked failed"
    );
    assert!(page.contains("data-status=\"FAILED\""));
    assert!(
        page.contains("States.ExceedToleratedFailureThreshold"),
        "the execution's error"
    );

    let url = format!("{console}/map-run?arn={}", checked.map_run_arn);
    let page = browser.dom(&url);
    browser.screenshot(&url, "8-map-run-failed", 1100);
    assert!(
        page.contains(&format!(
            "<td data-count=\"failed\">{}</td>",
            checked.failed_items
        )),
        "{page}"
    );
    assert!(
        page.contains(&format!(
            "<td data-count=\"succeeded\">{}</td>",
            checked.succeeded_items
        )),
        "{page}"
    );
    assert!(page.contains("<table id=\"failed-items\">"));
    assert!(
        page.contains(&format!(
            "<td class=\"error-name\">{}</td>",
            text(&checked.item_error)
        )),
        "{page}"
    );
    assert!(
        page.contains(&format!(
            "<td class=\"cause\">{}</td>",
            text(&checked.item_cause)
        )),
        "{page}"
    );
    assert!(
        page.contains(&format!(
            "<td class=\"key\">{}</td>",
            text(&checked.item_key)
        )),
        "{page}"
    );
    let child = links_to(&page, "/execution")
        .into_iter()
        .find(|l| l.contains(checked.item_arn.rsplit(':').next().unwrap()))
        .expect("a link to the failed item's execution");
    let page = browser.dom(&format!("{console}{child}"));
    assert!(page.contains("data-status=\"FAILED\"") && page.contains(&text(&checked.item_cause)));

    // The batched run's Map Run: no child is kept, the ledger's failure notes name the objects
    // of the failed batch and their error.
    let url = format!("{console}/map-run?arn={}", checked.express_map_run_arn);
    let page = browser.dom(&url);
    browser.screenshot(&url, "8b-map-run-express-failed", 1100);
    assert!(
        page.contains(&format!(
            "<td data-count=\"failed\">{}</td>",
            checked.express_failed_items
        )),
        "{page}"
    );
    assert!(page.contains("<table id=\"failed-items\">"), "{page}");
    assert!(
        page.contains(&format!(
            "<td class=\"key\">{}</td><td class=\"error-name\">ChannelNotFound</td><td class=\"cause\">{}</td>",
            text(&checked.note_key),
            text(&checked.note_cause)
        )),
        "{page}"
    );

    let page = browser.dom(&format!("{console}/objects"));
    browser.screenshot(&format!("{console}/objects"), "9-objects-set-aside", 900);
    assert!(
        page.contains(&format!(
            "<td class=\"key\">s3://bpm-blog-generated-data/{}</td><td>{}</td>",
            text(&checked.set_aside_key),
            checked.set_aside_line
        )),
        "{page}"
    );

    let page = browser.dom(&format!("{console}/iotanalytics"));
    browser.screenshot(
        &format!("{console}/iotanalytics"),
        "10-iotanalytics-after",
        900,
    );
    assert!(page.contains("data-datastore=\"console_datastore\""));
    assert!(
        !page.contains("<td>console_channel</td>"),
        "the deleted channel is gone"
    );
    assert!(page.contains("<td>bpm_blog_channel</td>"));
    // The set-aside run validated with the row identity, one count per object: the sample's
    // and the one row of the ragged object that went in before its bad line.
    let stored = summary["rows"].as_u64().unwrap() + checked.set_aside_rows;
    assert!(
        page.contains(&format!(
            "data-column=\"sum of stored over 101 rows\">sum of stored over 101 rows <b>{stored}</b>"
        )),
        "{page}"
    );

    signal(&serve, "-TERM");
    assert!(serve.wait().unwrap().success());
}

/// What the APIs say about the runs `serve` made.
struct Checked {
    failed_arn: String,
    failed_name: String,
    map_run_arn: String,
    express_map_run_arn: String,
    express_failed_items: i64,
    note_key: String,
    note_cause: String,
    failed_items: i64,
    succeeded_items: i64,
    item_arn: String,
    item_error: String,
    item_cause: String,
    item_key: String,
    set_aside_key: String,
    set_aside_line: u64,
    set_aside_rows: u64,
}

async fn failing_runs(env: &std::collections::HashMap<String, String>) -> Checked {
    let credentials = aws_credential_types::Credentials::new(
        &env["AWS_ACCESS_KEY_ID"],
        &env["AWS_SECRET_ACCESS_KEY"],
        None,
        None,
        "test",
    );
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(env["AWS_REGION"].clone()))
        .credentials_provider(credentials)
        .load()
        .await;
    let sfn = aws_sdk_sfn::Client::from_conf(
        aws_sdk_sfn::config::Builder::from(&config)
            .endpoint_url(&env["AWS_ENDPOINT_URL_SFN"])
            .build(),
    );
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .endpoint_url(&env["AWS_ENDPOINT_URL_S3"])
            .force_path_style(true)
            .build(),
    );
    let iota = aws_sdk_iotanalytics::Client::from_conf(
        aws_sdk_iotanalytics::config::Builder::from(&config)
            .endpoint_url(&env["AWS_ENDPOINT_URL_IOTANALYTICS"])
            .build(),
    );
    let machine = &env["STATE_MACHINE_ARN"];

    // An object with a ragged row (line 3): set aside under the default `fail` policy.
    let set_aside_key = "bad/<ragged> & odd.csv".to_owned();
    s3.put_object()
        .bucket("bpm-blog-generated-data")
        .key(&set_aside_key)
        .body(
            b"deviceid,humidity,location,rowid,temp,timestamp\n1,2,a,900001,4,5\n1,2\n"
                .to_vec()
                .into(),
        )
        .send()
        .await
        .unwrap();
    let started = sfn
        .start_execution()
        .state_machine_arn(machine)
        .input(json!({"prefix": "bad/", "validationPollSeconds": 1}).to_string())
        .send()
        .await
        .unwrap();
    finished(&sfn, started.execution_arn()).await;
    let report_keys = s3
        .list_objects_v2()
        .bucket("ingest-ledger")
        .prefix("ingest-ledger/reports/")
        .send()
        .await
        .unwrap();
    let report_key = report_keys.contents()[0].key().unwrap().to_owned();
    let report = s3
        .get_object()
        .bucket("ingest-ledger")
        .key(&report_key)
        .send()
        .await
        .unwrap();
    let report: Value =
        serde_json::from_slice(&report.body.collect().await.unwrap().into_bytes()).unwrap();
    assert_eq!(report["key"], set_aside_key.as_str());
    let set_aside_line = report["stoppedAt"]["line"]
        .as_u64()
        .expect("stopped at a line");
    let ledger = ingest::ledger::LedgerLocation {
        bucket: "ingest-ledger".to_owned(),
        prefix: ingest::ledger::DEFAULT_LEDGER_PREFIX.to_owned(),
    };
    let entry = ingest::ledger::Ledger::new(&s3, &ledger)
        .read("bpm-blog-generated-data", &set_aside_key)
        .await
        .unwrap()
        .expect("the set-aside object has an entry")
        .entry;
    assert_eq!(entry.state, ingest::ledger::EntryState::SetAside);
    let set_aside_rows = entry.rows;

    // The sample again, into a channel of its own and a ledger prefix of its own, one object at
    // a time; once two are in, the channel is deleted and the next item fails.
    let (failed_arn, map_run_arn, counts) =
        fail_midway(&sfn, &iota, machine, "console", "IngestLargeObjects", 0).await;
    // Again in batches of five through Express children, whose errors only the ledger keeps.
    let (_, express_map_run_arn, express_counts) = fail_midway(
        &sfn,
        &iota,
        machine,
        "console_batched",
        "IngestSmallObjects",
        5,
    )
    .await;
    // The worker's failure note on an object of the failed batch, as the ledger holds it.
    let notes = s3
        .list_objects_v2()
        .bucket("ingest-ledger")
        .prefix("console_batched/failures/")
        .send()
        .await
        .unwrap();
    let note = s3
        .get_object()
        .bucket("ingest-ledger")
        .key(notes.contents()[0].key().unwrap())
        .send()
        .await
        .unwrap();
    let note: Value =
        serde_json::from_slice(&note.body.collect().await.unwrap().into_bytes()).unwrap();
    assert_eq!(note["error"], "ChannelNotFound", "{note}");
    let failed = sfn
        .list_executions()
        .map_run_arn(&map_run_arn)
        .status_filter(ExecutionStatus::Failed)
        .send()
        .await
        .unwrap();
    // The page lists failed items newest first, as ListExecutions does: the first is shown.
    let item_arn = failed.executions()[0].execution_arn().to_owned();
    let item = sfn
        .describe_execution()
        .execution_arn(&item_arn)
        .send()
        .await
        .unwrap();
    let item_input: Value = serde_json::from_str(item.input().unwrap()).unwrap();
    let name = sfn
        .describe_execution()
        .execution_arn(&failed_arn)
        .send()
        .await
        .unwrap();
    Checked {
        failed_name: name.name().unwrap().to_owned(),
        failed_arn,
        map_run_arn,
        express_map_run_arn,
        express_failed_items: express_counts.failed(),
        note_key: note["key"].as_str().unwrap().to_owned(),
        note_cause: note["cause"].as_str().unwrap().to_owned(),
        failed_items: counts.failed(),
        succeeded_items: counts.succeeded(),
        item_arn,
        item_error: item.error().unwrap().to_owned(),
        item_cause: item.cause().unwrap().to_owned(),
        item_key: item_input
            .pointer("/input/key")
            .and_then(Value::as_str)
            .unwrap()
            .to_owned(),
        set_aside_key,
        set_aside_line,
        set_aside_rows,
    }
}

/// Runs the sample into channel `{name}_channel` (ledger prefix `{name}/`), one worker at a
/// time, objects of at most `batch` objects per Express batch (0: each alone in a Standard
/// child); once the Map Run labelled `label` has two items done, deletes the channel, so the
/// next item fails with ChannelNotFound. Returns the failed execution, its Map Run and counts.
async fn fail_midway(
    sfn: &aws_sdk_sfn::Client,
    iota: &aws_sdk_iotanalytics::Client,
    machine: &str,
    name: &str,
    label: &str,
    batch: u64,
) -> (String, String, aws_sdk_sfn::types::MapRunItemCounts) {
    let channel = format!("{name}_channel");
    let mut input = json!({
        "channelName": channel, "pipelineName": format!("{name}_pipeline"),
        "datastoreName": format!("{name}_datastore"), "maxConcurrency": 1, "rate": 2000,
        "prefix": "", "ledger": {"bucket": "ingest-ledger", "prefix": format!("{name}/")},
    });
    if batch == 0 {
        input["smallObjectBytes"] = json!(0);
    } else {
        input["objectsPerBatch"] = json!(batch);
    }
    let started = sfn
        .start_execution()
        .state_machine_arn(machine)
        .input(input.to_string())
        .send()
        .await
        .unwrap();
    let failed_arn = started.execution_arn().to_owned();
    let deadline = Instant::now() + Duration::from_secs(120);
    let map_run_arn = loop {
        assert!(
            Instant::now() < deadline,
            "no {label} Map Run with two items done"
        );
        let runs = sfn
            .list_map_runs()
            .execution_arn(&failed_arn)
            .send()
            .await
            .unwrap();
        if let Some(run) = runs
            .map_runs()
            .iter()
            .find(|run| run.map_run_arn().contains(label))
        {
            let described = sfn
                .describe_map_run()
                .map_run_arn(run.map_run_arn())
                .send()
                .await
                .unwrap();
            if described.item_counts().is_some_and(|c| c.succeeded() >= 2) {
                break run.map_run_arn().to_owned();
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    iota.delete_channel()
        .channel_name(&channel)
        .send()
        .await
        .unwrap();
    let status = finished(sfn, &failed_arn).await;
    assert_eq!(status, ExecutionStatus::Failed, "{label}");
    let described = sfn
        .describe_map_run()
        .map_run_arn(&map_run_arn)
        .send()
        .await
        .unwrap();
    let counts = described.item_counts().unwrap().clone();
    assert!(counts.failed() >= 1, "{label}: {counts:?}");
    (failed_arn, map_run_arn, counts)
}

/// Waits for an execution to end and returns its status.
async fn finished(sfn: &aws_sdk_sfn::Client, arn: &str) -> ExecutionStatus {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let described = sfn
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
            .unwrap();
        if described.status() != &ExecutionStatus::Running {
            return described.status().clone();
        }
        assert!(Instant::now() < deadline, "{arn} still running");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
