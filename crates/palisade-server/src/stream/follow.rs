//! Following a running answer (`GET /api/chat-threads/{uuid}/stream/`): the
//! lines its client was sent so far, then the live ones, then the final
//! line — from any node.
//!
//! On the node that generates the answer a follower reads the generation's
//! in-memory transcript and gets each line as it is sent. On another node
//! it polls the transcript the generating node saves with the answer (every
//! `save_interval`), so it trails the direct client by at most about two
//! save intervals. Both end when the generation's lines end; an answer whose
//! node died ends with the `e` line.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use futures_util::Stream;
use palisade_store::{AnswerTranscript, Store};
use tokio::sync::watch;

use super::ndjson::Line;

/// How long a remote follower keeps polling through database errors.
const GIVE_UP_AFTER: Duration = Duration::from_secs(120);

/// What of `transcript` comes after the first `sent` bytes.
fn new_part(transcript: &str, sent: usize) -> Option<String> {
    transcript
        .get(sent..)
        .filter(|rest| !rest.is_empty())
        .map(str::to_owned)
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

/// The lines of a generation running on this node.
pub fn local(transcript: watch::Receiver<String>) -> impl Stream<Item = Result<Bytes, Infallible>> {
    futures_util::stream::unfold(Some((transcript, 0usize)), |state| async move {
        let (mut transcript, sent) = state?;
        loop {
            let fresh = new_part(&transcript.borrow_and_update(), sent);
            if let Some(fresh) = fresh {
                let sent = sent + fresh.len();
                return Some((Ok(Bytes::from(fresh)), Some((transcript, sent))));
            }
            if transcript.changed().await.is_err() {
                // The generation's lines ended: whatever came last.
                let rest = new_part(&transcript.borrow(), sent)?;
                return Some((Ok(Bytes::from(rest)), None));
            }
        }
    })
}

/// A follower of an answer generated on another node.
struct Remote {
    store: Arc<dyn Store>,
    message_id: i64,
    poll: Duration,
    /// Bytes of the transcript already sent.
    sent: usize,
    /// The first read, made by the handler.
    pending: Option<AnswerTranscript>,
}

impl Remote {
    /// The next chunk of lines; `None` at the end.
    async fn next_chunk(&mut self) -> Option<(String, bool)> {
        let mut failing_since = None;
        loop {
            let answer = match self.pending.take() {
                Some(answer) => answer,
                None => {
                    tokio::time::sleep(self.poll).await;
                    match self.store.answer_transcript(self.message_id).await {
                        Ok(Some(answer)) => answer,
                        // The answer is gone (its thread was removed).
                        Ok(None) => return Some((interrupted(), true)),
                        Err(err) => {
                            let since =
                                *failing_since.get_or_insert_with(tokio::time::Instant::now);
                            tracing::debug!(error = %err, "cannot read the followed answer");
                            if since.elapsed() > GIVE_UP_AFTER {
                                return Some((interrupted(), true));
                            }
                            continue;
                        }
                    }
                }
            };
            failing_since = None;
            let mut chunk = new_part(&answer.transcript, self.sent).unwrap_or_default();
            self.sent += chunk.len();
            if !answer.is_generating {
                if !has_final_line(&answer.transcript) {
                    // Its node died, or could not save the end.
                    chunk.push_str(&interrupted());
                }
                return Some((chunk, true));
            }
            if !chunk.is_empty() {
                return Some((chunk, false));
            }
        }
    }
}

/// The lines of a generation running on another node, read from the
/// transcript saved with its answer, polled every `poll`.
pub fn remote(
    store: Arc<dyn Store>,
    first: AnswerTranscript,
    poll: Duration,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    let follower = Remote {
        store,
        message_id: first.message_id,
        poll,
        sent: 0,
        pending: Some(first),
    };
    futures_util::stream::unfold(Some(follower), |state| async move {
        let mut follower = state?;
        let (chunk, ended) = follower.next_chunk().await?;
        let next = (!ended).then_some(follower);
        Some((Ok(Bytes::from(chunk)), next))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

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

    #[tokio::test]
    async fn a_local_follower_gets_everything_once() {
        let (sender, receiver) = watch::channel(String::from("one\n"));
        let follower = tokio::spawn(local(receiver).map(|c| c.unwrap()).collect::<Vec<Bytes>>());
        tokio::task::yield_now().await;
        sender.send_modify(|t| t.push_str("two\n"));
        sender.send_modify(|t| t.push_str("three\n"));
        drop(sender);
        let chunks = follower.await.unwrap();
        let all: Vec<u8> = chunks.concat();
        assert_eq!(all, b"one\ntwo\nthree\n");
    }
}
