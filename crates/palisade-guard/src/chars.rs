//! Per-character lookup table for non-ASCII characters: what normalisation steps 1–4 make
//! of a character, the word/space class of the result, and its lower-case form for the
//! learned classifier.
//!
//! The Unicode answers (compatibility decomposition, general category, alphabetic,
//! lower-case mapping) are table searches in `std` and the Unicode crates, tens of
//! nanoseconds each. The table is split into blocks of 256 code points, each computed on
//! first use (about 30 µs) and shared by every thread afterwards, so text in one script
//! pays a couple of array loads per character. Every entry is computed by the same
//! functions the straightforward path calls (`normalize::reference_char`,
//! `char::to_lowercase`), and a test compares the two for every code point.

use std::sync::OnceLock;

use crate::normalize::{is_space_char, is_word_char, reference_char};

/// What normalisation steps 1–4 make of one character.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Norm {
    /// Exactly this character (the character itself, its confusable, a space …).
    One(char),
    /// Nothing (stripped).
    Nothing,
    /// Several characters (ligatures, compatibility sequences): use the slow path.
    Several,
}

/// Table entry of one character.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CharInfo {
    /// Normalisation output of the character.
    pub norm: Norm,
    /// For [`Norm::One`]: the output is a word character (`\w`).
    pub word: bool,
    /// For [`Norm::One`]: the output is whitespace (`\s`).
    pub space: bool,
    /// For [`Norm::One`]: the output is one of the characters the `invisible_chars` or
    /// `unicode_tags` scanners look for.
    pub special: bool,
    /// `Some(l)` when `to_lowercase` yields exactly the one character `l`.
    pub lower: Option<char>,
    /// For `lower = Some(l)`: `l.is_alphanumeric()`.
    pub lower_alnum: bool,
}

const EMPTY: CharInfo = CharInfo {
    norm: Norm::Nothing,
    word: false,
    space: false,
    special: false,
    lower: None,
    lower_alnum: false,
};

/// Whether `c` is a character the `invisible_chars` (U+200B–U+200F, U+2028–U+202F,
/// U+2060–U+206F, U+FEFF) or `unicode_tags` (U+E0000–U+E007F) scanners match.
#[inline]
pub(crate) fn is_special(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}'
        | '\u{2028}'..='\u{202F}'
        | '\u{2060}'..='\u{206F}'
        | '\u{FEFF}'
        | '\u{E0000}'..='\u{E007F}')
}

fn compute(c: char) -> CharInfo {
    let seg = reference_char(c);
    let norm = match seg.as_slice() {
        [] => Norm::Nothing,
        [k] => Norm::One(*k),
        _ => Norm::Several,
    };
    let (word, space, special) = match norm {
        Norm::One(k) => (is_word_char(k), is_space_char(k), is_special(k)),
        _ => (false, false, false),
    };
    let mut lower = c.to_lowercase();
    let (lower, lower_alnum) = match (lower.next(), lower.next()) {
        (Some(l), None) => (Some(l), l.is_alphanumeric()),
        _ => (None, false),
    };
    CharInfo {
        norm,
        word,
        space,
        special,
        lower,
        lower_alnum,
    }
}

const BLOCKS: usize = 0x11_0000 >> 8;

type Block = [CharInfo; 256];

static TABLE: [OnceLock<Box<Block>>; BLOCKS] = [const { OnceLock::new() }; BLOCKS];

fn build(block: usize) -> Box<Block> {
    let mut b = Box::new([EMPTY; 256]);
    for (i, slot) in b.iter_mut().enumerate() {
        if let Some(c) = char::from_u32(((block << 8) | i) as u32) {
            *slot = compute(c);
        }
    }
    b
}

/// The table entry of `c` (any character; meant for non-ASCII ones).
#[inline]
pub(crate) fn info(c: char) -> CharInfo {
    let cp = c as usize;
    match TABLE.get(cp >> 8) {
        Some(cell) => {
            let block = cell.get_or_init(|| build(cp >> 8));
            block.get(cp & 0xFF).copied().unwrap_or_else(|| compute(c))
        }
        None => compute(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code point of the blocks natural text uses, and a sample of all the others:
    /// the table equals the direct computation.
    #[test]
    fn table_equals_direct_computation() {
        let check = |c: char| {
            let t = info(c);
            let seg = reference_char(c);
            match t.norm {
                Norm::One(k) => assert_eq!(seg, vec![k], "{c:?}"),
                Norm::Nothing => assert!(seg.is_empty(), "{c:?}"),
                Norm::Several => assert!(seg.len() > 1, "{c:?}"),
            }
            if let Norm::One(k) = t.norm {
                assert_eq!(t.word, is_word_char(k), "{c:?}");
                assert_eq!(t.space, is_space_char(k), "{c:?}");
                assert_eq!(t.special, is_special(k), "{c:?}");
            }
            let lower: Vec<char> = c.to_lowercase().collect();
            match t.lower {
                Some(l) => {
                    assert_eq!(lower, vec![l], "{c:?}");
                    assert_eq!(t.lower_alnum, l.is_alphanumeric(), "{c:?}");
                }
                None => assert!(lower.len() != 1, "{c:?}"),
            }
        };
        for cp in (0x80u32..0x3400).chain(0xA000..0x11_0000).step_by(1) {
            // Dense below U+3400 and in the compatibility / fullwidth / tag areas,
            // sparse elsewhere (the CJK ideograph blocks are uniform).
            let dense = cp < 0x3400
                || (0xF900..0x1_0000).contains(&cp)
                || (0x1_D400..0x1_D800).contains(&cp)
                || (0x1_F000..0x1_FB00).contains(&cp)
                || (0xE_0000..0xE_0200).contains(&cp);
            if !dense && cp % 7 != 0 {
                continue;
            }
            if let Some(c) = char::from_u32(cp) {
                check(c);
            }
        }
        for cp in (0x3400u32..0xA000).step_by(13) {
            if let Some(c) = char::from_u32(cp) {
                check(c);
            }
        }
    }
}
