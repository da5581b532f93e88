//! Every sample event in `events/` deserialises into the input type of the step it is for.

use std::path::Path;

use ingest::handlers::parse_input;
use ingest::launcher::LauncherInput;
use ingest::validator::ValidatorInput;
use ingest::worker::WorkerInput;

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
    } else if name.starts_with("worker") {
        parse_input::<WorkerInput>(event).map(|_| ())
    } else if name.starts_with("validator-") {
        parse_input::<ValidatorInput>(event).map(|_| ())
    } else {
        return Err(format!("{name}: no input type is known for this file name"));
    };
    parsed.map_err(|e| format!("{name}: {e}"))
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
    assert!(checked >= 6, "only {checked} event files found");
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
