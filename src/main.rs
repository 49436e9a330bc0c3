//! The `tektra` command: a thin layer of flag parsing and wiring over the
//! library crates. Everything it prints goes through `cli::report`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cli;

fn main() {
    let code = cli::main();
    std::process::exit(code);
}
