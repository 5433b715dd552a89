//! The markdown block parser: turns the upstream model's text deltas into the
//! UI blocks of the NDJSON stream (reference section 3.8).
//!
//! Feed every upstream text delta to [`BlockParser::push`] and send the
//! returned blocks at once; call [`BlockParser::finish`] when the upstream
//! stream ends normally. On an upstream *failure* the reference never calls
//! its final flush (the exception jumps straight to the `e` line), so a caller
//! that copies it simply drops the parser: text still buffered is not shown,
//! although it is persisted.
//!
//! # Rules
//!
//! * **Markdown buffering.** Text outside fenced blocks is buffered. At the
//!   end of every [`push`](BlockParser::push), outside a fenced block, the
//!   buffer is emitted as one [`Block::Markdown`] if it holds at least
//!   [`MIN_MARKDOWN_CHARS`] (50) characters. "Characters" are Unicode scalar
//!   values (`char`s), as Python's `len(str)` counts them, not bytes: 50
//!   emoji reach the threshold, 49 do not. Backticks held back (see below)
//!   are not counted. The buffer is also flushed just before a fenced block
//!   opens and in [`finish`](BlockParser::finish), so a short answer such as
//!   `Hello` is exactly one `Markdown("Hello")`. An empty buffer is never
//!   emitted.
//! * **Fences.** A fence is three backticks. The input is cut at fences the
//!   way Python's `str.split("```")` cuts it: leftmost first, never
//!   overlapping, so a run of `n` backticks is `n / 3` fences followed by
//!   `n % 3` literal backticks. Outside a block, a fence opens one; the *tag*
//!   is the text up to the first newline after the fence, with surrounding
//!   whitespace trimmed (as the reference's `tag.strip()`, which also drops
//!   the `\r` of a CRLF line); an empty tag becomes `code`. Once the tag line
//!   has ended: flush the markdown buffer, then emit
//!   [`Block::Load`] with [`LoadKind::Mermaid`] when the tag is exactly
//!   `mermaid` (case-sensitive, as the reference's trigger lookup) and
//!   [`LoadKind::Code`] for every other tag. Inside a block, the next fence
//!   closes it: tag `mermaid` gives [`Block::Mermaid`], any other tag
//!   [`Block::Code`] with `lang` = the tag. The text after the closing fence
//!   is markdown again (the rest of that line included).
//! * **A fence followed by another fence before any newline** (for example
//!   ```` ```python``` ```` on one line) opens a `code` block with empty content
//!   that the second fence closes at once: `Load{Code}`, then
//!   `Code{code: "", lang: "code"}`. The text between the two fences is
//!   dropped. This is the reference's behaviour, kept for compatibility.
//! * **Chunk boundaries.** One or two backticks at the end of the input seen
//!   so far are held back, because the next delta may complete a fence; a
//!   fence whose tag line has not ended yet is held back until its newline
//!   (or the next fence) arrives.
//! * **End of stream.** A fence still waiting for its tag line becomes text
//!   (the three backticks plus whatever followed), held-back backticks become
//!   text, and the markdown buffer is flushed. **Deviation from the
//!   reference:** a fenced block that is still open (the answer was cut,
//!   cancelled or ran out of tokens inside it) is emitted as it stands, with
//!   any held-back backticks as part of its content — the reference drops
//!   it from the stream although it stores it, so its clients never see part
//!   of the stored answer. An answer ending in ``"```sh\nls`"`` yields
//!   `Load{Code}` then `Code{"ls`", "sh"}`.
//! * **Tool-call JSON.** While the output seen so far is only whitespace,
//!   nothing is parsed yet (the whitespace is held). When the first
//!   non-whitespace character arrives and it is `{`, the answer looks like a
//!   tool call: nothing more is streamed, the whole output (leading
//!   whitespace included) is buffered, and [`finish`](BlockParser::finish)
//!   returns it as one [`Block::Raw`]. Palisade has no server-side tools yet,
//!   so every such answer takes the reference's "looked like JSON but was not
//!   a valid tool call" path (`{"c":…}`). An answer that is only whitespace
//!   is emitted as markdown at the end, as in the reference. Whitespace is
//!   what Python's `str.strip()` removes (Unicode `White_Space` plus
//!   U+001C..U+001F).
//!
//! # Chunking invariance
//!
//! The blocks depend only on the concatenated input, not on how it is cut
//! into deltas, with one exception required by the 50-character rule: *where*
//! the markdown text is cut into consecutive [`Block::Markdown`]s depends on
//! the delta boundaries (a flush happens only at the end of a delta). Merging
//! each run of consecutive `Markdown` blocks into one gives the same sequence
//! for every chunking, and when no markdown run reaches 50 characters before a
//! fence or the end, the blocks are identical for every chunking.
//!
//! This is slightly stricter than the reference, which decides "is this a
//! tool call?" per delta: there, leading whitespace delivered in an earlier
//! delta than the `{` was parsed (and could be shown as markdown) while the
//! same whitespace in the `{` delta was not. Holding leading whitespace makes
//! the outcome independent of the split and equal to the reference's outcome
//! when the whole answer arrives as one delta.

use std::mem;

/// Markdown is emitted once the buffer holds at least this many characters
/// (`char`s) at the end of a delta.
pub const MIN_MARKDOWN_CHARS: usize = 50;

/// The fence delimiter.
const FENCE: &str = "```";

/// The tag that selects the mermaid component; any other tag is code.
const MERMAID_TAG: &str = "mermaid";

/// The tag used for a fence with an empty tag line.
const DEFAULT_TAG: &str = "code";

/// Which component a `load` line announces (its `t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadKind {
    /// `"code"`: any tag but `mermaid`, including the empty tag.
    Code,
    /// `"mermaid"`.
    Mermaid,
}

impl LoadKind {
    /// The wire value of `t`.
    pub fn as_str(self) -> &'static str {
        match self {
            LoadKind::Code => "code",
            LoadKind::Mermaid => "mermaid",
        }
    }
}

/// One UI line of the stream's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// `{"k":"markdown","c":…}`
    Markdown(String),
    /// `{"k":"load","t":…}`: a fenced block has started.
    Load { kind: LoadKind },
    /// `{"k":"code","c":…,"t":…}`: a complete fenced block.
    Code { code: String, lang: String },
    /// `{"k":"mermaid","c":…}`: a complete mermaid block.
    Mermaid(String),
    /// `{"c":…}` without `k`: output that looked like a tool call (JSON) but
    /// is not one, sent raw at the end.
    Raw(String),
}

/// Whether the answer is still undecided, streamed, or buffered as JSON.
#[derive(Debug)]
enum Route {
    /// Only whitespace so far, held here.
    Undecided(String),
    /// Parsed into blocks.
    Blocks,
    /// Started with `{`: everything buffered for a `Raw` at the end.
    ToolJson(String),
}

/// Where the fence scanner is.
#[derive(Debug)]
enum Fence {
    /// Outside any fenced block.
    Text,
    /// After an opening fence, before the newline that ends its tag line.
    TagLine(String),
    /// Inside a fenced block.
    Open { tag: String, content: String },
}

/// Incremental markdown → UI block parser. See the module documentation for
/// the exact rules.
#[derive(Debug)]
pub struct BlockParser {
    route: Route,
    fence: Fence,
    /// Markdown text not yet emitted.
    text: String,
    /// `text.chars().count()`, kept up to date.
    text_chars: usize,
    /// One or two backticks that may start a fence with the next delta.
    held_backticks: String,
}

impl Default for BlockParser {
    fn default() -> Self {
        Self::new()
    }
}

impl BlockParser {
    /// A parser at the start of an answer.
    pub fn new() -> Self {
        Self {
            route: Route::Undecided(String::new()),
            fence: Fence::Text,
            text: String::new(),
            text_chars: 0,
            held_backticks: String::new(),
        }
    }

    /// Feeds one upstream text delta and returns the blocks it completes.
    pub fn push(&mut self, chunk: &str) -> Vec<Block> {
        let mut out = Vec::new();
        match &mut self.route {
            Route::ToolJson(buffer) => buffer.push_str(chunk),
            Route::Blocks => self.feed(chunk, &mut out),
            Route::Undecided(held) => match chunk.find(|c: char| !is_py_whitespace(c)) {
                None => held.push_str(chunk),
                Some(at) => {
                    let mut all = mem::take(held);
                    all.push_str(chunk);
                    if chunk[at..].starts_with('{') {
                        self.route = Route::ToolJson(all);
                    } else {
                        self.route = Route::Blocks;
                        self.feed(&all, &mut out);
                    }
                }
            },
        }
        out
    }

    /// Ends the answer: returns the blocks still pending (see "End of
    /// stream" and "Tool-call JSON" in the module documentation).
    pub fn finish(mut self) -> Vec<Block> {
        let mut out = Vec::new();
        match mem::replace(&mut self.route, Route::Blocks) {
            Route::ToolJson(buffer) => {
                out.push(Block::Raw(buffer));
                return out;
            }
            Route::Undecided(held) => self.feed(&held, &mut out),
            Route::Blocks => {}
        }
        match mem::replace(&mut self.fence, Fence::Text) {
            Fence::Text => {}
            Fence::TagLine(tag) => {
                self.append_text(FENCE);
                self.append_text(&tag);
            }
            // Deviation from the reference (which drops it, though it stores
            // it): the block the answer ended in is sent as it is, held-back
            // backticks included, so the client sees what is stored.
            Fence::Open { tag, mut content } => {
                content.push_str(&mem::take(&mut self.held_backticks));
                self.fence = Fence::Open { tag, content };
                self.close_block(&mut out);
            }
        }
        let held = mem::take(&mut self.held_backticks);
        self.append_text(&held);
        self.flush_text(&mut out);
        out
    }

    /// Runs the fence scanner over `input` (after the held backticks).
    fn feed(&mut self, input: &str, out: &mut Vec<Block>) {
        let mut all = mem::take(&mut self.held_backticks);
        all.push_str(input);
        let mut rest = all.as_str();
        while let Some(at) = rest.find(FENCE) {
            self.segment(&rest[..at], out);
            self.fence_delimiter(out);
            rest = &rest[at + FENCE.len()..];
        }
        // `rest` holds no fence, so it ends in at most two backticks.
        let keep = rest.len() - rest.trim_end_matches('`').len();
        let (body, tail) = rest.split_at(rest.len() - keep);
        self.segment(body, out);
        self.held_backticks.push_str(tail);
        if !matches!(self.fence, Fence::Open { .. }) && self.text_chars >= MIN_MARKDOWN_CHARS {
            self.flush_text(out);
        }
    }

    /// Text between fences, in the current state.
    fn segment(&mut self, s: &str, out: &mut Vec<Block>) {
        if s.is_empty() {
            return;
        }
        match &mut self.fence {
            Fence::Text => self.append_text(s),
            Fence::Open { content, .. } => content.push_str(s),
            Fence::TagLine(tag) => match s.find('\n') {
                None => tag.push_str(s),
                Some(nl) => {
                    tag.push_str(&s[..nl]);
                    let tag = normalise_tag(tag);
                    self.open_block(tag, s[nl + 1..].to_owned(), out);
                }
            },
        }
    }

    /// A fence delimiter, in the current state.
    fn fence_delimiter(&mut self, out: &mut Vec<Block>) {
        match mem::replace(&mut self.fence, Fence::Text) {
            Fence::Text => self.fence = Fence::TagLine(String::new()),
            Fence::TagLine(_) => {
                // No newline before the next fence: an empty `code` block,
                // opened and closed at once (the tag text is dropped).
                self.open_block(DEFAULT_TAG.to_owned(), String::new(), out);
                self.close_block(out);
            }
            open @ Fence::Open { .. } => {
                self.fence = open;
                self.close_block(out);
            }
        }
    }

    fn open_block(&mut self, tag: String, content: String, out: &mut Vec<Block>) {
        self.flush_text(out);
        let kind = if tag == MERMAID_TAG {
            LoadKind::Mermaid
        } else {
            LoadKind::Code
        };
        out.push(Block::Load { kind });
        self.fence = Fence::Open { tag, content };
    }

    fn close_block(&mut self, out: &mut Vec<Block>) {
        if let Fence::Open { tag, content } = mem::replace(&mut self.fence, Fence::Text) {
            if tag == MERMAID_TAG {
                out.push(Block::Mermaid(content));
            } else {
                out.push(Block::Code {
                    code: content,
                    lang: tag,
                });
            }
        }
    }

    fn append_text(&mut self, s: &str) {
        self.text.push_str(s);
        self.text_chars += s.chars().count();
    }

    fn flush_text(&mut self, out: &mut Vec<Block>) {
        if !self.text.is_empty() {
            out.push(Block::Markdown(mem::take(&mut self.text)));
        }
        self.text_chars = 0;
    }
}

/// The tag of a tag line: trimmed, `code` when empty.
fn normalise_tag(line: &str) -> String {
    let tag = line.trim_matches(is_py_whitespace);
    if tag.is_empty() {
        DEFAULT_TAG.to_owned()
    } else {
        tag.to_owned()
    }
}

/// What Python's `str.strip()` removes: Unicode `White_Space` plus the
/// information separators U+001C..U+001F.
fn is_py_whitespace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(s: &str) -> Block {
        Block::Markdown(s.to_owned())
    }

    fn load_code() -> Block {
        Block::Load {
            kind: LoadKind::Code,
        }
    }

    fn load_mermaid() -> Block {
        Block::Load {
            kind: LoadKind::Mermaid,
        }
    }

    fn code(c: &str, lang: &str) -> Block {
        Block::Code {
            code: c.to_owned(),
            lang: lang.to_owned(),
        }
    }

    /// Parses `chunks` in order and returns every block.
    fn run(chunks: &[&str]) -> Vec<Block> {
        let mut parser = BlockParser::new();
        let mut out = Vec::new();
        for chunk in chunks {
            out.extend(parser.push(chunk));
        }
        out.extend(parser.finish());
        out
    }

    /// Merges runs of consecutive markdown blocks.
    fn merged(blocks: Vec<Block>) -> Vec<Block> {
        let mut out: Vec<Block> = Vec::new();
        for block in blocks {
            if let (Some(Block::Markdown(prev)), Block::Markdown(next)) = (out.last_mut(), &block) {
                prev.push_str(next);
                continue;
            }
            out.push(block);
        }
        out
    }

    fn boundaries(s: &str) -> Vec<usize> {
        (0..=s.len()).filter(|&i| s.is_char_boundary(i)).collect()
    }

    /// Asserts that every split of `input` into two and three pieces, and
    /// into single characters, gives `expected` — exactly when `exact`,
    /// otherwise after merging consecutive markdown blocks.
    fn assert_all_splits(input: &str, expected: &[Block], exact: bool) {
        let norm = |b: Vec<Block>| if exact { b } else { merged(b) };
        let expected = norm(expected.to_vec());
        assert_eq!(norm(run(&[input])), expected, "whole input {input:?}");
        let cuts = boundaries(input);
        for &i in &cuts {
            let got = norm(run(&[&input[..i], &input[i..]]));
            assert_eq!(got, expected, "split at {i} of {input:?}");
            for &j in cuts.iter().filter(|&&j| j >= i) {
                let got = norm(run(&[&input[..i], &input[i..j], &input[j..]]));
                assert_eq!(got, expected, "splits at {i},{j} of {input:?}");
            }
        }
        let singles: Vec<String> = input.chars().map(String::from).collect();
        let singles: Vec<&str> = singles.iter().map(String::as_str).collect();
        assert_eq!(norm(run(&singles)), expected, "char by char {input:?}");
    }

    #[test]
    fn hello_is_exactly_one_markdown_block() {
        assert_eq!(run(&["Hello"]), vec![md("Hello")]);
        assert_all_splits("Hello", &[md("Hello")], true);
    }

    #[test]
    fn empty_answer_gives_nothing() {
        assert_eq!(run(&[]), vec![]);
        assert_eq!(run(&["", ""]), vec![]);
    }

    #[test]
    fn short_text_is_held_until_finish() {
        let mut parser = BlockParser::new();
        assert_eq!(parser.push("Hello, "), vec![]);
        assert_eq!(parser.push("world"), vec![]);
        assert_eq!(parser.finish(), vec![md("Hello, world")]);
    }

    #[test]
    fn threshold_is_fifty_chars_at_end_of_chunk() {
        let forty_nine = "a".repeat(49);
        let mut parser = BlockParser::new();
        assert_eq!(parser.push(&forty_nine), vec![]);
        assert_eq!(parser.push("b"), vec![md(&format!("{forty_nine}b"))]);
        assert_eq!(parser.push("c"), vec![]);
        assert_eq!(parser.finish(), vec![md("c")]);

        let mut parser = BlockParser::new();
        let fifty = "x".repeat(50);
        assert_eq!(parser.push(&fifty), vec![md(&fifty)]);
        assert_eq!(parser.finish(), vec![]);

        // A long chunk is emitted whole, not cut at 50.
        let long = "y".repeat(120);
        assert_eq!(run(&[&long]), vec![md(&long)]);
    }

    #[test]
    fn threshold_counts_chars_not_bytes() {
        // 49 two-byte chars = 98 bytes: below the threshold.
        let e49 = "é".repeat(49);
        let mut parser = BlockParser::new();
        assert_eq!(parser.push(&e49), vec![]);
        assert_eq!(parser.push("é"), vec![md(&"é".repeat(50))]);
        // 50 four-byte emoji.
        let mut parser = BlockParser::new();
        assert_eq!(parser.push(&"😀".repeat(49)), vec![]);
        assert_eq!(parser.push("😀"), vec![md(&"😀".repeat(50))]);
    }

    #[test]
    fn held_backticks_do_not_count_towards_threshold() {
        let mut parser = BlockParser::new();
        let text = "a".repeat(49);
        assert_eq!(parser.push(&format!("{text}`")), vec![]);
        assert_eq!(parser.push("x"), vec![md(&format!("{text}`x"))]);
        assert_eq!(parser.finish(), vec![]);
    }

    #[test]
    fn markdown_splits_depend_on_chunks_but_merge_to_the_same_text() {
        let input = format!("{}{}", "a".repeat(60), "b".repeat(30));
        assert_eq!(run(&[&input]), vec![md(&input)]);
        assert_eq!(
            run(&[&input[..55], &input[55..]]),
            vec![md(&input[..55]), md(&input[55..])]
        );
        assert_all_splits(&input, &[md(&input)], false);
    }

    #[test]
    fn code_block_with_text_around() {
        let input = "Run:\n```bash\nls -la\n```\nDone.";
        let expected = [
            md("Run:\n"),
            load_code(),
            code("ls -la\n", "bash"),
            md("\nDone."),
        ];
        assert_eq!(run(&[input]), expected);
        assert_all_splits(input, &expected, true);
    }

    #[test]
    fn empty_tag_becomes_code() {
        let input = "```\nx = 1\n```";
        let expected = [load_code(), code("x = 1\n", "code")];
        assert_eq!(run(&[input]), expected);
        assert_all_splits(input, &expected, true);
        // Whitespace-only tag, CRLF tag line, padded tag.
        assert_eq!(run(&["```  \ny```"]), [load_code(), code("y", "code")]);
        assert_eq!(
            run(&["```rust\r\nfn f() {}\r\n```"]),
            [load_code(), code("fn f() {}\r\n", "rust")]
        );
        assert_eq!(run(&["``` py \nz```"]), [load_code(), code("z", "py")]);
    }

    #[test]
    fn unknown_tags_are_code_with_their_tag() {
        assert_eq!(
            run(&["```foobar\nstuff\n```"]),
            [load_code(), code("stuff\n", "foobar")]
        );
        assert_eq!(
            run(&["```json\n{\"a\":1}\n```"]),
            [load_code(), code("{\"a\":1}\n", "json")]
        );
    }

    #[test]
    fn mermaid_block() {
        let input = "Diagram:\n```mermaid\ngraph TD;\nA-->B;\n```\n";
        let expected = [
            md("Diagram:\n"),
            load_mermaid(),
            Block::Mermaid("graph TD;\nA-->B;\n".to_owned()),
            md("\n"),
        ];
        assert_eq!(run(&[input]), expected);
        assert_all_splits(input, &expected, true);
        // Case-sensitive: `Mermaid` is just a code tag.
        assert_eq!(
            run(&["```Mermaid\ng\n```"]),
            [load_code(), code("g\n", "Mermaid")]
        );
    }

    #[test]
    fn load_is_emitted_as_soon_as_the_tag_line_ends() {
        let mut parser = BlockParser::new();
        assert_eq!(parser.push("Intro "), vec![]);
        assert_eq!(parser.push("``"), vec![]);
        assert_eq!(parser.push("`py"), vec![]);
        assert_eq!(parser.push("thon"), vec![]);
        assert_eq!(parser.push("\nprint(1)"), vec![md("Intro "), load_code()]);
        assert_eq!(parser.push("\n``"), vec![]);
        assert_eq!(parser.push("`"), vec![code("print(1)\n", "python")]);
        assert_eq!(parser.push(" after"), vec![]);
        assert_eq!(parser.finish(), vec![md(" after")]);
    }

    #[test]
    fn text_before_fence_is_flushed_even_if_short() {
        assert_eq!(
            run(&["Hi ```sh\nx\n``` bye"]),
            [md("Hi "), load_code(), code("x\n", "sh"), md(" bye")]
        );
    }

    #[test]
    fn long_text_before_fence_in_the_same_chunk() {
        let text = "t".repeat(70);
        let input = format!("{text}```c\nint x;\n```");
        assert_eq!(
            run(&[&input]),
            [md(&text), load_code(), code("int x;\n", "c")]
        );
    }

    #[test]
    fn threshold_not_applied_inside_a_block() {
        let mut parser = BlockParser::new();
        assert_eq!(parser.push("```\n"), vec![load_code()]);
        assert_eq!(parser.push(&"z".repeat(80)), vec![]);
        assert_eq!(parser.push("```"), vec![code(&"z".repeat(80), "code")]);
        assert_eq!(parser.finish(), vec![]);
    }

    #[test]
    fn text_before_pending_tag_line_may_flush_at_threshold() {
        let text = "w".repeat(55);
        let mut parser = BlockParser::new();
        assert_eq!(parser.push(&format!("{text}```py")), vec![md(&text)]);
        assert_eq!(
            parser.push("\n1\n```"),
            vec![load_code(), code("1\n", "py")]
        );
        assert_eq!(parser.finish(), vec![]);
    }

    #[test]
    fn several_blocks() {
        let input = "A\n```\none\n```\nB\n```mermaid\ng\n```\nC\n```go\ntwo\n```";
        let expected = [
            md("A\n"),
            load_code(),
            code("one\n", "code"),
            md("\nB\n"),
            load_mermaid(),
            Block::Mermaid("g\n".to_owned()),
            md("\nC\n"),
            load_code(),
            code("two\n", "go"),
        ];
        assert_eq!(run(&[input]), expected);
        assert_all_splits(input, &expected, true);
    }

    #[test]
    fn backticks_inside_a_block_are_content() {
        let input = "```md\nuse `x` and ``y``\n```";
        let expected = [load_code(), code("use `x` and ``y``\n", "md")];
        assert_all_splits(input, &expected, true);
    }

    #[test]
    fn inline_backticks_in_text() {
        let input = "Use `ls` or ``cd``.";
        assert_all_splits(input, &[md(input)], true);
    }

    #[test]
    fn trailing_backticks_at_end_become_text() {
        assert_eq!(run(&["a`"]), [md("a`")]);
        assert_eq!(run(&["a``"]), [md("a``")]);
        assert_eq!(run(&["a", "`", "`"]), [md("a``")]);
        let mut parser = BlockParser::new();
        assert_eq!(parser.push("x``"), vec![]);
        assert_eq!(parser.finish(), vec![md("x``")]);
    }

    #[test]
    fn pending_fence_at_end_becomes_text() {
        let input = "see ```python";
        assert_all_splits(input, &[md(input)], true);
        assert_eq!(run(&["```"]), [md("```")]);
        assert_eq!(run(&["x ```py", "``"]), [md("x ```py``")]);
    }

    #[test]
    fn an_unclosed_block_is_emitted_at_the_end() {
        let input = "Look:\n```python\nprint('cut here')\n";
        let expected = [
            md("Look:\n"),
            load_code(),
            code("print('cut here')\n", "python"),
        ];
        assert_eq!(run(&[input]), expected);
        assert_all_splits(input, &expected, true);
        assert_eq!(
            run(&["```mermaid\ngraph"]),
            [load_mermaid(), Block::Mermaid("graph".into())]
        );
    }

    #[test]
    fn held_backticks_of_an_unclosed_block_stay_in_it() {
        assert_eq!(run(&["```sh\nls`"]), [load_code(), code("ls`", "sh")]);
        assert_eq!(run(&["```sh\nls``"]), [load_code(), code("ls``", "sh")]);
        assert_all_splits("```sh\nls``", &[load_code(), code("ls``", "sh")], true);
    }

    #[test]
    fn fence_directly_followed_by_fence_is_an_empty_code_block() {
        let expected = [md("a "), load_code(), code("", "code"), md(" b")];
        assert_all_splits("a ```python``` b", &expected, true);
        assert_all_splits("a `````` b", &expected, true);
    }

    #[test]
    fn runs_of_backticks_split_like_python() {
        // Four backticks: a fence, then "`" starts the tag line.
        assert_all_splits("````x\ny```", &[load_code(), code("y", "`x")], true);
        // Seven: fence, fence (empty block), then a literal backtick.
        assert_all_splits(
            "p```````q",
            &[md("p"), load_code(), code("", "code"), md("`q")],
            true,
        );
        // Five at the end: a fence whose tag line is "``", pending → text.
        assert_all_splits("p`````", &[md("p`````")], true);
    }

    #[test]
    fn fences_split_at_every_boundary_with_non_ascii() {
        let input = "Grüße 😀\n```mermaid\nA-->B[“ü”]\n```\n```\nπ = 3.14 🍰\n```\nEnde ✓";
        let expected = [
            md("Grüße 😀\n"),
            load_mermaid(),
            Block::Mermaid("A-->B[“ü”]\n".to_owned()),
            md("\n"),
            load_code(),
            code("π = 3.14 🍰\n", "code"),
            md("\nEnde ✓"),
        ];
        assert_eq!(run(&[input]), expected);
        assert_all_splits(input, &expected, true);
    }

    #[test]
    fn long_answer_is_chunking_invariant_after_merging() {
        let input = format!(
            "{}\n```rust\nfn main() {{}}\n```\n{}``` ```{}",
            "Intro text that is definitely longer than fifty characters.",
            "More text, also long enough to cross the threshold easily ok.",
            " tail"
        );
        let expected = [
            md("Intro text that is definitely longer than fifty characters.\n"),
            load_code(),
            code("fn main() {}\n", "rust"),
            md("\nMore text, also long enough to cross the threshold easily ok."),
            load_code(),
            code("", "code"),
            md(" tail"),
        ];
        assert_eq!(run(&[&input]), expected);
        assert_all_splits(&input, &expected, false);
    }

    #[test]
    fn json_output_is_buffered_and_sent_raw() {
        let input = "{\"tool\": \"x\", \"arguments\": {}}";
        let mut parser = BlockParser::new();
        assert_eq!(parser.push(&input[..5]), vec![]);
        assert_eq!(parser.push(&input[5..]), vec![]);
        assert_eq!(parser.finish(), vec![Block::Raw(input.to_owned())]);
        assert_all_splits(input, &[Block::Raw(input.to_owned())], true);
    }

    #[test]
    fn json_detection_ignores_leading_whitespace_and_keeps_it() {
        let input = "  \n\t{\"a\": \"```not a fence```\" and a long tail of more than fifty chars}";
        assert_all_splits(input, &[Block::Raw(input.to_owned())], true);
        let mut parser = BlockParser::new();
        assert_eq!(parser.push("   "), vec![]);
        assert_eq!(parser.push(&" ".repeat(60)), vec![]);
        assert_eq!(parser.push("{"), vec![]);
        assert_eq!(
            parser.finish(),
            vec![Block::Raw(format!("{}{{", " ".repeat(63)))]
        );
    }

    #[test]
    fn brace_later_in_the_text_is_markdown() {
        let input = "Here: {\"a\": 1}";
        assert_all_splits(input, &[md(input)], true);
        let input = "  x {";
        assert_all_splits(input, &[md(input)], true);
    }

    #[test]
    fn leading_whitespace_then_text_is_kept_in_markdown() {
        let input = "\n\n  Hello";
        assert_all_splits(input, &[md(input)], true);
        let input = "\n```\nc\n```";
        assert_all_splits(input, &[md("\n"), load_code(), code("c\n", "code")], true);
    }

    #[test]
    fn whitespace_only_answer_is_markdown_at_the_end() {
        let mut parser = BlockParser::new();
        assert_eq!(parser.push(&" ".repeat(70)), vec![]);
        assert_eq!(parser.push("\n"), vec![]);
        assert_eq!(parser.finish(), vec![md(&format!("{}\n", " ".repeat(70)))]);
        // U+001F counts as whitespace (as in Python).
        assert_eq!(
            run(&["\u{1f}\u{a0}", "{}"]),
            [Block::Raw("\u{1f}\u{a0}{}".to_owned())]
        );
    }

    #[test]
    fn fenced_json_is_code_not_raw() {
        let input = "```json\n{\"tool\":\"x\"}\n```";
        assert_all_splits(
            input,
            &[load_code(), code("{\"tool\":\"x\"}\n", "json")],
            true,
        );
    }

    #[test]
    fn load_kind_wire_values() {
        assert_eq!(LoadKind::Code.as_str(), "code");
        assert_eq!(LoadKind::Mermaid.as_str(), "mermaid");
    }
}
