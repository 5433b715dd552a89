//! Fuzz `Guard::scan`: never panics (never fail-closed), spans are valid, redaction never
//! leaves a detected span in the stored text, the output is valid UTF-8 (by type), and
//! the fast path gives the same verdict as the straightforward one (`scan_reference`).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use palisade_guard::{Action, BLOCK_PLACEHOLDER, Guard, GuardConfig};

fn guard() -> &'static Guard {
    static G: OnceLock<Guard> = OnceLock::new();
    G.get_or_init(|| match Guard::new(&GuardConfig::default()) {
        Ok(g) => g,
        Err(e) => panic!("guard: {e}"),
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let v = guard().scan(&text);
    assert!(!v.is_fail_closed(), "internal failure on {text:?}");
    for p in &v.injection.patterns {
        assert!(
            text.get(p.start..p.end).is_some(),
            "bad injection span {p:?}"
        );
    }
    for d in &v.pii.detections {
        let span = text.get(d.start..d.end);
        assert!(span.is_some(), "bad pii span {d:?}");
        if let Some(span) = span {
            if v.pii.action == Action::Block {
                assert_eq!(v.redacted_text, BLOCK_PLACEHOLDER);
            } else if span.len() >= 4 {
                // The exact detected value must not survive redaction.
                assert!(
                    !v.redacted_text.contains(span) || text.matches(span).count() > 1,
                    "{span:?} survived redaction: {:?}",
                    v.redacted_text
                );
            }
        }
    }
    if v.pii.detections.is_empty() {
        assert_eq!(v.redacted_text, text);
    }
    assert_eq!(v, guard().scan_reference(&text), "fast and reference paths differ");
});
