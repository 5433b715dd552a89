//! The NDJSON lines of `POST /api/chat/stream/` (reference section 3.6).
//!
//! Every line is what the reference's `json.dumps(obj, separators=(",", ":"))`
//! produces, plus `"\n"`: compact (no spaces), keys in the reference's order,
//! and ASCII-only — `"` and `\` are backslash-escaped, `\n` `\r` `\t` `\b`
//! `\f` use their short escapes, every other character outside `' '..='~'`
//! (other control characters, DEL and all non-ASCII) becomes `\uxxxx` with
//! lowercase hex, characters beyond the BMP as a UTF-16 surrogate pair. `/`
//! is not escaped. serde_json does not escape non-ASCII, hence the small
//! writer here.
//!
//! The lines, in stream order:
//!
//! | [`Line`] | wire |
//! |---|---|
//! | `ThreadMeta` | `{"m":{"thread_uuid":"…"}}` |
//! | `Warning` | `{"w":"…"}` |
//! | `Content(Block::Markdown)` | `{"k":"markdown","c":"…"}` |
//! | `Content(Block::Load)` | `{"k":"load","t":"code"}` / `{"k":"load","t":"mermaid"}` |
//! | `Content(Block::Code)` | `{"k":"code","c":"…","t":"…"}` |
//! | `Content(Block::Mermaid)` | `{"k":"mermaid","c":"…"}` |
//! | `Content(Block::Raw)` | `{"c":"…"}` |
//! | `Interrupted` | `{"e":"Chat processing was interrupted. Please try again later."}` |
//! | `NotSaved` | `{"e":"The answer could not be saved. Please try again later."}` (the database stayed unreachable) |
//! | `Busy` | `{"e":"The assistant is busy right now. Please try again in a moment."}` (the embedded model's queue is full) |
//! | `TooLong` | `{"e":"Your message is too long for the model. Please shorten it and try again."}` (it does not fit in the model's context) |
//! | `FinalMeta` | `{"m":{"user_message_uuid":"…","assistant_message_uuid":"…"}}` (no `user_message_uuid` in reload mode) |
//!
//! UUIDs are passed as the strings to send (the 32-hex form).

use axum::body::Bytes;

use super::blocks::Block;

/// The text of the `e` line sent when the upstream model fails.
pub const INTERRUPTED_MESSAGE: &str = "Chat processing was interrupted. Please try again later.";

/// The text of the `e` line sent when the model is too busy to start (the
/// embedded model's queue is full): a retry soon can succeed.
pub const BUSY_MESSAGE: &str = "The assistant is busy right now. Please try again in a moment.";
/// The `e` line when the message does not fit in the model's context window
/// even without history: retrying it as it is cannot succeed.
pub const TOO_LONG_MESSAGE: &str =
    "Your message is too long for the model. Please shorten it and try again.";
/// The `e` line when a finished answer could not be stored.
pub const NOT_SAVED_MESSAGE: &str = "The answer could not be saved. Please try again later.";

/// One line of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line<'a> {
    /// First line: `{"m":{"thread_uuid":…}}`.
    ThreadMeta { thread_uuid: &'a str },
    /// The PII warning: `{"w":…}`.
    Warning(&'a str),
    /// A content line from the block parser.
    Content(&'a Block),
    /// Upstream failure: `{"e":"Chat processing was interrupted. …"}`.
    Interrupted,
    /// The model is too busy to start: `{"e":"The assistant is busy right now. …"}`.
    Busy,
    /// The message does not fit in the model's context:
    /// `{"e":"Your message is too long for the model. …"}`.
    TooLong,
    /// The answer could not be stored (the database stayed unreachable):
    /// `{"e":"The answer could not be saved. …"}`.
    NotSaved,
    /// Last line. `user_message_uuid` is `None` in reload mode, and the key
    /// is then absent.
    FinalMeta {
        user_message_uuid: Option<&'a str>,
        assistant_message_uuid: &'a str,
    },
}

impl Line<'_> {
    /// Appends the line, `\n` included, to `out`.
    pub fn write_to(&self, out: &mut String) {
        match *self {
            Line::ThreadMeta { thread_uuid } => {
                out.push_str(r#"{"m":{"thread_uuid":"#);
                write_json_str(out, thread_uuid);
                out.push_str("}}");
            }
            Line::Warning(text) => {
                out.push_str(r#"{"w":"#);
                write_json_str(out, text);
                out.push('}');
            }
            Line::Content(block) => write_block(out, block),
            Line::Interrupted | Line::Busy | Line::TooLong | Line::NotSaved => {
                out.push_str(r#"{"e":"#);
                let text = match self {
                    Line::Busy => BUSY_MESSAGE,
                    Line::TooLong => TOO_LONG_MESSAGE,
                    Line::NotSaved => NOT_SAVED_MESSAGE,
                    _ => INTERRUPTED_MESSAGE,
                };
                write_json_str(out, text);
                out.push('}');
            }
            Line::FinalMeta {
                user_message_uuid,
                assistant_message_uuid,
            } => {
                out.push_str(r#"{"m":{"#);
                if let Some(user) = user_message_uuid {
                    out.push_str(r#""user_message_uuid":"#);
                    write_json_str(out, user);
                    out.push(',');
                }
                out.push_str(r#""assistant_message_uuid":"#);
                write_json_str(out, assistant_message_uuid);
                out.push_str("}}");
            }
        }
        out.push('\n');
    }

    /// The line as a `String`, `\n` included.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        self.write_to(&mut out);
        out
    }

    /// The line as bytes for the response body, `\n` included.
    pub fn to_bytes(&self) -> Bytes {
        Bytes::from(self.encode())
    }
}

/// The content lines of `blocks`, concatenated (one `\n`-terminated line
/// each); empty for no blocks.
pub fn encode_blocks(blocks: &[Block]) -> String {
    let mut out = String::new();
    for block in blocks {
        Line::Content(block).write_to(&mut out);
    }
    out
}

fn write_block(out: &mut String, block: &Block) {
    match block {
        Block::Markdown(text) => {
            out.push_str(r#"{"k":"markdown","c":"#);
            write_json_str(out, text);
            out.push('}');
        }
        Block::Load { kind } => {
            out.push_str(r#"{"k":"load","t":"#);
            write_json_str(out, kind.as_str());
            out.push('}');
        }
        Block::Code { code, lang } => {
            out.push_str(r#"{"k":"code","c":"#);
            write_json_str(out, code);
            out.push_str(r#","t":"#);
            write_json_str(out, lang);
            out.push('}');
        }
        Block::Mermaid(source) => {
            out.push_str(r#"{"k":"mermaid","c":"#);
            write_json_str(out, source);
            out.push('}');
        }
        Block::Raw(text) => {
            out.push_str(r#"{"c":"#);
            write_json_str(out, text);
            out.push('}');
        }
    }
}

/// Appends `s` as a JSON string literal (quotes included), escaped as
/// Python's `json.dumps(s, ensure_ascii=True)` escapes it.
pub fn write_json_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    // Start of the run of bytes that need no escaping.
    let mut run = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\' {
            i += 1;
            continue;
        }
        out.push_str(&s[run..i]);
        if b.is_ascii() {
            match b {
                b'"' => out.push_str("\\\""),
                b'\\' => out.push_str("\\\\"),
                b'\n' => out.push_str("\\n"),
                b'\r' => out.push_str("\\r"),
                b'\t' => out.push_str("\\t"),
                0x08 => out.push_str("\\b"),
                0x0c => out.push_str("\\f"),
                _ => push_u_escape(out, u16::from(b)),
            }
            i += 1;
        } else {
            // `i` is on a char boundary: every byte before it was either a
            // whole ASCII char or the end of a decoded char.
            let Some(c) = s[i..].chars().next() else {
                break;
            };
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                push_u_escape(out, *unit);
            }
            i += c.len_utf8();
        }
        run = i;
    }
    out.push_str(&s[run..]);
    out.push('"');
}

/// `\uxxxx` with lowercase hex, as Python writes it.
fn push_u_escape(out: &mut String, unit: u16) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push_str("\\u");
    for shift in [12u16, 8, 4, 0] {
        out.push(char::from(HEX[usize::from((unit >> shift) & 0xf)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::blocks::LoadKind;

    fn esc(s: &str) -> String {
        let mut out = String::new();
        write_json_str(&mut out, s);
        out
    }

    #[test]
    fn thread_meta_line() {
        let line = Line::ThreadMeta {
            thread_uuid: "3f2c0a9b8e7d4c6f9a1b2c3d4e5f60e1",
        };
        assert_eq!(
            line.encode(),
            "{\"m\":{\"thread_uuid\":\"3f2c0a9b8e7d4c6f9a1b2c3d4e5f60e1\"}}\n"
        );
        assert_eq!(
            line.to_bytes(),
            Bytes::from_static(b"{\"m\":{\"thread_uuid\":\"3f2c0a9b8e7d4c6f9a1b2c3d4e5f60e1\"}}\n")
        );
    }

    #[test]
    fn warning_line() {
        assert_eq!(
            Line::Warning("Your message contained an e-mail — it was redacted.").encode(),
            "{\"w\":\"Your message contained an e-mail \\u2014 it was redacted.\"}\n"
        );
    }

    #[test]
    fn content_lines_have_the_reference_keys_in_order() {
        let cases = [
            (
                Block::Markdown("Sure! To create a VM".to_owned()),
                "{\"k\":\"markdown\",\"c\":\"Sure! To create a VM\"}\n",
            ),
            (
                Block::Load {
                    kind: LoadKind::Code,
                },
                "{\"k\":\"load\",\"t\":\"code\"}\n",
            ),
            (
                Block::Load {
                    kind: LoadKind::Mermaid,
                },
                "{\"k\":\"load\",\"t\":\"mermaid\"}\n",
            ),
            (
                Block::Code {
                    code: "openstack server list\n".to_owned(),
                    lang: "bash".to_owned(),
                },
                "{\"k\":\"code\",\"c\":\"openstack server list\\n\",\"t\":\"bash\"}\n",
            ),
            (
                Block::Mermaid("graph TD;\nA-->B;".to_owned()),
                "{\"k\":\"mermaid\",\"c\":\"graph TD;\\nA-->B;\"}\n",
            ),
            (
                Block::Raw("{\"tool\": \"x\"".to_owned()),
                "{\"c\":\"{\\\"tool\\\": \\\"x\\\"\"}\n",
            ),
        ];
        for (block, wire) in cases {
            assert_eq!(Line::Content(&block).encode(), wire, "{block:?}");
        }
    }

    #[test]
    fn interrupted_line() {
        assert_eq!(
            Line::Interrupted.encode(),
            "{\"e\":\"Chat processing was interrupted. Please try again later.\"}\n"
        );
    }

    #[test]
    fn final_meta_lines() {
        assert_eq!(
            Line::FinalMeta {
                user_message_uuid: Some("9a"),
                assistant_message_uuid: "b7",
            }
            .encode(),
            "{\"m\":{\"user_message_uuid\":\"9a\",\"assistant_message_uuid\":\"b7\"}}\n"
        );
        assert_eq!(
            Line::FinalMeta {
                user_message_uuid: None,
                assistant_message_uuid: "b7",
            }
            .encode(),
            "{\"m\":{\"assistant_message_uuid\":\"b7\"}}\n"
        );
    }

    #[test]
    fn encode_blocks_concatenates_lines() {
        let blocks = [
            Block::Markdown("Hi".to_owned()),
            Block::Load {
                kind: LoadKind::Code,
            },
        ];
        assert_eq!(
            encode_blocks(&blocks),
            "{\"k\":\"markdown\",\"c\":\"Hi\"}\n{\"k\":\"load\",\"t\":\"code\"}\n"
        );
        assert_eq!(encode_blocks(&[]), "");
    }

    #[test]
    fn escapes_quotes_backslashes_and_short_controls() {
        assert_eq!(esc("a\"b\\c/d"), r#""a\"b\\c/d""#);
        assert_eq!(esc("\n\r\t\u{8}\u{c}"), r#""\n\r\t\b\f""#);
    }

    #[test]
    fn escapes_other_controls_and_del_as_u00xx_lowercase() {
        assert_eq!(
            esc("\u{0}\u{1}\u{1f}\u{7f}"),
            r#""\u0000\u0001\u001f\u007f""#
        );
        assert_eq!(esc("\u{b}\u{1b}[0m"), r#""\u000b\u001b[0m""#);
    }

    #[test]
    fn printable_ascii_is_verbatim() {
        let printable: String = (' '..='~').collect();
        let expected = format!(
            "\"{}\"",
            printable.replace('\\', "\\\\").replace('"', "\\\"")
        );
        assert_eq!(esc(&printable), expected);
        assert_eq!(esc(""), "\"\"");
    }

    #[test]
    fn non_ascii_is_u_escaped_lowercase() {
        assert_eq!(esc("é"), r#""\u00e9""#);
        assert_eq!(esc("Grüße"), r#""Gr\u00fc\u00dfe""#);
        assert_eq!(
            esc("\u{80}\u{a0}\u{2028}\u{feff}\u{ffff}"),
            r#""\u0080\u00a0\u2028\ufeff\uffff""#
        );
        assert_eq!(esc("日本"), r#""\u65e5\u672c""#);
    }

    #[test]
    fn astral_chars_are_surrogate_pairs() {
        assert_eq!(esc("😀"), r#""\ud83d\ude00""#);
        assert_eq!(esc("a🍰b"), r#""a\ud83c\udf70b""#);
        assert_eq!(esc("\u{10000}\u{10ffff}"), r#""\ud800\udc00\udbff\udfff""#);
        // A ZWJ emoji sequence: each scalar escaped in turn.
        assert_eq!(esc("👩‍💻"), r#""\ud83d\udc69\u200d\ud83d\udcbb""#);
    }

    #[test]
    fn markdown_line_with_emoji_and_controls() {
        let block = Block::Markdown("Fertig ✓ 😀\n\t\"ok\"\u{7}".to_owned());
        assert_eq!(
            Line::Content(&block).encode(),
            "{\"k\":\"markdown\",\"c\":\"Fertig \\u2713 \\ud83d\\ude00\\n\\t\\\"ok\\\"\\u0007\"}\n"
        );
    }

    #[test]
    fn output_is_ascii_and_round_trips_through_a_json_parser() {
        let mut sample: String = (0u32..0x300).filter_map(char::from_u32).collect();
        sample.push_str("\u{2028}\u{d7ff}\u{e000}\u{fffd}😀𝄞\u{10ffff} end");
        let block = Block::Code {
            code: sample.clone(),
            lang: "ünïcödé".to_owned(),
        };
        let line = Line::Content(&block).encode();
        assert!(line.is_ascii());
        assert!(line.ends_with('\n'));
        assert_eq!(line.matches('\n').count(), 1);
        let value: serde_json::Value = match serde_json::from_str(line.trim_end_matches('\n')) {
            Ok(value) => value,
            Err(err) => panic!("invalid JSON {line:?}: {err}"),
        };
        assert_eq!(
            value,
            serde_json::json!({"k": "code", "c": sample, "t": "ünïcödé"})
        );
    }

    #[test]
    fn no_spaces_outside_strings() {
        let block = Block::Code {
            code: "x".to_owned(),
            lang: "y".to_owned(),
        };
        let line = Line::Content(&block).encode();
        assert!(!line.contains(' '), "{line}");
    }
}
