//! `palisade scan`: the guards' verdict for a text, for operators tuning the
//! allowlist and for bulk evaluation (`--jsonl`, one verdict per line).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use anyhow::{Context, Result};
use palisade_guard::{Guard, GuardConfig, scan_to_json};

pub fn run(config: &GuardConfig, file: Option<&Path>, jsonl: bool) -> Result<()> {
    let guard = Guard::new(config).context("building the input guards")?;
    let input: Box<dyn Read> = match file {
        Some(path) => Box::new(
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?,
        ),
        None => Box::new(std::io::stdin()),
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if jsonl {
        for line in BufReader::new(input).lines() {
            let line = line.context("reading input (is it UTF-8?)")?;
            serde_json::to_writer(&mut out, &scan_to_json(&guard, &line))?;
            out.write_all(b"\n")?;
        }
    } else {
        let mut text = String::new();
        BufReader::new(input)
            .read_to_string(&mut text)
            .context("reading input (is it UTF-8?)")?;
        serde_json::to_writer_pretty(&mut out, &scan_to_json(&guard, &text))?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}
