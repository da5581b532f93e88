//! `s3-ingest serve` prints the shell lines clients need and then answers on those endpoints.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

#[test]
fn serve_prints_export_lines_and_answers_on_the_printed_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_s3-ingest"))
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .args(["--region", "eu-west-1", "--fault-entry-error", "0.5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.starts_with('#') {
            break;
        }
        lines.push(line);
    }
    let endpoint = lines
        .iter()
        .find_map(|l| l.strip_prefix("export AWS_ENDPOINT_URL_IOTANALYTICS=http://"))
        .expect("an endpoint line")
        .to_owned();
    assert!(endpoint.starts_with("127.0.0.1:"), "{endpoint}");
    for variable in ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_SFN"] {
        let line = lines
            .iter()
            .find_map(|l| l.strip_prefix(&format!("export {variable}=")))
            .unwrap_or_else(|| panic!("no {variable} line in {lines:?}"));
        assert!(line.starts_with("http://127.0.0.1:"), "{line}");
    }
    assert!(
        lines.contains(&"export AWS_REGION=eu-west-1".to_owned()),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("export AWS_ACCESS_KEY_ID="))
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("export AWS_SECRET_ACCESS_KEY="))
    );
    // What `s3-ingest start` reads, so the README's commands work as written.
    assert!(
        lines.iter().any(
            |l| l.starts_with("export STATE_MACHINE_ARN=arn:aws:states:eu-west-1:")
                && l.ends_with(":stateMachine:ingest")
        ),
        "{lines:?}"
    );

    // An unsigned request gets the service's error shape back.
    let mut stream = TcpStream::connect(&endpoint).unwrap();
    write!(
        stream,
        "GET /channels HTTP/1.1\r\nHost: {endpoint}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    // SIGTERM (what a service manager sends) stops it as Ctrl-C does: cleanly, exit 0.
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "serve ended with {status} on SIGTERM");
    assert!(response.starts_with("HTTP/1.1 403"), "{response}");
    assert!(
        response
            .to_ascii_lowercase()
            .contains("x-amzn-errortype: missingauthenticationtokenexception")
    );
    assert!(
        dir.path().join("iotanalytics/catalog.json").exists()
            || dir.path().join("iotanalytics/channels").exists()
    );
}

#[test]
fn serve_rejects_a_probability_outside_zero_to_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_s3-ingest"))
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .args(["--fault-throttle", "1.5"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("between 0 and 1"));
}

#[test]
fn serve_refuses_a_non_loopback_bind_before_any_endpoint_starts() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_s3-ingest"))
        .args(["serve", "--bind", "0.0.0.0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "nothing may be served or printed");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--bind 0.0.0.0"), "{stderr}");
    assert!(stderr.contains("loopback only"), "{stderr}");
    assert!(!stderr.contains("Stack backtrace"), "{stderr}");
    assert!(
        !dir.path().join("s3").exists(),
        "no endpoint's data was created"
    );
}
