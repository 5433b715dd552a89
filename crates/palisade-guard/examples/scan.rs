//! Print the guard verdict for each line of stdin as JSON (a stand-in for `palisade scan
//! --jsonl`). `--learned` enables the learned classifier.

use std::io::{BufRead, Write};

use palisade_guard::{Guard, GuardConfig, scan_to_json};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let learned = std::env::args().any(|a| a == "--learned");
    let guard = Guard::new(&GuardConfig {
        learned_classifier: learned,
        ..GuardConfig::default()
    })?;
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let line = line?;
        writeln!(out, "{}", scan_to_json(&guard, &line))?;
    }
    Ok(())
}
