//! PII evaluation: reads JSONL `{"text", "expect": category|null, "kind"}` (stdin or the
//! file given as first argument, see `scripts/guard/gen_pii_eval.py`) and prints recall per
//! category and the false-positive rate per negative kind.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};

use palisade_guard::{Guard, GuardConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let input: Box<dyn BufRead> = match std::env::args().nth(1) {
        Some(path) => Box::new(BufReader::new(std::fs::File::open(path)?)),
        None => Box::new(BufReader::new(std::io::stdin())),
    };
    let verbose = std::env::var_os("VERBOSE").is_some();
    let guard = Guard::new(&GuardConfig::default())?;
    let mut recall: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut fps: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut fp_cats: BTreeMap<String, u64> = BTreeMap::new();
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let row: serde_json::Value = serde_json::from_str(&line)?;
        let text = row["text"].as_str().unwrap_or_default();
        let kind = row["kind"].as_str().unwrap_or("?").to_owned();
        let v = guard.scan(text);
        let cats: Vec<&str> = v
            .pii
            .detections
            .iter()
            .map(|d| d.entity_type.as_str())
            .collect();
        match row["expect"].as_str() {
            Some(expect) => {
                let e = recall.entry(expect.to_owned()).or_default();
                e.1 += 1;
                if cats.contains(&expect) {
                    e.0 += 1;
                } else if verbose {
                    println!("MISS {expect}: {text:?} -> {cats:?}");
                }
            }
            None => {
                let e = fps.entry(kind).or_default();
                e.1 += 1;
                if !cats.is_empty() {
                    e.0 += 1;
                    for c in &cats {
                        *fp_cats.entry((*c).to_owned()).or_default() += 1;
                    }
                    if verbose {
                        println!("FP {text:?} -> {cats:?}");
                    }
                }
            }
        }
    }
    let (mut hit, mut all) = (0, 0);
    println!("== recall per category");
    for (cat, (h, n)) in &recall {
        hit += h;
        all += n;
        println!(
            "  {cat:<26} {h:>4}/{n:<4} {:.3}",
            *h as f64 / (*n).max(1) as f64
        );
    }
    println!(
        "  {:<26} {hit:>4}/{all:<4} {:.3}",
        "ALL",
        hit as f64 / all.max(1) as f64
    );
    println!("== false positives (any detection on a negative)");
    let (mut fp, mut neg) = (0, 0);
    for (kind, (h, n)) in &fps {
        fp += h;
        neg += n;
        println!(
            "  {kind:<26} {h:>4}/{n:<4} {:.1} %",
            *h as f64 * 100.0 / (*n).max(1) as f64
        );
    }
    println!(
        "  {:<26} {fp:>4}/{neg:<4} {:.1} %",
        "ALL",
        fp as f64 * 100.0 / neg.max(1) as f64
    );
    println!("== categories firing on negatives: {fp_cats:?}");
    Ok(())
}
