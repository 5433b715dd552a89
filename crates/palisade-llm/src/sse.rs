//! A small, lenient server-sent-events parser.
//!
//! Bytes go in as they arrive (chunk boundaries anywhere, including inside a
//! line or inside a UTF-8 character); the `data` of complete events comes out.
//! Lines end with `\n` or `\r\n`. `data:` is accepted with or without the
//! space after the colon; several `data` lines of one event are joined with
//! `\n`; comment lines (`:` keep-alives) and other fields (`event`, `id`,
//! `retry`) are ignored. A final event without its blank line is delivered by
//! [`SseParser::finish`].

/// Longest line we accept before deciding the stream is not SSE.
pub(crate) const MAX_LINE_BYTES: usize = 1 << 20;

#[derive(Debug, Default)]
pub(crate) struct SseParser {
    buf: Vec<u8>,
    /// How far into `buf` we already know there is no newline.
    scanned: usize,
    data: Vec<String>,
}

/// The line buffer grew past [`MAX_LINE_BYTES`] without a newline.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct LineTooLong;

impl SseParser {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; pushes the data of every completed event onto `out`.
    pub(crate) fn feed(&mut self, bytes: &[u8], out: &mut Vec<String>) -> Result<(), LineTooLong> {
        self.buf.extend_from_slice(bytes);
        let mut start = 0;
        let mut pos = self.scanned;
        while let Some(offset) = self.buf[pos..].iter().position(|&b| b == b'\n') {
            let end = pos + offset;
            let line = take_line(&self.buf[start..end]);
            self.line(&line, out);
            start = end + 1;
            pos = start;
        }
        if start > 0 {
            self.buf.drain(..start);
        }
        self.scanned = self.buf.len();
        if self.buf.len() > MAX_LINE_BYTES {
            return Err(LineTooLong);
        }
        Ok(())
    }

    /// The body ended: treats a pending partial line as complete and delivers
    /// a pending event.
    pub(crate) fn finish(&mut self, out: &mut Vec<String>) {
        if !self.buf.is_empty() {
            let buf = std::mem::take(&mut self.buf);
            let line = take_line(&buf);
            self.line(&line, out);
        }
        self.scanned = 0;
        self.dispatch(out);
    }

    fn line(&mut self, line: &str, out: &mut Vec<String>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line.starts_with(':') {
            return; // comment / keep-alive
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        if field.trim() == "data" {
            self.data.push(value.to_owned());
        }
    }

    fn dispatch(&mut self, out: &mut Vec<String>) {
        if !self.data.is_empty() {
            out.push(self.data.join("\n"));
            self.data.clear();
        }
    }
}

/// Decodes one line (without its `\n`), dropping a trailing `\r`. Invalid
/// UTF-8 is replaced rather than rejected.
fn take_line(bytes: &[u8]) -> String {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(input: &[u8], piece: usize) -> Vec<String> {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        for chunk in input.chunks(piece.max(1)) {
            parser.feed(chunk, &mut out).unwrap();
        }
        parser.finish(&mut out);
        out
    }

    #[test]
    fn plain_events() {
        let input = b"data: {\"a\":1}\n\ndata: [DONE]\n\n";
        assert_eq!(parse_in_pieces(input, 1000), vec!["{\"a\":1}", "[DONE]"]);
    }

    #[test]
    fn any_split_gives_the_same_events() {
        let input = "data: h\u{e9}llo \u{1F600}\r\n\r\n: keep-alive\r\n\r\ndata:x\r\ndata: y\r\n\r\nevent: foo\nid: 3\nretry: 10\ndata: last"
            .as_bytes();
        let expected = vec!["h\u{e9}llo \u{1F600}", "x\ny", "last"];
        for piece in 1..input.len() {
            assert_eq!(
                parse_in_pieces(input, piece),
                expected,
                "piece size {piece}"
            );
        }
    }

    #[test]
    fn comments_and_unknown_lines_are_ignored() {
        let input = b":\n: ping\n\ngarbage line\n\nid: 1\n\n";
        assert!(parse_in_pieces(input, 3).is_empty());
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let input = b"data: a\xffb\n\n";
        assert_eq!(parse_in_pieces(input, 2), vec!["a\u{fffd}b"]);
    }

    #[test]
    fn overlong_line_is_rejected() {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        let chunk = vec![b'x'; 64 * 1024];
        let mut result = Ok(());
        for _ in 0..20 {
            result = parser.feed(&chunk, &mut out);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(LineTooLong));
    }
}
