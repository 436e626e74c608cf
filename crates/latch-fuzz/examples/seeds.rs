//! Writes the generated seeds into `corpus/<target>/`:
//! `cargo run -p latch-fuzz --example seeds`.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::fs;
use std::path::Path;

fn main() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (target, name, bytes) in latch_fuzz::seeds::seeds() {
        let dir = corpus.join(target);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(name), bytes).unwrap();
        println!("{target}/{name}");
    }
}
