//! Loading benchmark (work in progress).
fn main() {}
