//! `tektra download REPO [FILES...]`

use std::path::PathBuf;

use hf_hub::filter::Filter;
use hf_hub::ids::{RepoPath, RepoRef, Revision};
use hf_hub::{Hub, HubError, HubOptions, RepoType, XetMode};

use super::EXIT_CANCELLED;
use super::model_args::HubArgs;
use super::report::{Display, OutputArgs, print_error};
use super::signal::cancel_on_ctrl_c;

/// Download files of a Hub repo into the cache.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Repo id, e.g. `HuggingFaceTB/SmolLM2-135M-Instruct`.
    repo: String,
    /// Files to fetch; all files (after --include/--exclude) when none.
    files: Vec<String>,
    /// Branch, tag or commit.
    #[arg(long, default_value = "main")]
    revision: String,
    /// model, dataset or space.
    #[arg(long, default_value = "model", value_parser = ["model", "dataset", "space"])]
    repo_type: String,
    /// Only files matching one of these globs (`*` matches `/`; `dir/` means everything under dir).
    #[arg(long)]
    include: Vec<String>,
    /// Skip files matching one of these globs.
    #[arg(long)]
    exclude: Vec<String>,
    #[command(flatten)]
    hub: HubArgs,
    #[command(flatten)]
    pub(super) output: OutputArgs,
    /// Parallel connections per large file.
    #[arg(long)]
    connections: Option<usize>,
    /// Files downloaded at once.
    #[arg(long)]
    max_files: Option<usize>,
    /// Fetch Xet-backed files through Xet only: a Xet failure is an error
    /// [default: Xet with a fallback to HTTP, unless HF_HUB_DISABLE_XET is set].
    #[arg(long, conflicts_with = "no_xet")]
    use_xet: bool,
    /// Never use Xet: every file over plain HTTP (as HF_HUB_DISABLE_XET=1).
    #[arg(long)]
    no_xet: bool,
    /// Download at most this fast, all files and connections together
    /// (e.g. 10MB/s; HTTP only: Xet transfers cannot be paced).
    #[arg(long, value_name = "RATE", value_parser = super::rate::parse_rate)]
    max_rate: Option<u64>,
    /// Before downloading, prune the cache's least recently used revisions
    /// (other repos') until the disk has this much free (e.g. 50G).
    #[arg(long, value_name = "SIZE", env = "TEKTRA_KEEP_FREE")]
    keep_free: Option<String>,
    /// Read the repo from an object store that mirrors fill
    /// (`s3://bucket/prefix` or `file:///dir`) instead of the Hub; every
    /// blob is hashed against its name on the way.
    #[arg(long, value_name = "URL")]
    source: Option<String>,
    #[command(flatten)]
    store: super::store_args::StoreArgs,
}

impl Args {
    fn options(&self) -> HubOptions {
        let mut options = self.hub.options();
        if let Some(n) = self.connections {
            options.connections_per_file = n;
        }
        if let Some(n) = self.max_files {
            options.max_files = n;
        }
        options.max_rate = self.max_rate;
        if self.use_xet {
            options.xet = XetMode::Require;
        } else if self.no_xet {
            options.xet = XetMode::Disabled;
        }
        options
    }

    fn repo_type(&self) -> RepoType {
        match self.repo_type.as_str() {
            "dataset" => RepoType::Dataset,
            "space" => RepoType::Space,
            _ => RepoType::Model,
        }
    }
}

pub(crate) async fn run(args: Args) -> i32 {
    limit_malloc_arenas();
    let display = Display::start(args.output.mode());
    let result = download(&args, &display).await;
    display.finish().await;
    match result {
        Ok(path) => {
            println!("{}", path.display());
            0
        }
        Err(HubError::Cancelled) => {
            print_error(
                args.output.json,
                &"cancelled: run the same command again to resume",
            );
            EXIT_CANCELLED
        }
        Err(e) => {
            print_error(args.output.json, &e);
            1
        }
    }
}

async fn download(args: &Args, display: &Display) -> Result<PathBuf, HubError> {
    let repo = RepoRef::new(args.repo_type(), &args.repo)?;
    let revision = Revision::new(&args.revision)?;
    let hub = Hub::new(args.options())?;
    if let Some(size) = &args.keep_free {
        make_room(hub.cache().root(), &args.repo, size, args.output.json)?;
    }
    let cancel = cancel_on_ctrl_c();
    if let Some(source) = &args.source {
        return from_store(args, source, &hub, (&repo, &revision), display, &cancel).await;
    }
    if args.files.is_empty() {
        let filter = Filter::new(&args.include, &args.exclude)?;
        let snapshot = hub
            .snapshot(&repo, &revision, &filter, display.reporter(), &cancel)
            .await?;
        return Ok(snapshot.dir);
    }
    let paths = args
        .files
        .iter()
        .map(|f| RepoPath::new(f))
        .collect::<Result<Vec<_>, _>>()?;
    let snapshot = hub
        .download_files(&repo, &revision, &paths, display.reporter(), &cancel)
        .await?;
    // One file: its path; several: the snapshot folder.
    Ok(match snapshot.files.as_slice() {
        [one] => one.path.clone(),
        _ => snapshot.dir,
    })
}

/// `--source`: the files from an object store; named files are taken as
/// exact paths.
async fn from_store(
    args: &Args,
    source: &str,
    hub: &Hub,
    (repo, revision): (&RepoRef, &Revision),
    display: &Display,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<PathBuf, HubError> {
    use super::store_args::as_hub_error;
    let store = args
        .store
        .open(source)
        .map_err(|e| as_hub_error(e, source))?;
    let options = tektra_store::PullOptions {
        filter: Filter::new(&args.include, &args.exclude)?,
        paths: args.files.clone(),
    };
    let snapshot = tektra_store::pull(
        &store,
        hub,
        (repo, revision),
        &options,
        display.reporter(),
        cancel,
    )
    .await
    .map_err(|e| as_hub_error(e, &repo.to_string()))?;
    Ok(match (args.files.len(), snapshot.files.as_slice()) {
        (1, [one]) => one.path.clone(),
        _ => snapshot.dir,
    })
}

/// Network buffers are allocated on the runtime's threads and freed on the
/// hasher's; glibc then grows one arena per thread and keeps their free
/// memory. One arena keeps a 1 GiB download near 30 MB resident instead of
/// 40-50 MB, at no measured cost in speed. Only this command does it.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: mallopt only changes allocator tuning; called before the
    // download starts any thread that allocates.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// `--keep-free`: prunes other repos' least recently used revisions (and
/// leftovers) until the disk has `size` free, saying what went.
fn make_room(root: &std::path::Path, repo: &str, size: &str, json: bool) -> Result<(), HubError> {
    let bad = |reason: String| HubError::InvalidOption {
        name: "keep_free",
        value: size.to_string(),
        reason,
    };
    let keep_free = tektra_cache::parse_size(size).map_err(|e| bad(e.to_string()))?;
    let Ok(scan) = tektra_cache::scan(root) else {
        return Ok(()); // no cache yet: nothing to prune
    };
    let in_use: Vec<PathBuf> = scan
        .repos
        .iter()
        .filter(|r| r.id == repo)
        .flat_map(|r| r.revisions.iter().map(|v| v.dir.clone()))
        .collect();
    let limits = tektra_cache::PruneLimits {
        keep_free: Some(keep_free),
        ..tektra_cache::PruneLimits::default()
    };
    let free = hf_hub::cache::available_space(root);
    let plan =
        tektra_cache::plan_prune(&scan, &limits, &in_use, free, std::time::SystemTime::now())
            .map_err(|e| bad(e.to_string()))?;
    if plan.is_empty() {
        return Ok(());
    }
    let removed = tektra_cache::execute(root, &plan).map_err(|e| bad(e.to_string()))?;
    let note = format!(
        "pruned {} revision(s), {} freed, to keep {} free",
        removed.revisions,
        tektra_cache::format_size(removed.freed),
        tektra_cache::format_size(keep_free)
    );
    if json {
        eprintln!("{}", serde_json::json!({"level": "INFO", "message": note}));
    } else {
        eprintln!("{note}");
    }
    Ok(())
}
