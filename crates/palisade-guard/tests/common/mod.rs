//! Shared helpers for the integration tests.

#![allow(dead_code)]

use std::sync::OnceLock;

use palisade_guard::{Guard, GuardConfig, Verdict};

/// The reference's detectors alone (the learned classifier off), built once
/// per test binary: these tests pin the reference's pattern behaviour, and
/// `tests/learned.rs` covers what the classifier (on by default) adds.
pub fn guard() -> &'static Guard {
    static GUARD: OnceLock<Guard> = OnceLock::new();
    let config = GuardConfig {
        learned_classifier: false,
        ..GuardConfig::default()
    };
    GUARD.get_or_init(|| match Guard::new(&config) {
        Ok(g) => g,
        Err(e) => panic!("default guard must build: {e}"),
    })
}

/// Scan with the reference's detectors.
pub fn scan(text: &str) -> Verdict {
    guard().scan(text)
}

/// Injection categories of a verdict, deduplicated.
pub fn inj_cats(v: &Verdict) -> Vec<String> {
    let mut c: Vec<String> = v
        .injection
        .patterns
        .iter()
        .map(|p| p.category.clone())
        .collect();
    c.dedup();
    c
}

/// Entity types of a verdict's PII detections.
pub fn pii_cats(v: &Verdict) -> Vec<String> {
    v.pii
        .detections
        .iter()
        .map(|d| d.entity_type.clone())
        .collect()
}

/// Benign inputs that must stay clean (reference 4.2 list, plus look-alikes).
pub const BENIGN: &[&str] = &[
    "Hello!",
    "Hi there, how are you today?",
    "Good morning",
    "Show me my resources",
    "What is the status of my VMs?",
    "Is my virtual machine vm-web-01 running or stopped?",
    "How much of my CPU quota is left in project Alpha?",
    "What are my quota limits for storage?",
    "Can you explain my latest invoice?",
    "Why is the invoice for October higher than September?",
    "Which offerings are available for HPC workloads?",
    "How do I order the OpenStack tenant offering?",
    "I need to run a large molecular dynamics simulation on the HPC cluster. It needs \
     about 256 cores, 2 TB of memory and roughly 48 hours of wall time per job, and I \
     would like to submit 20 such jobs over the next month. Which partition and \
     allocation should I request, and how do I estimate the billing units I will consume?",
    "Tere! Kuidas ma saan oma projekti kvooti suurendada?",
    "Guten Tag, wie kann ich meine virtuelle Maschine neu starten?",
    "Bonjour, comment puis-je voir mes factures du mois dernier ?",
    "Hola, ¿cómo puedo crear un nuevo proyecto?",
    "Здравствуйте, как мне посмотреть мои ресурсы?",
    "🚀 Deploy done 🎉👍",
    "Use &lt;div&gt; and &amp; in the template &quot;x&quot;",
    r"Does the regex ^[a-z]+(\d{2,3})?$ match .* or \w+ or (a|b)*?",
    "Rename my_project_name please",
    "Create test-resource with user-data",
];
