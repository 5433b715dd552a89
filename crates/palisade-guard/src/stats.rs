//! One pass over the input computing what lets the detectors skip work on clean text.

/// Byte statistics of a text.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct TextStats {
    /// The text is pure ASCII.
    pub ascii: bool,
    /// Some non-word, non-space ASCII byte sits between two ASCII word bytes (the only
    /// thing normalisation changes in ASCII text).
    pub ascii_separator: bool,
    /// Longest run of consecutive ASCII digits.
    pub max_run: usize,
    /// Longest digit cluster (digits joined by single ` `, `-`, `/` or `.`), in digits.
    pub max_cluster: usize,
    /// Longest ASCII alphanumeric token holding both letters and digits.
    pub max_mixed: usize,
    /// Longest run of `[A-Za-z0-9+/]`.
    pub max_b64_run: usize,
}

const DIGIT: u8 = 1;
const ALPHA: u8 = 2;
const B64: u8 = 4;
const WORD: u8 = 8;
const OTHER: u8 = 16; // ASCII, not word, not whitespace
const SEP: u8 = 32; // joins digit groups: space - / .

const fn flags() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut f = 0;
        if b.is_ascii_digit() {
            f |= DIGIT | B64 | WORD;
        } else if b.is_ascii_alphabetic() {
            f |= ALPHA | B64 | WORD;
        } else if b == b'_' {
            f |= WORD;
        } else if b < 0x80 && ascii_class_const(b) == 2 {
            f |= OTHER;
        }
        if b == b'+' || b == b'/' {
            f |= B64;
        }
        if b == b' ' || b == b'-' || b == b'/' || b == b'.' {
            f |= SEP;
        }
        t[i] = f;
        i += 1;
    }
    t
}

const fn ascii_class_const(b: u8) -> u8 {
    if b == b'_' || b.is_ascii_alphanumeric() {
        1
    } else if matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0x1c..=0x1f) {
        0
    } else {
        2
    }
}

static FLAGS: [u8; 256] = flags();

impl TextStats {
    /// Compute the statistics of `bytes` in one pass. Runs of ASCII letters (most of
    /// prose) are skipped in a tight loop and applied at once; every other byte goes
    /// through the general per-byte update.
    pub fn of(bytes: &[u8]) -> TextStats {
        let mut st = TextStats {
            ascii: bytes.is_ascii(),
            ..TextStats::default()
        };
        let (mut run, mut cluster, mut sep) = (0usize, 0usize, false);
        let (mut tok, mut tok_digit, mut tok_alpha) = (0usize, false, false);
        let mut b64 = 0usize;
        let (mut f1, mut f2) = (0u8, 0u8);
        let mut separator = false;
        let n = bytes.len();
        let mut i = 0;
        while i < n {
            let f = FLAGS[bytes[i] as usize];
            if f & ALPHA != 0 {
                // A run of letters: the per-byte updates below, applied for the run.
                let mut j = i + 1;
                while j < n && FLAGS[bytes[j] as usize] & ALPHA != 0 {
                    j += 1;
                }
                let len = j - i;
                separator |= (f1 & OTHER != 0) & (f2 & WORD != 0);
                f2 = if len >= 2 { f } else { f1 };
                f1 = f;
                b64 += len;
                st.max_b64_run = st.max_b64_run.max(b64);
                run = 0;
                cluster = 0;
                sep = false;
                tok += len;
                tok_alpha = true;
                if tok_digit {
                    st.max_mixed = st.max_mixed.max(tok);
                }
                i = j;
                continue;
            }
            if f == 0 {
                // A run of bytes without flags (non-ASCII bytes, control characters):
                // each one resets every run.
                let mut j = i + 1;
                while j < n && FLAGS[bytes[j] as usize] == 0 {
                    j += 1;
                }
                f2 = if j - i >= 2 { 0 } else { f1 };
                f1 = 0;
                (b64, run, cluster, sep) = (0, 0, 0, false);
                (tok, tok_digit, tok_alpha) = (0, false, false);
                i = j;
                continue;
            }
            let digit = f & DIGIT != 0;
            let alnum = f & (DIGIT | ALPHA) != 0;
            separator |= (f & WORD != 0) & (f1 & OTHER != 0) & (f2 & WORD != 0);
            f2 = f1;
            f1 = f;
            b64 = if f & B64 != 0 { b64 + 1 } else { 0 };
            st.max_b64_run = st.max_b64_run.max(b64);
            run = if digit { run + 1 } else { 0 };
            st.max_run = st.max_run.max(run);
            let keep = (f & SEP != 0) & (cluster > 0) & !sep;
            cluster = if digit {
                cluster + 1
            } else if keep {
                cluster
            } else {
                0
            };
            sep = !digit & keep;
            st.max_cluster = st.max_cluster.max(cluster);
            tok = if alnum { tok + 1 } else { 0 };
            tok_digit = (tok_digit | digit) & alnum;
            tok_alpha = (tok_alpha | (f & ALPHA != 0)) & alnum;
            if tok_digit & tok_alpha {
                st.max_mixed = st.max_mixed.max(tok);
            }
            i += 1;
        }
        st.ascii_separator = separator;
        st
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(bytes: &[u8]) -> TextStats {
        let mut st = TextStats {
            ascii: bytes.is_ascii(),
            ..TextStats::default()
        };
        let (mut run, mut cluster, mut sep) = (0usize, 0usize, false);
        let (mut tok, mut tok_digit, mut tok_alpha) = (0usize, false, false);
        let mut b64 = 0usize;
        let (mut f1, mut f2) = (0u8, 0u8);
        let mut separator = false;
        for &b in bytes {
            let f = FLAGS[b as usize];
            let digit = f & DIGIT != 0;
            let alnum = f & (DIGIT | ALPHA) != 0;
            separator |= (f & WORD != 0) & (f1 & OTHER != 0) & (f2 & WORD != 0);
            f2 = f1;
            f1 = f;
            b64 = if f & B64 != 0 { b64 + 1 } else { 0 };
            st.max_b64_run = st.max_b64_run.max(b64);
            run = if digit { run + 1 } else { 0 };
            st.max_run = st.max_run.max(run);
            let keep = (f & SEP != 0) & (cluster > 0) & !sep;
            cluster = if digit {
                cluster + 1
            } else if keep {
                cluster
            } else {
                0
            };
            sep = !digit & keep;
            st.max_cluster = st.max_cluster.max(cluster);
            tok = if alnum { tok + 1 } else { 0 };
            tok_digit = (tok_digit | digit) & alnum;
            tok_alpha = (tok_alpha | (f & ALPHA != 0)) & alnum;
            if tok_digit & tok_alpha {
                st.max_mixed = st.max_mixed.max(tok);
            }
        }
        st.ascii_separator = separator;
        st
    }

    fn same(a: &TextStats, b: &TextStats) -> bool {
        (
            a.ascii,
            a.ascii_separator,
            a.max_run,
            a.max_cluster,
            a.max_mixed,
            a.max_b64_run,
        ) == (
            b.ascii,
            b.ascii_separator,
            b.max_run,
            b.max_cluster,
            b.max_mixed,
            b.max_b64_run,
        )
    }

    #[test]
    fn letter_runs_equal_the_per_byte_pass() {
        // Deterministic pseudo-random texts over an alphabet that exercises every flag.
        let alphabet = b"aZk09 -/.+_=\t'x1\xc3\xa9";
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for len in 0..400usize {
            let mut text = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                text.push(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            let (a, b) = (TextStats::of(&text), reference(&text));
            assert!(
                same(&a, &b),
                "{:?}: {a:?} vs {b:?}",
                String::from_utf8_lossy(&text)
            );
        }
        for text in [
            "card 4539 1488 0343 6467 x86 ok",
            "a.b",
            "ab.cd",
            "x1y2 z",
            "don't",
        ] {
            assert!(same(
                &TextStats::of(text.as_bytes()),
                &reference(text.as_bytes())
            ));
        }
    }

    #[test]
    fn stats() {
        let s = TextStats::of(b"card 4539 1488 0343 6467 x86 ok");
        assert!(s.ascii);
        assert!(!s.ascii_separator);
        assert_eq!(s.max_run, 4);
        assert_eq!(s.max_cluster, 16);
        assert_eq!(s.max_mixed, 3);
        let s = TextStats::of("don't é".as_bytes());
        assert!(!s.ascii);
        assert!(s.ascii_separator);
        assert_eq!(TextStats::of(&[b'A'; 60]).max_b64_run, 60);
    }
}
