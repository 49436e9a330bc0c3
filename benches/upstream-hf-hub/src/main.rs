//! Downloads one file with upstream hf-hub 0.4.3's tokio API and `high()`.
//! Usage: upstream-hf-hub-bench ENDPOINT CACHE_DIR REPO FILE

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, endpoint, cache, repo, file] = args.as_slice() else {
        eprintln!("usage: upstream-hf-hub-bench ENDPOINT CACHE_DIR REPO FILE");
        std::process::exit(2);
    };
    let api = hf_hub::api::tokio::ApiBuilder::new()
        .high()
        .with_endpoint(endpoint.clone())
        .with_cache_dir(cache.into())
        .with_progress(false)
        .build()
        .unwrap_or_else(|e| {
            eprintln!("error: {e}");
            std::process::exit(1)
        });
    match api.model(repo.clone()).download(file).await {
        Ok(path) => println!("{}", path.display()),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
