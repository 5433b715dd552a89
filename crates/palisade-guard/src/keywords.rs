//! The keyword prefilter's automaton, walked in two interleaved halves.
//!
//! Scanning with a DFA is bound by the latency of one table load per byte (each
//! transition depends on the previous state). Splitting the text into two halves that
//! overlap by the longest keyword minus one byte, and stepping both halves in the same
//! loop, gives the processor two independent chains. Every keyword occurrence lies
//! entirely inside one of the halves, so the set of keywords found is exactly that of one
//! pass over the whole text (the straightforward path keeps the `AhoCorasick` overlapping
//! iterator, and the differential tests compare the two).

use aho_corasick::automaton::Automaton;
use aho_corasick::dfa::DFA;
use aho_corasick::{Anchored, MatchKind, StartKind};

use crate::error::GuardError;

/// A keyword set compiled for [`KeywordScan::for_each_keyword`].
pub(crate) struct KeywordScan {
    dfa: DFA,
    start: aho_corasick::automaton::StateID,
    /// Longest keyword in bytes, minus one: how far the first half runs past the middle.
    overlap: usize,
}

/// Texts shorter than this are walked in one chain.
const SPLIT_MIN: usize = 512;

impl KeywordScan {
    /// Compile `keywords` (matched ASCII-case-insensitively, as the prefilters are).
    pub(crate) fn new(keywords: &[String]) -> Result<Self, GuardError> {
        let dfa = DFA::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .start_kind(StartKind::Unanchored)
            .prefilter(false)
            .build(keywords)?;
        let start = dfa
            .start_state(Anchored::No)
            .map_err(|e| GuardError::Config(format!("keyword automaton: {e}")))?;
        let overlap = dfa.max_pattern_len().saturating_sub(1);
        Ok(KeywordScan {
            dfa,
            start,
            overlap,
        })
    }

    /// Call `hit` with the index of every keyword occurring in `hay` (at least once for
    /// each such keyword, possibly more often).
    pub(crate) fn for_each_keyword(&self, hay: &[u8], mut hit: impl FnMut(usize)) {
        let dfa = &self.dfa;
        let mut report = |s| {
            if dfa.is_match(s) {
                for k in 0..dfa.match_len(s) {
                    hit(dfa.match_pattern(s, k).as_usize());
                }
            }
        };
        let n = hay.len();
        if n < SPLIT_MIN.max(4 * self.overlap) {
            let mut s = self.start;
            for &b in hay {
                s = dfa.next_state(Anchored::No, s, b);
                if dfa.is_special(s) {
                    report(s);
                }
            }
            return;
        }
        // First half: [0, mid + overlap); second half: [mid, n). A keyword starting
        // before `mid` ends before `mid + overlap`.
        let mid = n / 2;
        let first = hay.get(..mid + self.overlap).unwrap_or(hay);
        let second = hay.get(mid..).unwrap_or_default();
        let both = first.len().min(second.len());
        let (mut s1, mut s2) = (self.start, self.start);
        for (&a, &b) in first.iter().zip(second).take(both) {
            s1 = dfa.next_state(Anchored::No, s1, a);
            s2 = dfa.next_state(Anchored::No, s2, b);
            if dfa.is_special(s1) {
                report(s1);
            }
            if dfa.is_special(s2) {
                report(s2);
            }
        }
        for &a in first.get(both..).unwrap_or_default() {
            s1 = dfa.next_state(Anchored::No, s1, a);
            if dfa.is_special(s1) {
                report(s1);
            }
        }
        for &b in second.get(both..).unwrap_or_default() {
            s2 = dfa.next_state(Anchored::No, s2, b);
            if dfa.is_special(s2) {
                report(s2);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aho_corasick::AhoCorasickBuilder;

    /// The same keyword set as the overlapping iterator of an `AhoCorasick` over the
    /// same keywords, on random texts short and long (matches across the middle too).
    #[test]
    fn equals_overlapping_iterator() {
        let keywords: Vec<String> = [
            "ignore",
            "ignor",
            "gnore",
            "all",
            "new",
            "ne",
            "you are now",
            "d.a.n",
            "<|",
            "```",
            "aaaa",
            "a",
            "ab",
            "ba",
            "гнорируй",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let Ok(scan) = KeywordScan::new(&keywords) else {
            panic!("build")
        };
        let Ok(ac) = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(&keywords)
        else {
            panic!("build")
        };
        let pieces = [
            "IGNORE",
            "ignore",
            " ",
            "x",
            "a",
            "b",
            "you are now",
            "d.a.n",
            "<|",
            "`",
            "ne",
            "w",
            "игнорируй",
            "я",
        ];
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for round in 0..2000 {
            let mut text = String::new();
            let pieces_n = if round % 4 == 0 { 400 } else { 30 };
            for _ in 0..pieces_n {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                text.push_str(pieces[(x % pieces.len() as u64) as usize]);
            }
            let mut want = vec![false; keywords.len()];
            for m in ac.find_overlapping_iter(&text) {
                want[m.pattern().as_usize()] = true;
            }
            let mut got = vec![false; keywords.len()];
            scan.for_each_keyword(text.as_bytes(), |i| got[i] = true);
            assert_eq!(got, want, "{text:?}");
        }
    }
}
