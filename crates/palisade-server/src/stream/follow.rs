//! Reading an answer's lines as they are sent: the stream's own client and
//! every follower (`GET /api/chat-threads/{uuid}/stream/`) get the lines of
//! the answer so far, then the live ones, then the final line — from any
//! node, in parts of at most [`PART`] bytes, so a slow reader costs bounded
//! memory whatever the answer's size.
//!
//! On the node that generates the answer a reader follows the generation's
//! in-memory transcript and gets each line as it is sent; hyper asks for the
//! next part only when the client took the previous one (its write buffer
//! is capped, see `listener`), so a reader that falls behind holds its place
//! (an offset), not a queue of lines. Once the answer is saved in full, the
//! transcript keeps only its last [`MEMORY_LIMIT`] bytes: a reader further
//! behind reads the rest from the copy saved with the answer.
//! On another node a reader polls that saved copy (every `save_interval`),
//! so it trails the direct client by at most about two save intervals. An
//! answer whose node died ends with the `e` line.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use futures_util::Stream;
use palisade_store::Store;
use tokio::sync::watch;

use super::ndjson::Line;

/// The most a reader takes of the transcript at once.
pub const PART: usize = 16 * 1024;

/// How far behind a finished answer a reader may be and still be given the
/// rest from memory; further behind, it reads the rest from the database so
/// the answer's transcript can be freed.
pub const MEMORY_LIMIT: usize = 64 * 1024;

/// How long a reader of the saved transcript keeps polling through
/// database errors.
const GIVE_UP_AFTER: Duration = Duration::from_secs(120);

/// Bytes of transcripts held in memory on this node (their buffers'
/// capacity), for the `palisade_stream_transcript_bytes` gauge: what
/// generations and their readers keep, however slow the readers are.
static HELD: AtomicUsize = AtomicUsize::new(0);

/// Bytes of answer lines held in memory on this node now.
pub fn held_bytes() -> usize {
    HELD.load(Ordering::Relaxed)
}

/// The lines of an answer sent so far, shared by the generation (which
/// appends) and its readers on this node.
#[derive(Debug, Default)]
pub struct Transcript {
    /// NDJSON, ASCII only (the line encoder escapes everything else): the
    /// whole transcript from byte `base` on.
    text: String,
    /// Bytes dropped from the front once the answer was saved in full.
    base: usize,
    /// The answer's row, once it exists: where the saved copy is.
    pub message_id: Option<i64>,
}

impl Drop for Transcript {
    fn drop(&mut self) {
        HELD.fetch_sub(self.text.capacity(), Ordering::Relaxed);
    }
}

impl Transcript {
    /// Everything from byte `base` on.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Appends lines.
    pub fn push(&mut self, lines: &str) {
        let before = self.text.capacity();
        self.text.push_str(lines);
        HELD.fetch_add(self.text.capacity() - before, Ordering::Relaxed);
    }

    /// Keeps only the last [`MEMORY_LIMIT`] bytes, once the whole
    /// transcript is saved with the answer: slow readers still connected
    /// then cost no copy of a long answer.
    pub fn keep_tail(&mut self) {
        if self.message_id.is_none() || self.text.len() <= MEMORY_LIMIT {
            return;
        }
        let before = self.text.capacity();
        let cut = boundary(&self.text, self.text.len() - MEMORY_LIMIT);
        self.text.drain(..cut);
        self.text.shrink_to_fit();
        self.base += cut;
        HELD.fetch_sub(before - self.text.capacity(), Ordering::Relaxed);
    }
}

/// The largest char boundary of `text` at or below `at`.
fn boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// At most [`PART`] bytes of `text` from `from`; empty at the end.
fn part_from(text: &str, from: usize) -> &str {
    let from = boundary(text, from);
    let to = boundary(text, from.saturating_add(PART));
    &text[from..to]
}

/// Whether the transcript ends with the stream's final line.
fn has_final_line(transcript: &str) -> bool {
    transcript
        .lines()
        .next_back()
        .is_some_and(|line| line.starts_with(r#"{"m":"#) && line.contains("assistant_message_uuid"))
}

fn interrupted() -> String {
    String::from_utf8_lossy(&Line::Interrupted.to_bytes()).into_owned()
}

/// Where a reader takes the next part from.
enum Source {
    /// The generation's transcript, on this node; `ended` once the
    /// generation's lines ended.
    Live {
        transcript: watch::Receiver<Transcript>,
        ended: bool,
    },
    /// The transcript saved with the answer.
    Saved {
        message_id: i64,
        /// Whether the last read found nothing new: wait before the next.
        caught_up: bool,
    },
    /// Everything was given.
    Done,
}

/// One reader of an answer's lines.
struct Reader {
    store: Arc<dyn Store>,
    poll: Duration,
    source: Source,
    /// Bytes of the transcript already given to the client.
    sent: usize,
    /// The end of what was sent (a few lines): whether it ends with the
    /// final line decides if a finished answer needs the `e` line.
    tail: String,
}

impl Reader {
    fn sent(&mut self, part: &str) {
        self.sent += part.len();
        self.tail.push_str(part);
        if self.tail.len() > 4096 {
            let cut = boundary(&self.tail, self.tail.len() - 2048);
            self.tail.drain(..cut);
        }
    }

    /// The next part; `None` once everything was given.
    async fn next_part(&mut self) -> Option<String> {
        loop {
            match &mut self.source {
                Source::Live { transcript, ended } => {
                    let (part, message_id) = {
                        let now = transcript.borrow_and_update();
                        let part = self
                            .sent
                            .checked_sub(now.base)
                            .map(|from| part_from(&now.text, from).to_owned());
                        (part, now.message_id)
                    };
                    match (part, message_id) {
                        (Some(part), _) if !part.is_empty() => {
                            self.sent(&part);
                            return Some(part);
                        }
                        (None, Some(message_id)) => {
                            // The front was let go: the rest is saved.
                            self.source = Source::Saved {
                                message_id,
                                caught_up: false,
                            };
                            continue;
                        }
                        (None, None) => {
                            // Cannot happen: only a saved transcript is cut.
                            self.source = Source::Done;
                            return None;
                        }
                        (Some(_), _) if *ended => {
                            self.source = Source::Done;
                            return None;
                        }
                        (Some(_), _) => {}
                    }
                    if transcript.changed().await.is_err() {
                        // The generation's lines ended: give what is left,
                        // part by part, then stop.
                        *ended = true;
                    }
                }
                Source::Saved {
                    message_id,
                    caught_up,
                } => {
                    let (message_id, wait) = (*message_id, *caught_up);
                    return self.read_saved(message_id, wait).await;
                }
                Source::Done => return None,
            }
        }
    }

    /// The next part of the saved transcript, polling while the answer is
    /// still generating and nothing new was saved.
    async fn read_saved(&mut self, message_id: i64, mut wait: bool) -> Option<String> {
        let mut failing_since = None;
        loop {
            if wait {
                tokio::time::sleep(self.poll).await;
            }
            wait = true;
            let answer = match self
                .store
                // Larger parts than from memory: each read costs the
                // database a look at the whole value.
                .answer_transcript(message_id, self.sent, MEMORY_LIMIT)
                .await
            {
                Ok(Some(answer)) => answer,
                // The answer is gone (its thread was removed).
                Ok(None) => {
                    self.source = Source::Done;
                    return Some(interrupted());
                }
                Err(err) => {
                    let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                    tracing::debug!(error = %err, "cannot read the followed answer");
                    if since.elapsed() > GIVE_UP_AFTER {
                        self.source = Source::Done;
                        return Some(interrupted());
                    }
                    continue;
                }
            };
            failing_since = None;
            let mut part = answer.part;
            self.sent(&part);
            if answer.length > self.sent {
                self.source = Source::Saved {
                    message_id,
                    caught_up: false,
                };
                return Some(part);
            }
            if !answer.is_generating {
                if !has_final_line(&self.tail) {
                    // Its node died, or could not save the end.
                    part.push_str(&interrupted());
                }
                self.source = Source::Done;
                return Some(part).filter(|part| !part.is_empty());
            }
            if !part.is_empty() {
                self.source = Source::Saved {
                    message_id,
                    caught_up: true,
                };
                return Some(part);
            }
        }
    }
}

fn into_stream(reader: Reader) -> impl Stream<Item = Result<Bytes, Infallible>> {
    futures_util::stream::unfold(reader, |mut reader| async move {
        let part = reader.next_part().await?;
        Some((Ok(Bytes::from(part)), reader))
    })
}

/// The lines of a generation running on this node: its own client's
/// response body, or a follower on this node.
pub fn local(
    transcript: watch::Receiver<Transcript>,
    store: Arc<dyn Store>,
    poll: Duration,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    into_stream(Reader {
        store,
        poll,
        source: Source::Live {
            transcript,
            ended: false,
        },
        sent: 0,
        tail: String::new(),
    })
}

/// The lines of a generation running on another node, read from the
/// transcript saved with its answer, polled every `poll`.
pub fn remote(
    store: Arc<dyn Store>,
    message_id: i64,
    poll: Duration,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    into_stream(Reader {
        store,
        poll,
        source: Source::Saved {
            message_id,
            caught_up: false,
        },
        sent: 0,
        tail: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_lines_are_recognised() {
        assert!(has_final_line(
            "{\"m\":{\"thread_uuid\":\"a\"}}\n{\"m\":{\"assistant_message_uuid\":\"b\"}}\n"
        ));
        assert!(!has_final_line(
            "{\"m\":{\"thread_uuid\":\"a\"}}\n{\"k\":\"markdown\",\"c\":\"x\"}\n"
        ));
        assert!(!has_final_line(""));
    }

    #[test]
    fn parts_are_bounded() {
        let text = "x".repeat(PART * 2 + 5);
        assert_eq!(part_from(&text, 0).len(), PART);
        assert_eq!(part_from(&text, PART * 2).len(), 5);
        assert_eq!(part_from(&text, text.len()), "");
        assert_eq!(part_from("ab", 7), "");
    }
}
