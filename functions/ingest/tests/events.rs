//! Every sample event in `events/` deserialises into the input type of the step it is for.

use std::path::Path;

use ingest::handlers::parse_input;
use ingest::launcher::LauncherInput;
use ingest::validator::ValidatorInput;
use ingest::worker::{WorkerBatch, WorkerInput};

fn events_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

/// Parses `file` as the input its name says it is for; unknown names fail.
fn check(file: &Path) -> Result<(), String> {
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let text = std::fs::read_to_string(file).map_err(|e| format!("{name}: {e}"))?;
    let event: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{name}: not JSON: {e}"))?;
    let parsed = if name.starts_with("launcher-") {
        parse_input::<LauncherInput>(event).map(|_| ())
    } else if name.starts_with("worker-batch") {
        parse_input::<WorkerBatch>(event).map(|_| ())
    } else if name.starts_with("worker") {
        parse_input::<WorkerInput>(event).map(|_| ())
    } else if name.starts_with("validator-") {
        parse_input::<ValidatorInput>(event).map(|_| ())
    } else if name == "iotanalytics-service-tick.json" {
        // The template's `Tick` schedule; iotanalytics-service/tests/lambda_host.rs sends it
        // to the Lambda host.
        return match event.as_object().map(|o| o.keys().collect::<Vec<_>>()) {
            Some(keys) if keys == ["iotanalyticsServiceTick"] => Ok(()),
            _ => Err(format!("{name}: not {{\"iotanalyticsServiceTick\": {{}}}}")),
        };
    } else if name.starts_with("iotanalytics-service-") {
        // Function URL events of the service; iotanalytics-service/tests/lambda_host.rs runs
        // them through the Lambda host.
        let http = &event["requestContext"]["http"];
        return match (
            event["version"].as_str(),
            http["method"].as_str(),
            event["rawPath"].as_str(),
        ) {
            (Some("2.0"), Some(_), Some(_)) => Ok(()),
            _ => Err(format!("{name}: not a function URL (payload 2.0) event")),
        };
    } else if name.starts_with("start-execution") || name.starts_with("schedule") {
        return check_execution_input(&event).map_err(|e| format!("{name}: {e}"));
    } else {
        return Err(format!("{name}: no input type is known for this file name"));
    };
    parsed.map_err(|e| format!("{name}: {e}"))
}

/// A state machine input: an object of settings the definition's `Initialize` state has
/// defaults for (it merges the input over them, so an unknown key would be silently ignored).
fn check_execution_input(event: &serde_json::Value) -> Result<(), String> {
    let definition: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../statemachine/ingest.asl.json"),
        )
        .map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let defaults = definition["States"]["Initialize"]["Parameters"]["defaults"]
        .as_object()
        .ok_or("the definition's Initialize state has no defaults")?;
    let settings = event.as_object().ok_or("not a JSON object")?;
    let unknown: Vec<&String> = settings
        .keys()
        .filter(|k| !defaults.contains_key(*k))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "settings the state machine does not know: {unknown:?}"
        ))
    }
}

#[test]
fn an_execution_input_with_an_unknown_setting_is_refused() {
    let error =
        check_execution_input(&serde_json::json!({"prefix": "a/", "pagesize": 5})).unwrap_err();
    assert!(error.contains("pagesize"), "{error}");
    check_execution_input(&serde_json::json!({})).unwrap();
}

#[test]
fn every_event_file_deserialises_into_its_input_type() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(events_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            checked += 1;
            if let Err(e) = check(&path) {
                failures.push(e);
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(checked >= 8, "only {checked} event files found");
}

#[test]
fn the_resume_event_carries_a_checkpoint_and_the_start_event_none() {
    let resume: WorkerInput = parse_input(
        serde_json::from_str(
            &std::fs::read_to_string(events_dir().join("worker-resume.json")).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(resume.checkpoint.unwrap().next_row, 2_000_001);
    let start: WorkerInput = parse_input(
        serde_json::from_str(&std::fs::read_to_string(events_dir().join("worker.json")).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert!(start.checkpoint.is_none());
}

#[test]
fn the_deploy_guide_shows_the_start_input_as_events_has_it() {
    // docs/deploy.md's first JSON block is the input it tells the reader to start with.
    let guide = std::fs::read_to_string(events_dir().join("../docs/deploy.md")).unwrap();
    let start = guide
        .find("```json\n")
        .expect("a JSON block in docs/deploy.md")
        + 8;
    let end = start + guide[start..].find("```").unwrap();
    let shown: serde_json::Value = serde_json::from_str(&guide[start..end]).unwrap();
    let event: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(events_dir().join("start-execution.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        shown, event,
        "docs/deploy.md's start input differs from events/start-execution.json"
    );
}
