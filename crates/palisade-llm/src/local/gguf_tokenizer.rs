//! The tokenizer of a GGUF model, built from the file's own metadata
//! (`tokenizer.ggml.*`): byte-level BPE as in GPT-2, with the model's
//! pre-tokenisation rule and its control tokens matched as whole tokens.
//!
//! Building it from the GGUF (instead of shipping a `tokenizer.json`) keeps
//! the model one self-describing file, which is what makes
//! `PALISADE_LLM_MODEL_PATH` work for other byte-level BPE models too.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use candle_core::quantized::gguf_file::{Content, Value};
use fancy_regex::Regex;

use super::LocalError;

/// GPT-2's pre-tokenisation rule: contractions, words with an optional
/// leading space, numbers, punctuation runs, and whitespace (a run of
/// whitespace before a word leaves its last space to that word).
const GPT2_PATTERN: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

/// Llama 3's rule (`tokenizer.ggml.pre = llama-bpe`).
const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// GGUF token type of control tokens (`<|im_start|>`, `<|endoftext|>`, ...).
const TOKEN_TYPE_CONTROL: i32 = 3;
/// GGUF token type of user-defined tokens, also matched as whole tokens.
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// A byte-level BPE tokenizer read from GGUF metadata.
#[derive(Debug, Clone)]
pub struct GgufTokenizer {
    /// Raw bytes of every token (control tokens: their literal text).
    token_bytes: Vec<Vec<u8>>,
    /// Token text (in GPT-2's byte-to-unicode alphabet) → id.
    vocab: HashMap<String, u32>,
    /// (left, right) → (rank, merged token).
    merges: HashMap<(u32, u32), (u32, u32)>,
    /// The token of each single byte. Real vocabularies lack a few control
    /// bytes (SmolLM2 has no token for 0x04, for example); such bytes are
    /// dropped, as Hugging Face's BPE does without an unknown token.
    byte_tokens: [Option<u32>; 256],
    /// Whole-token strings (control and user-defined), longest first so
    /// that a longer token wins over a prefix of it.
    specials: Vec<(String, u32)>,
    /// Control tokens are never answer text.
    control: Vec<bool>,
    pattern: Regex,
    /// SmolLM/StarCoder split every digit on its own before the main rule.
    split_digits: bool,
    bos: Option<u32>,
    eos: u32,
}

impl GgufTokenizer {
    /// Builds the tokenizer from a GGUF header.
    pub fn from_gguf(content: &Content) -> Result<Self, LocalError> {
        let md = &content.metadata;
        let model = string(md, "tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(LocalError::Unsupported(format!(
                "tokenizer model {model:?}: only byte-level BPE (\"gpt2\") tokenizers are supported"
            )));
        }
        let tokens: Vec<&str> = array(md, "tokenizer.ggml.tokens")?
            .iter()
            .map(|v| v.to_string().map(String::as_str))
            .collect::<Result<_, _>>()
            .map_err(|err| invalid(format!("tokenizer.ggml.tokens: {err}")))?;
        let types: Vec<i32> = match md.get("tokenizer.ggml.token_type") {
            Some(value) => value
                .to_vec()
                .and_then(|items| items.iter().map(Value::to_i32).collect())
                .map_err(|err| invalid(format!("tokenizer.ggml.token_type: {err}")))?,
            None => vec![1; tokens.len()],
        };
        let merges: Vec<&str> = array(md, "tokenizer.ggml.merges")?
            .iter()
            .map(|v| v.to_string().map(String::as_str))
            .collect::<Result<_, _>>()
            .map_err(|err| invalid(format!("tokenizer.ggml.merges: {err}")))?;
        let pre = md
            .get("tokenizer.ggml.pre")
            .and_then(|v| v.to_string().ok())
            .map(String::as_str)
            .unwrap_or("default");
        let bos = md
            .get("tokenizer.ggml.bos_token_id")
            .and_then(|v| v.to_u32().ok());
        let eos = md
            .get("tokenizer.ggml.eos_token_id")
            .ok_or_else(|| invalid("no tokenizer.ggml.eos_token_id".into()))?
            .to_u32()
            .map_err(|err| invalid(format!("tokenizer.ggml.eos_token_id: {err}")))?;
        Self::new(&tokens, &types, &merges, pre, bos, eos)
    }

    /// Builds the tokenizer from its parts (as stored in GGUF metadata).
    pub fn new(
        tokens: &[&str],
        types: &[i32],
        merges: &[&str],
        pre: &str,
        bos: Option<u32>,
        eos: u32,
    ) -> Result<Self, LocalError> {
        let decode_table = unicode_to_byte();
        let mut vocab = HashMap::with_capacity(tokens.len());
        let mut token_bytes = Vec::with_capacity(tokens.len());
        let mut specials = Vec::new();
        let mut control = Vec::with_capacity(tokens.len());
        for (id, text) in tokens.iter().enumerate() {
            let id = u32::try_from(id).map_err(|_| invalid("too many tokens".into()))?;
            let kind = types.get(id as usize).copied().unwrap_or(1);
            let whole = kind == TOKEN_TYPE_CONTROL || kind == TOKEN_TYPE_USER_DEFINED;
            control.push(kind == TOKEN_TYPE_CONTROL);
            if whole {
                specials.push(((*text).to_string(), id));
                token_bytes.push(text.as_bytes().to_vec());
            } else {
                // Characters outside the byte alphabet should not occur; keep
                // them as their UTF-8 so decoding stays lossless.
                let mut bytes = Vec::with_capacity(text.len());
                for ch in text.chars() {
                    match decode_table.get(&ch) {
                        Some(&b) => bytes.push(b),
                        None => bytes.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes()),
                    }
                }
                token_bytes.push(bytes);
            }
            vocab.entry((*text).to_string()).or_insert(id);
        }
        specials.retain(|(text, _)| !text.is_empty());
        specials.sort_by_key(|(text, _)| std::cmp::Reverse(text.len()));

        let encode_table = byte_to_unicode();
        let mut byte_tokens = [None; 256];
        for (slot, ch) in byte_tokens.iter_mut().zip(encode_table) {
            *slot = vocab.get(ch.to_string().as_str()).copied();
        }
        if byte_tokens.iter().flatten().count() < 128 {
            return Err(invalid(
                "the vocabulary lacks most single-byte tokens; not a byte-level BPE".into(),
            ));
        }

        let mut merge_map = HashMap::with_capacity(merges.len());
        for (rank, line) in merges.iter().enumerate() {
            let Some((left, right)) = line.split_once(' ') else {
                continue;
            };
            let (Some(&l), Some(&r), Some(&m)) = (
                vocab.get(left),
                vocab.get(right),
                vocab.get(format!("{left}{right}").as_str()),
            ) else {
                continue;
            };
            let rank = u32::try_from(rank).map_err(|_| invalid("too many merges".into()))?;
            merge_map.entry((l, r)).or_insert((rank, m));
        }

        let (pattern, split_digits) = match pre {
            "smollm" | "starcoder" | "refact" => (GPT2_PATTERN, true),
            "llama-bpe" | "llama3" => (LLAMA3_PATTERN, false),
            _ => (GPT2_PATTERN, false),
        };
        let pattern =
            Regex::new(pattern).map_err(|err| invalid(format!("pre-tokenizer: {err}")))?;
        if eos as usize >= tokens.len() || bos.is_some_and(|b| b as usize >= tokens.len()) {
            return Err(invalid("bos/eos token id outside the vocabulary".into()));
        }
        Ok(GgufTokenizer {
            token_bytes,
            vocab,
            merges: merge_map,
            byte_tokens,
            specials,
            control,
            pattern,
            split_digits,
            bos,
            eos,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.token_bytes.len()
    }

    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }

    pub fn eos_id(&self) -> u32 {
        self.eos
    }

    /// The id of a token given by its exact text (`<|im_end|>`).
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.vocab.get(text).copied()
    }

    /// The literal text of a token, lossy for a token that is part of a
    /// multi-byte character.
    pub fn token_text(&self, id: u32) -> String {
        String::from_utf8_lossy(self.token_bytes(id)).into_owned()
    }

    /// The raw bytes of a token (empty for an unknown id).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.token_bytes
            .get(id as usize)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Whether the token is a control token (never part of answer text).
    pub fn is_control(&self, id: u32) -> bool {
        self.control.get(id as usize).copied().unwrap_or(false)
    }

    /// Encodes text. With `parse_special`, control-token strings such as
    /// `<|im_start|>` become their single token; without, they are plain
    /// text — which is how user-written content must be encoded, so that a
    /// message cannot forge a turn boundary.
    ///
    /// Time is O(n log n) in the length of the text (see [`Self::bpe`]).
    pub fn encode(&self, text: &str, parse_special: bool) -> Vec<u32> {
        let mut ids = Vec::with_capacity(text.len() / 3 + 1);
        let mut scratch = Scratch::default();
        if !parse_special || self.specials.is_empty() {
            self.encode_plain(text, &mut ids, &mut scratch);
            return ids;
        }
        let mut rest = text;
        while !rest.is_empty() {
            match self.find_special(rest) {
                Some((start, len, id)) => {
                    self.encode_plain(&rest[..start], &mut ids, &mut scratch);
                    ids.push(id);
                    rest = &rest[start + len..];
                }
                None => {
                    self.encode_plain(rest, &mut ids, &mut scratch);
                    break;
                }
            }
        }
        ids
    }

    /// The earliest whole-token string in `text` (longest at that position).
    fn find_special(&self, text: &str) -> Option<(usize, usize, u32)> {
        let mut best: Option<(usize, usize, u32)> = None;
        for (special, id) in &self.specials {
            if let Some(pos) = text.find(special.as_str()) {
                let better = match best {
                    None => true,
                    Some((best_pos, best_len, _)) => {
                        pos < best_pos || (pos == best_pos && special.len() > best_len)
                    }
                };
                if better {
                    best = Some((pos, special.len(), *id));
                }
            }
        }
        best
    }

    fn encode_plain(&self, text: &str, ids: &mut Vec<u32>, scratch: &mut Scratch) {
        if self.split_digits {
            let mut start = 0;
            for (pos, ch) in text.char_indices() {
                if ch.is_numeric() {
                    self.encode_chunk(&text[start..pos], ids, scratch);
                    self.encode_chunk(&text[pos..pos + ch.len_utf8()], ids, scratch);
                    start = pos + ch.len_utf8();
                }
            }
            self.encode_chunk(&text[start..], ids, scratch);
        } else {
            self.encode_chunk(text, ids, scratch);
        }
    }

    /// Pre-tokenises with the regex, then runs BPE on every piece.
    fn encode_chunk(&self, text: &str, ids: &mut Vec<u32>, scratch: &mut Scratch) {
        let mut pos = 0;
        while pos < text.len() {
            let piece_end = match self.pattern.find_from_pos(text, pos) {
                Ok(Some(found)) if found.start() == pos && found.end() > pos => found.end(),
                // The rule covers every character, so this only guards
                // against a regex engine error (backtrack limit): take the
                // rest as one piece rather than fail the request.
                _ => text.len(),
            };
            self.bpe(&text.as_bytes()[pos..piece_end], ids, scratch);
            pos = piece_end;
        }
    }

    /// BPE on one piece: start from single bytes, repeatedly merge the
    /// adjacent pair with the lowest merge rank (the leftmost one among
    /// equals), until no pair merges.
    ///
    /// Rescanning every pair after each merge (the textbook loop) is
    /// quadratic, and one piece can be a whole 50,000-letter "word": that
    /// took seconds on the only inference thread. Here the symbols are a
    /// linked list over their original positions and the candidate merges
    /// wait in a min-heap ordered by (rank, position), so each merge costs
    /// O(log n). An entry whose pair changed meanwhile is recognised when
    /// it is popped (the pair at its position no longer has its rank; ranks
    /// are unique per pair) and skipped. Ordering by original position is
    /// ordering by current position, so the result is exactly the
    /// textbook loop's.
    fn bpe(&self, bytes: &[u8], ids: &mut Vec<u32>, scratch: &mut Scratch) {
        // Positions are `u32`; a piece of 4 GiB (far beyond any request)
        // is merged in parts rather than overflow them.
        if bytes.len() >= NONE as usize {
            for part in bytes.chunks(NONE as usize / 2) {
                self.bpe(part, ids, scratch);
            }
            return;
        }
        let symbols = &mut scratch.symbols;
        symbols.clear();
        for token in bytes.iter().filter_map(|&b| self.byte_tokens[b as usize]) {
            let at = symbols.len() as u32;
            symbols.push(Symbol {
                id: token,
                prev: at.wrapping_sub(1),
                next: at + 1,
            });
        }
        match symbols.len() {
            0 => return,
            1 => {
                ids.push(symbols[0].id);
                return;
            }
            _ => {}
        }
        if let Some(last) = symbols.last_mut() {
            last.next = NONE;
        }
        let heap = &mut scratch.heap;
        heap.clear();
        for (left, pair) in symbols.windows(2).enumerate() {
            if let Some(&(rank, _)) = self.merges.get(&(pair[0].id, pair[1].id)) {
                heap.push(Reverse((rank, left as u32)));
            }
        }
        while let Some(Reverse((rank, left))) = heap.pop() {
            let Symbol { id, prev, next } = symbols[left as usize];
            if id == GONE || next == NONE {
                continue;
            }
            let right = symbols[next as usize];
            let Some(&(current_rank, merged)) = self.merges.get(&(id, right.id)) else {
                continue;
            };
            if current_rank != rank {
                continue;
            }
            symbols[left as usize].id = merged;
            symbols[left as usize].next = right.next;
            symbols[next as usize].id = GONE;
            if right.next != NONE {
                symbols[right.next as usize].prev = left;
                if let Some(&(rank, _)) =
                    self.merges.get(&(merged, symbols[right.next as usize].id))
                {
                    heap.push(Reverse((rank, left)));
                }
            }
            if prev != NONE
                && let Some(&(rank, _)) = self.merges.get(&(symbols[prev as usize].id, merged))
            {
                heap.push(Reverse((rank, prev)));
            }
        }
        // Position 0 is never merged away (only right-hand symbols are).
        let mut at = 0;
        while at != NONE {
            let symbol = symbols[at as usize];
            ids.push(symbol.id);
            at = symbol.next;
        }
    }

    /// Decodes ids to text (control tokens included literally); invalid
    /// UTF-8 becomes U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids
            .iter()
            .flat_map(|&id| self.token_bytes(id).iter().copied())
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// "No neighbour" in a [`Symbol`] link.
const NONE: u32 = u32::MAX;
/// The id of a symbol merged into its left neighbour.
const GONE: u32 = u32::MAX;

/// One symbol of a piece during BPE: a token and its live neighbours
/// (indices into the piece's symbols, [`NONE`] at the ends). `u32` indices
/// keep the list compact; pieces are far shorter than 4 GiB.
#[derive(Debug, Clone, Copy)]
struct Symbol {
    id: u32,
    prev: u32,
    next: u32,
}

/// Buffers reused for every piece of one `encode` call: ordinary text is
/// thousands of short pieces, and allocating per piece would cost more
/// than the merging.
#[derive(Default)]
struct Scratch {
    symbols: Vec<Symbol>,
    /// Candidate merges: (rank, position of the left symbol), smallest first.
    heap: BinaryHeap<Reverse<(u32, u32)>>,
}

fn invalid(detail: String) -> LocalError {
    LocalError::Tokenizer(detail)
}

fn string<'a>(md: &'a HashMap<String, Value>, key: &str) -> Result<&'a str, LocalError> {
    md.get(key)
        .ok_or_else(|| invalid(format!("no {key} in the model metadata")))?
        .to_string()
        .map(String::as_str)
        .map_err(|err| invalid(format!("{key}: {err}")))
}

fn array<'a>(md: &'a HashMap<String, Value>, key: &str) -> Result<&'a Vec<Value>, LocalError> {
    md.get(key)
        .ok_or_else(|| invalid(format!("no {key} in the model metadata")))?
        .to_vec()
        .map_err(|err| invalid(format!("{key}: {err}")))
}

/// GPT-2's reversible byte → printable character mapping: printable Latin-1
/// bytes stand for themselves, the others are shifted to U+0100 and up, so
/// every byte sequence is a string of visible characters.
pub(crate) fn byte_to_unicode() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for byte in 0..=255u8 {
        let printable = matches!(byte, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        let code = if printable {
            u32::from(byte)
        } else {
            let code = next;
            next += 1;
            code
        };
        // Every code used is below 0x144: always a valid scalar value.
        table[byte as usize] = char::from_u32(code).unwrap_or('\u{FFFD}');
    }
    table
}

fn unicode_to_byte() -> HashMap<char, u8> {
    byte_to_unicode()
        .iter()
        .enumerate()
        .map(|(byte, &ch)| (ch, byte as u8))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy vocabulary: bytes for "a", "b", " ", merges "a b" → "ab" and
    /// "Ġ ab" → "Ġab", plus a control token.
    fn toy() -> GgufTokenizer {
        let table = byte_to_unicode();
        let mut tokens: Vec<String> = table.iter().map(|c| c.to_string()).collect();
        tokens.push("ab".into());
        tokens.push("Ġab".into());
        tokens.push("<|end|>".into());
        let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
        let mut types = vec![1; tokens.len()];
        types[tokens.len() - 1] = TOKEN_TYPE_CONTROL;
        GgufTokenizer::new(&refs, &types, &["a b", "Ġ ab"], "smollm", None, 258)
            .unwrap_or_else(|err| panic!("toy tokenizer: {err}"))
    }

    #[test]
    fn byte_table_is_a_bijection() {
        let table = byte_to_unicode();
        assert_eq!(table[b'A' as usize], 'A');
        assert_eq!(table[b' ' as usize], 'Ġ');
        assert_eq!(table[b'\n' as usize], 'Ċ');
        assert_eq!(unicode_to_byte().len(), 256);
    }

    #[test]
    fn merges_apply_by_rank_and_specials_only_when_asked() {
        let tok = toy();
        assert_eq!(tok.encode("ab ab", false), vec![256, 257]);
        assert_eq!(tok.encode("ab<|end|>", true), vec![256, 258]);
        let plain = tok.encode("ab<|end|>", false);
        assert!(!plain.contains(&258));
        assert_eq!(tok.decode(&plain), "ab<|end|>");
        // Digits are split one by one.
        assert_eq!(tok.encode("12", false), vec![b'1' as u32, b'2' as u32]);
    }

    /// The textbook merge loop, kept here as the reference for the
    /// heap-based one: rescan all adjacent pairs, merge the lowest rank
    /// (leftmost among equals), repeat.
    fn naive_bpe(tok: &GgufTokenizer, bytes: &[u8]) -> Vec<u32> {
        let mut symbols: Vec<u32> = bytes
            .iter()
            .filter_map(|&b| tok.byte_tokens[b as usize])
            .collect();
        loop {
            let mut best: Option<(u32, usize, u32)> = None;
            for i in 0..symbols.len().saturating_sub(1) {
                if let Some(&(rank, merged)) = tok.merges.get(&(symbols[i], symbols[i + 1]))
                    && best.is_none_or(|(best_rank, _, _)| rank < best_rank)
                {
                    best = Some((rank, i, merged));
                }
            }
            let Some((_, i, merged)) = best else {
                return symbols;
            };
            symbols[i] = merged;
            symbols.remove(i + 1);
        }
    }

    /// A deterministic pseudo-random sequence (no test dependency needed).
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((self.0 >> 33) as usize) % n
        }
    }

    /// A vocabulary over a few letters (and a space) with many random
    /// merges, so that pieces merge deeply, overlap ("aaa") and compete.
    fn random_vocabulary(rng: &mut Lcg) -> GgufTokenizer {
        let table = byte_to_unicode();
        let mut tokens: Vec<String> = table.iter().map(|c| c.to_string()).collect();
        let mut built: Vec<String> = ["a", "b", "c", "d", "Ġ"].map(String::from).to_vec();
        let mut merges = Vec::new();
        for _ in 0..300 {
            let left = built[rng.below(built.len())].clone();
            let right = built[rng.below(built.len())].clone();
            let merged = format!("{left}{right}");
            if merged.chars().count() > 12 {
                continue;
            }
            merges.push(format!("{left} {right}"));
            if !tokens.contains(&merged) {
                tokens.push(merged.clone());
                built.push(merged);
            }
        }
        let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
        let merge_refs: Vec<&str> = merges.iter().map(String::as_str).collect();
        GgufTokenizer::new(&refs, &vec![1; refs.len()], &merge_refs, "gpt2", None, 0)
            .unwrap_or_else(|err| panic!("random vocabulary: {err}"))
    }

    #[test]
    fn heap_merges_equal_the_textbook_loop() {
        let mut rng = Lcg(7);
        for _ in 0..20 {
            let tok = random_vocabulary(&mut rng);
            let mut scratch = Scratch::default();
            for _ in 0..50 {
                let len = rng.below(300);
                let piece: Vec<u8> = (0..len).map(|_| b"abcd "[rng.below(5)]).collect();
                let mut ids = Vec::new();
                tok.bpe(&piece, &mut ids, &mut scratch);
                assert_eq!(ids, naive_bpe(&tok, &piece), "piece {piece:?}");
                assert_eq!(tok.decode(&ids).as_bytes(), piece.as_slice());
            }
            // Long runs of one letter: every pair is the same merge.
            for letter in [b'a', b'b'] {
                let piece = vec![letter; 1000 + rng.below(50)];
                let mut ids = Vec::new();
                tok.bpe(&piece, &mut ids, &mut scratch);
                assert_eq!(ids, naive_bpe(&tok, &piece));
            }
        }
    }

    #[test]
    fn a_word_of_50000_letters_round_trips() {
        let mut rng = Lcg(11);
        let tok = random_vocabulary(&mut rng);
        let word: String = (0..50_000)
            .map(|_| char::from(b"abcd"[rng.below(4)]))
            .collect();
        let ids = tok.encode(&word, false);
        assert!(ids.len() < word.len());
        assert_eq!(tok.decode(&ids), word);
    }
}
