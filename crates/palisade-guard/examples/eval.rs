//! Injection evaluation: reads JSONL `{"text": …, "label": 0|1, "corpus": …}` (stdin or the
//! file given as first argument) and prints precision, recall, F1 and benign
//! false-positive rate per corpus for the reference patterns, the learned classifier and
//! both combined, then per-category hit counts. "Detected" means injection action ≠ allow.
//!
//! Corpora whose name starts with `lookalike` (our held-out benign look-alikes and
//! paraphrased attacks) are reported on their own, not in the "all" line, and every
//! message of theirs the combined guard gets wrong is listed.
//!
//! `python3 scripts/guard/eval_injection.py` prepares the test splits and runs this.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};

use palisade_guard::{Action, Guard, GuardConfig};

#[derive(Default, Clone, Copy)]
struct Counts {
    tp: u64,
    fp: u64,
    fn_: u64,
    tn: u64,
}

impl Counts {
    fn add(&mut self, predicted: bool, label: bool) {
        match (predicted, label) {
            (true, true) => self.tp += 1,
            (true, false) => self.fp += 1,
            (false, true) => self.fn_ += 1,
            (false, false) => self.tn += 1,
        }
    }

    fn line(&self) -> String {
        let p = self.tp as f64 / (self.tp + self.fp).max(1) as f64;
        let r = self.tp as f64 / (self.tp + self.fn_).max(1) as f64;
        let f1 = if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        };
        let fpr = self.fp as f64 / (self.fp + self.tn).max(1) as f64;
        format!(
            "P {p:.3}  R {r:.3}  F1 {f1:.3}  benign FPR {:.1} %  (n={})",
            fpr * 100.0,
            self.tp + self.fp + self.fn_ + self.tn
        )
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let input: Box<dyn BufRead> = match std::env::args().nth(1) {
        Some(path) => Box::new(BufReader::new(std::fs::File::open(path)?)),
        None => Box::new(BufReader::new(std::io::stdin())),
    };
    // The reference's patterns alone, and the default configuration (patterns plus the
    // learned classifier).
    let patterns = Guard::new(&GuardConfig {
        learned_classifier: false,
        ..GuardConfig::default()
    })?;
    let combined = Guard::new(&GuardConfig::default())?;
    // Look-alike rows the combined guard gets wrong, listed at the end.
    let mut lookalike_errors: Vec<String> = Vec::new();
    let mut by_corpus: BTreeMap<String, [Counts; 3]> = BTreeMap::new();
    // category -> (hits on attacks, hits on benign)
    let mut cats: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let row: serde_json::Value = serde_json::from_str(&line)?;
        let text = row["text"].as_str().unwrap_or_default();
        let label = row["label"].as_i64().unwrap_or(0) == 1;
        let corpus = row["corpus"].as_str().unwrap_or("corpus").to_owned();
        let vp = patterns.scan(text);
        let vc = combined.scan(text);
        let learned_hit = vc
            .injection
            .patterns
            .iter()
            .any(|p| p.category == "learned_classifier");
        let detected = vc.injection.action != Action::Allow;
        if corpus.starts_with("lookalike") && detected != label {
            let what = if label {
                "missed attack"
            } else {
                "flagged benign"
            };
            let cats: Vec<&str> = vc
                .injection
                .patterns
                .iter()
                .map(|p| p.category.as_str())
                .collect();
            lookalike_errors.push(format!(
                "  {what}: {text:?} ({}, {cats:?}, p={:.3})",
                vc.injection.action,
                vc.injection.learned_probability.unwrap_or(0.0)
            ));
        }
        let c = by_corpus.entry(corpus).or_default();
        c[0].add(vp.injection.action != Action::Allow, label);
        c[1].add(learned_hit, label);
        c[2].add(vc.injection.action != Action::Allow, label);
        let mut seen: Vec<&str> = vc
            .injection
            .patterns
            .iter()
            .map(|p| p.category.as_str())
            .collect();
        seen.sort_unstable();
        seen.dedup();
        for cat in seen {
            let e = cats.entry(cat.to_owned()).or_default();
            if label {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
    }
    let mut total = [Counts::default(); 3];
    for (corpus, c) in &by_corpus {
        println!("== {corpus}");
        let lookalike = corpus.starts_with("lookalike");
        for (i, name) in ["patterns", "learned", "combined"].iter().enumerate() {
            println!("  {name:<9} {}", c[i].line());
            if lookalike {
                // Our own held-out set is reported separately, not in "all".
                continue;
            }
            total[i].tp += c[i].tp;
            total[i].fp += c[i].fp;
            total[i].fn_ += c[i].fn_;
            total[i].tn += c[i].tn;
        }
    }
    println!("== all (packaged corpora)");
    for (i, name) in ["patterns", "learned", "combined"].iter().enumerate() {
        println!("  {name:<9} {}", total[i].line());
    }
    println!("== per category (combined guard): hits on attacks / hits on benign, precision");
    for (cat, (a, b)) in &cats {
        println!(
            "  {cat:<22} {a:>5} / {b:<5} P {:.3}",
            *a as f64 / (a + b).max(1) as f64
        );
    }
    if !lookalike_errors.is_empty() {
        println!("== look-alike errors (combined guard)");
        for line in &lookalike_errors {
            println!("{line}");
        }
    }
    Ok(())
}
