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
    /// Compute the statistics of `bytes` (branch-light single pass).
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
