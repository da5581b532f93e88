//! moto's side of the differential test: the moto_server process, and the endpoint its
//! interpreter calls for Lambda Invoke, the ItemReader's S3 GetObject and its own Step
//! Functions calls, served over the test's [`Functions`].

use super::*;

/// What the endpoint moto's interpreter calls serves.
#[derive(Clone)]
struct Endpoint {
    functions: Arc<Functions>,
    /// moto's own port, for the Step Functions calls its interpreter makes.
    moto_port: u16,
}

/// Lambda's Invoke API over [`Functions`].
async fn invoke_endpoint(
    State(Endpoint { functions, .. }): State<Endpoint>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let payload: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    match functions.invoke(&name, payload).await {
        Ok(output) => (StatusCode::OK, axum::Json(output)).into_response(),
        Err((error_type, error_message)) => (
            StatusCode::OK,
            [("X-Amz-Function-Error", "Unhandled")],
            axum::Json(json!({"errorType": error_type, "errorMessage": error_message})),
        )
            .into_response(),
    }
}

/// S3 GetObject (path style) over [`Functions`], for moto's ItemReader.
async fn object_endpoint(
    State(Endpoint { functions, .. }): State<Endpoint>,
    Path((bucket, key)): Path<(String, String)>,
) -> Response {
    match functions.object(&bucket, &key).await {
        Ok(bytes) => (StatusCode::OK, bytes).into_response(),
        Err(message) => (
            StatusCode::NOT_FOUND,
            [("Content-Type", "application/xml")],
            format!("<Error><Code>NoSuchKey</Code><Message>{message}</Message></Error>"),
        )
            .into_response(),
    }
}

/// Step Functions calls of moto's interpreter (continue-as-new's StartExecution), which go to
/// `MOTO_PORT` like its Lambda calls: passed on to moto as they are.
async fn sfn_endpoint(
    State(Endpoint { moto_port, .. }): State<Endpoint>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let target = header("x-amz-target");
    if !target.starts_with("AWSStepFunctions.") {
        return (
            StatusCode::NOT_FOUND,
            format!("not served here: POST / {target}"),
        )
            .into_response();
    }
    let forward = async {
        let mut stream = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, moto_port)).await?;
        let head = format!(
            "POST / HTTP/1.1\r\nHost: 127.0.0.1:{moto_port}\r\nX-Amz-Target: {target}\r\nContent-Type: application/x-amz-json-1.0\r\nAuthorization: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            header("authorization"),
            body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&body).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = match forward.await {
        Ok(response) => response,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(response.len());
    let head = String::from_utf8_lossy(&response[..split]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .and_then(|code| StatusCode::from_u16(code).ok())
        .unwrap_or(StatusCode::BAD_GATEWAY);
    let body = response.get(split + 4..).unwrap_or_default().to_vec();
    (
        status,
        [("Content-Type", "application/x-amz-json-1.0")],
        body,
    )
        .into_response()
}

/// Serves the Invoke, GetObject and Step Functions endpoints on loopback; returns the port.
pub(super) async fn serve(functions: Arc<Functions>, moto_port: u16) -> u16 {
    let app = Router::new()
        .route(
            "/2015-03-31/functions/{name}/invocations",
            post(invoke_endpoint),
        )
        .route("/{bucket}/{*key}", get(object_endpoint))
        .route("/", post(sfn_endpoint))
        .fallback(|uri: axum::http::Uri| async move {
            (StatusCode::NOT_FOUND, format!("not served here: {uri}"))
        })
        .with_state(Endpoint {
            functions,
            moto_port,
        });
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

/// The moto_server program named by `MOTO_SERVER`. Not looked up on PATH: the comparison is
/// pinned to moto 5.2.5's interpreter, and another moto found there may behave differently.
pub(super) fn moto_server() -> Option<PathBuf> {
    std::env::var_os("MOTO_SERVER")
        .filter(|path| !path.is_empty())
        .map(PathBuf::from)
}

/// A moto_server process, killed when dropped.
pub(super) struct Moto {
    child: Child,
    pub(super) port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(super) fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A minimal HTTP/1.1 POST of JSON; returns the status line.
async fn post_json(port: u16, path: &str, body: &str) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response.lines().next().unwrap_or_default().to_owned())
}

/// Starts moto with its Lambda calls (`MOTO_PORT`) sent to `invoke_port` and state machine
/// execution switched on.
pub(super) async fn start_moto(program: &std::path::Path, port: u16, invoke_port: u16) -> Moto {
    let child = Command::new(program)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("MOTO_PORT", invoke_port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", program.display()));
    let moto = Moto { child, port };
    let config = r#"{"stepfunctions":{"execute_state_machine":true}}"#;
    for _ in 0..300 {
        if let Ok(status) = post_json(port, "/moto-api/config", config).await {
            assert!(status.contains(" 20"), "moto config: {status}");
            return moto;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("moto_server did not listen on port {port} within 30 s");
}
