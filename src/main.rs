//! The `tektra` command: a thin layer of flag parsing and wiring over the
//! library crates. Everything it prints goes through `cli::report`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cli;

fn main() {
    // Before anything builds an HTTP client (see hf_hub::install_tls_provider).
    hf_hub::install_tls_provider();
    let code = cli::main();
    std::process::exit(code);
}
