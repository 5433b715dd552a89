//! Turning a request's messages into the prompt's token ids, fitted to the
//! model's context window.
//!
//! The context (4096 tokens for the default model) holds the prompt and
//! the answer. Room for the answer is kept first: the request's
//! `max_tokens` (the configured default, 512, when it has none), but never
//! more than half the context. A conversation whose prompt does not fit in
//! the rest loses its oldest turns first — a user message together with
//! the answers that follow it, so the history still starts with a user
//! turn, as chat templates expect. The system prompt and the last message
//! (the question being answered) are always kept; when those alone do not
//! fit, the request fails with [`LlmError::ContextOverflow`] before any
//! generation, rather than answer a question whose beginning was cut off.
//!
//! This runs on the blocking pool, not on the inference thread: a long
//! prompt costs the waiting request, never the answer being generated.

use std::sync::{Arc, Mutex};

use super::gguf_tokenizer::GgufTokenizer;
use super::template::{ChatTemplate, Segment};
use super::token_cache::TokenCache;
use crate::types::{ChatMessage, LlmError, Role};

/// Builds prompts for one model. Shared by all requests (`Arc`).
pub(crate) struct PromptBuilder {
    template: ChatTemplate,
    tokenizer: Arc<GgufTokenizer>,
    context_length: usize,
    cache: Mutex<TokenCache>,
}

impl PromptBuilder {
    pub(crate) fn new(
        template: ChatTemplate,
        tokenizer: Arc<GgufTokenizer>,
        context_length: usize,
    ) -> PromptBuilder {
        PromptBuilder {
            template,
            tokenizer,
            context_length,
            cache: Mutex::new(TokenCache::default()),
        }
    }

    /// The prompt's tokens may use the context minus the room kept for the
    /// answer: `max_tokens`, at most half the context.
    pub(crate) fn prompt_budget(&self, max_tokens: u32) -> usize {
        let answer = (max_tokens.max(1) as usize).min(self.context_length / 2);
        self.context_length - answer
    }

    /// The prompt for `messages`, leaving room for `max_tokens` answer
    /// tokens (see the module documentation).
    pub(crate) fn build(
        &self,
        messages: &[ChatMessage],
        max_tokens: u32,
    ) -> Result<Vec<u32>, LlmError> {
        let budget = self.prompt_budget(max_tokens);
        let contents: Vec<Arc<[u32]>> = messages.iter().map(|m| self.content_ids(m)).collect();
        let roles: Vec<Role> = messages.iter().map(|m| m.role).collect();

        // What each message costs: its content plus the template text that
        // introduces it; the text after the last message (the generation
        // prompt) is a fixed cost. Exact for templates that wrap each
        // message on its own (ChatML, Llama 3), an estimate for others —
        // hence the check of the real prompt below.
        let mut costs = vec![0usize; messages.len()];
        let mut pending = 0;
        for segment in self.render(&roles, None)? {
            match segment {
                Segment::Template(text) => pending += self.tokenizer.encode(&text, true).len(),
                Segment::Content(k) => {
                    if let (Some(cost), Some(ids)) = (costs.get_mut(k), contents.get(k)) {
                        *cost += pending + ids.len();
                    }
                    pending = 0;
                }
            }
        }
        let mut kept = fit_turns(&roles, &costs, pending, budget).map_err(|needed| {
            LlmError::ContextOverflow {
                needed,
                limit: budget,
            }
        })?;

        loop {
            let mut ids = Vec::with_capacity(budget);
            for segment in self.render(&roles, Some(&kept))? {
                match segment {
                    Segment::Template(text) => ids.extend(self.tokenizer.encode(&text, true)),
                    Segment::Content(k) => {
                        if let Some(content) = kept.get(k).and_then(|&i| contents.get(i)) {
                            ids.extend_from_slice(content);
                        }
                    }
                }
            }
            if ids.len() <= budget {
                return Ok(ids);
            }
            if drop_oldest_turn(&roles, &mut kept).is_empty() {
                return Err(LlmError::ContextOverflow {
                    needed: ids.len(),
                    limit: budget,
                });
            }
        }
    }

    /// Renders the template for the messages `kept` (all when `None`),
    /// numbering contents by their place among the rendered ones. The
    /// template only sees roles: contents are placeholders (see
    /// `template.rs`), so messages without their text render the same and
    /// nothing is copied.
    fn render(&self, roles: &[Role], kept: Option<&[usize]>) -> Result<Vec<Segment>, LlmError> {
        let shells: Vec<ChatMessage> = match kept {
            Some(kept) => kept
                .iter()
                .filter_map(|&i| roles.get(i))
                .map(|&role| ChatMessage::new(role, String::new()))
                .collect(),
            None => roles
                .iter()
                .map(|&role| ChatMessage::new(role, String::new()))
                .collect(),
        };
        self.template
            .render_segments(&shells)
            .map_err(|err| LlmError::Upstream(format!("local model: {err}")))
    }

    /// The token ids of a message's content, from the cache when it was
    /// seen recently (see `token_cache.rs` for why).
    fn content_ids(&self, message: &ChatMessage) -> Arc<[u32]> {
        if let Some(ids) = self.cache().get(&message.content) {
            return ids;
        }
        // Tokenized without holding the lock: other requests' lookups do
        // not wait for a long message.
        let ids: Arc<[u32]> = self.tokenizer.encode(&message.content, false).into();
        self.cache().insert(&message.content, ids.clone());
        ids
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, TokenCache> {
        // A panic while the lock was held may have left the cache half
        // updated; it is only a cache, so start it afresh.
        self.cache.lock().unwrap_or_else(|poisoned| {
            self.cache.clear_poison();
            let mut cache = poisoned.into_inner();
            cache.clear();
            cache
        })
    }
}

/// Which messages to send so that the prompt fits in `budget` tokens.
///
/// `costs[i]` is what message `i` adds to the prompt, `overhead` what the
/// prompt costs besides its messages. Oldest turns go first (see
/// [`drop_oldest_turn`]); system messages and the last message always stay.
/// Returns the indices of the kept messages in order, or — when even the
/// messages that must stay do not fit — the tokens those need.
pub(crate) fn fit_turns(
    roles: &[Role],
    costs: &[usize],
    overhead: usize,
    budget: usize,
) -> Result<Vec<usize>, usize> {
    let cost = |i: usize| costs.get(i).copied().unwrap_or(0);
    let mut kept: Vec<usize> = (0..roles.len()).collect();
    let mut total = kept
        .iter()
        .map(|&i| cost(i))
        .fold(overhead, usize::saturating_add);
    while total > budget {
        let dropped = drop_oldest_turn(roles, &mut kept);
        if dropped.is_empty() {
            return Err(total);
        }
        total -= dropped.into_iter().map(cost).sum::<usize>();
    }
    Ok(kept)
}

/// Removes the oldest droppable message from `kept` — neither a system
/// message nor the last message — and then any answers that followed it,
/// so the history left starts with a user turn. Returns what was removed
/// (empty when nothing may go).
pub(crate) fn drop_oldest_turn(roles: &[Role], kept: &mut Vec<usize>) -> Vec<usize> {
    let droppable = |kept: &[usize]| {
        let last = kept.len().checked_sub(1)?;
        kept[..last]
            .iter()
            .position(|&i| roles.get(i).is_some_and(|&role| role != Role::System))
    };
    let mut dropped = Vec::new();
    if let Some(at) = droppable(kept.as_slice()) {
        dropped.push(kept.remove(at));
        while let Some(at) = droppable(kept.as_slice())
            && roles.get(kept[at]) == Some(&Role::Assistant)
        {
            dropped.push(kept.remove(at));
        }
    }
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::gguf_tokenizer::byte_to_unicode;
    use crate::local::template::CHATML_TEMPLATE;

    use Role::{Assistant as A, System as S, User as U};

    /// A builder over a vocabulary of single bytes plus ChatML's two
    /// control tokens (no merges: one token per byte, so token counts are
    /// easy to reason about) and a context of `context` tokens.
    fn builder(context: usize) -> PromptBuilder {
        let mut tokens: Vec<String> = byte_to_unicode().iter().map(char::to_string).collect();
        tokens.push("<|im_start|>".into());
        tokens.push("<|im_end|>".into());
        let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
        let mut types = vec![1; refs.len()];
        types[256] = 3;
        types[257] = 3;
        let tokenizer = GgufTokenizer::new(&refs, &types, &[], "gpt2", None, 257)
            .unwrap_or_else(|err| panic!("tokenizer: {err}"));
        let template = ChatTemplate::new(CHATML_TEMPLATE, "", "<|im_end|>")
            .unwrap_or_else(|err| panic!("template: {err}"));
        PromptBuilder::new(template, Arc::new(tokenizer), context)
    }

    /// The prompt as one string, tokenized in one go: what `build` must
    /// equal for the messages it keeps.
    fn whole(builder: &PromptBuilder, messages: &[ChatMessage]) -> Vec<u32> {
        let text = builder
            .template
            .render(messages)
            .unwrap_or_else(|err| panic!("render: {err}"));
        builder.tokenizer.encode(&text, true)
    }

    fn conversation() -> Vec<ChatMessage> {
        vec![
            ChatMessage::system("Be brief."),
            ChatMessage::user("x".repeat(100)),
            ChatMessage::assistant("y".repeat(100)),
            ChatMessage::user("Question two?"),
            ChatMessage::assistant("Answer two."),
            ChatMessage::user("Last question?"),
        ]
    }

    #[test]
    fn a_fitting_prompt_is_the_whole_conversation() {
        let builder = builder(4096);
        let messages = conversation();
        let ids = builder
            .build(&messages, 100)
            .unwrap_or_else(|err| panic!("build: {err}"));
        assert_eq!(ids, whole(&builder, &messages));
        // Again, from the cache: the same ids.
        let again = builder
            .build(&messages, 100)
            .unwrap_or_else(|err| panic!("build: {err}"));
        assert_eq!(again, ids);
    }

    #[test]
    fn the_oldest_exchange_goes_when_the_answer_needs_room() {
        let builder = builder(512);
        let messages = conversation();
        let all = whole(&builder, &messages).len();
        assert!(all > 300 && all < 512, "{all}");
        // Room for 200 answer tokens: the 100-letter exchange must go.
        let ids = builder
            .build(&messages, 200)
            .unwrap_or_else(|err| panic!("build: {err}"));
        let kept = [0, 3, 4, 5].map(|i| messages[i].clone());
        assert_eq!(ids, whole(&builder, &kept));
        assert!(ids.len() <= 312);
    }

    #[test]
    fn a_message_that_cannot_fit_is_an_overflow() {
        let builder = builder(512);
        let mut messages = conversation();
        messages.push(ChatMessage::user("z".repeat(400)));
        // The answer's room is capped at half the context.
        match builder.build(&messages, 10_000) {
            Err(LlmError::ContextOverflow { needed, limit }) => {
                assert_eq!(limit, 256);
                assert!(needed > 400, "{needed}");
            }
            other => panic!("expected an overflow, got {other:?}"),
        }
        // With little room kept for the answer it fits, after the system
        // prompt and the newest earlier message that still fits.
        let ids = builder
            .build(&messages, 16)
            .unwrap_or_else(|err| panic!("build: {err}"));
        let kept = [0, 5, 6].map(|i| messages[i].clone());
        assert_eq!(ids, whole(&builder, &kept));
    }

    #[test]
    fn everything_is_kept_when_it_fits() {
        let roles = [S, U, A, U];
        assert_eq!(
            fit_turns(&roles, &[10, 10, 10, 10], 5, 45),
            Ok(vec![0, 1, 2, 3])
        );
    }

    #[test]
    fn oldest_turns_go_first_whole() {
        let roles = [S, U, A, U, A, U];
        let costs = [10, 100, 100, 20, 20, 30];
        // Dropping the first question takes its answer with it.
        assert_eq!(fit_turns(&roles, &costs, 0, 150), Ok(vec![0, 3, 4, 5]));
        // Then the next exchange.
        assert_eq!(fit_turns(&roles, &costs, 0, 79), Ok(vec![0, 5]));
        // The overhead counts.
        assert_eq!(fit_turns(&roles, &costs, 40, 80), Ok(vec![0, 5]));
    }

    #[test]
    fn system_and_last_message_always_stay() {
        let roles = [S, U, A, U];
        let costs = [10, 5, 5, 100];
        assert_eq!(fit_turns(&roles, &costs, 2, 112), Ok(vec![0, 3]));
        // Not even the system prompt and the question fit: the tokens they
        // need.
        assert_eq!(fit_turns(&roles, &costs, 2, 111), Err(112));
        assert_eq!(fit_turns(&[U], &[500], 0, 100), Err(500));
    }

    #[test]
    fn consecutive_answers_go_with_their_question() {
        // A history that (against the server's rules) has two answers in a
        // row, and a rejection prompt that ends with an answer.
        let roles = [S, U, A, A, U, A];
        let mut kept: Vec<usize> = (0..roles.len()).collect();
        assert_eq!(drop_oldest_turn(&roles, &mut kept), vec![1, 2, 3]);
        assert_eq!(kept, vec![0, 4, 5]);
        assert_eq!(drop_oldest_turn(&roles, &mut kept), vec![4]);
        assert_eq!(kept, vec![0, 5]);
        assert!(drop_oldest_turn(&roles, &mut kept).is_empty());
    }

    #[test]
    fn no_system_message() {
        let roles = [U, A, U];
        assert_eq!(fit_turns(&roles, &[50, 50, 50], 0, 60), Ok(vec![2]));
    }
}
