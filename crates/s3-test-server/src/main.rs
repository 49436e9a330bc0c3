//! `tektra-s3-test-server --host 127.0.0.1 --port 9000 --access-key K
//! --secret-key S ROOT`: an S3 server over the folder ROOT (one folder per
//! bucket), for tests and benchmarks. It is built with the workspace, so a
//! cold run compiles only what its dependencies do not share with ours.

use std::path::PathBuf;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

/// An S3 server over a folder, on one address.
#[derive(clap::Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on.
    #[arg(long)]
    port: u16,
    /// The one access key requests must be signed with.
    #[arg(long)]
    access_key: String,
    /// Its secret.
    #[arg(long)]
    secret_key: String,
    /// The folder buckets live in.
    root: PathBuf,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = <Args as clap::Parser>::parse();
    match serve(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("tektra-s3-test-server: {e}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let files = s3s_fs::FileSystem::new(&args.root)
        .map_err(|e| format!("opening {}: {e:?}", args.root.display()))?;
    let mut service = S3ServiceBuilder::new(files);
    service.set_auth(SimpleAuth::from_single(args.access_key, args.secret_key));
    let service = service.build();
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port)).await?;
    let http = Builder::new(TokioExecutor::new());
    loop {
        // A failed accept (too many files, a reset) skips that client only.
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        let connection = http
            .serve_connection(TokioIo::new(socket), service.clone())
            .into_owned();
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}
