//! An embedded S3 endpoint: every directory under a root is a bucket, served over the S3 REST
//! protocol on loopback, with SigV4 checked against the local credentials.

use std::net::SocketAddr;
use std::path::PathBuf;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

mod journal;
mod keys;
mod listing;
mod requests;
mod service;
mod store;

pub use requests::RequestCounts;
pub use service::S3Faults;

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// The root directory could not be created or opened.
    #[error("S3 root {path}: {message}")]
    Root {
        /// The directory.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The address could not be bound.
    #[error("binding the S3 endpoint to {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

/// How to run the endpoint.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// Directory holding one sub-directory per bucket.
    pub root: PathBuf,
    /// Address to listen on; port 0 picks a free one.
    pub bind: SocketAddr,
    /// Access key and secret every request must be signed with; `None` accepts any request.
    pub credentials: Option<(String, String)>,
    /// Faults to inject (none by default).
    pub faults: S3Faults,
}

impl S3Config {
    /// Loopback on a free port, signed requests required.
    pub fn new(root: impl Into<PathBuf>, access_key: &str, secret_key: &str) -> Self {
        Self {
            root: root.into(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            credentials: Some((access_key.to_owned(), secret_key.to_owned())),
            faults: S3Faults::default(),
        }
    }
}

/// A running endpoint; dropping it leaves the server running until [`RunningS3::shutdown`].
#[derive(Debug)]
pub struct RunningS3 {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    requests: RequestCounts,
}

impl RunningS3 {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL_S3`.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// The requests served so far, by bucket and operation (counted only when credentials
    /// are configured: s3s checks access, where they are counted, only then).
    pub fn requests(&self) -> &RequestCounts {
        &self.requests
    }

    /// Stops accepting connections and waits for the accept loop to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// Creates `bucket` under the root if it does not exist yet.
pub fn ensure_bucket(root: &std::path::Path, bucket: &str) -> std::io::Result<PathBuf> {
    let dir = root.join(bucket);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Starts the endpoint.
pub async fn start(config: S3Config) -> Result<RunningS3, S3Error> {
    std::fs::create_dir_all(&config.root).map_err(|e| S3Error::Root {
        path: config.root.clone(),
        message: e.to_string(),
    })?;
    let fs = s3s_fs::FileSystem::new(&config.root).map_err(|e| S3Error::Root {
        path: config.root.clone(),
        message: format!("{e:?}"),
    })?;
    // Before anything is served: a write a stopped process left half done is undone.
    let journal = journal::Journal::new(config.root.clone())
        .and_then(|journal| journal.recover().map(|_| journal))
        .map_err(|e| S3Error::Root {
            path: config.root.clone(),
            message: format!("undoing writes a stopped process left half done: {e}"),
        })?;
    let mut builder = S3ServiceBuilder::new(service::LocalS3::new(
        fs,
        config.root.clone(),
        journal,
        config.faults,
    ));
    let requests = RequestCounts::default();
    if let Some((access_key, secret_key)) = &config.credentials {
        builder.set_auth(SimpleAuth::from_single(
            access_key.clone(),
            secret_key.clone(),
        ));
        builder.set_access(requests.clone());
    }
    let service = builder.build();
    let listener = TcpListener::bind(config.bind)
        .await
        .map_err(|source| S3Error::Bind {
            addr: config.bind,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| S3Error::Bind {
        addr: config.bind,
        source,
    })?;
    let (stop_tx, mut stop_rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        let http = ConnBuilder::new(TokioExecutor::new());
        loop {
            let socket = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((socket, _)) => socket,
                    Err(error) => {
                        tracing::warn!(%error, "S3 endpoint: accept failed");
                        continue;
                    }
                },
                _ = &mut stop_rx => break,
            };
            // Without it a body written after its headers waits for the client's delayed ACK
            // (about 40 ms on Linux) whenever the two go out as separate small segments.
            let _ = socket.set_nodelay(true);
            let connection = http
                .serve_connection(TokioIo::new(socket), service.clone())
                .into_owned();
            tokio::spawn(async move {
                let _ = connection.await;
            });
        }
    });
    tracing::info!(%local_addr, root = %config.root.display(), "S3 endpoint listening");
    Ok(RunningS3 {
        local_addr,
        stop: Some(stop_tx),
        task: Some(task),
        requests,
    })
}
