//! Where an answer goes: the one decision behind the reference's
//! persistence rules for normal, edit and reload modes, as a pure function
//! of the mode and the thread's state. The store reads the state, asks
//! [`place_answer`], and carries the plan out in the same transaction.
//!
//! Besides the reference's rules it handles threads a dead node or a failed
//! save left behind: an answer is never placed before its question, and a
//! reload answers the last question — replacing its answer if it has one —
//! rather than replacing the answer to an earlier question.

use crate::AnswerTo;

/// An active (not replaced) message: its row id and sequence index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub id: i64,
    pub index: i64,
}

/// What the store knows about the thread when it places an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadState {
    /// The user message the mode names (normal and edit modes), as stored.
    pub question: Option<Slot>,
    /// The last active user message (what reload answers again).
    pub last_question: Option<Slot>,
    /// The last active assistant message.
    pub last_answer: Option<Slot>,
    /// The thread's highest sequence index + 1 (1 when empty).
    pub next_index: i64,
}

/// What to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Reload on a thread without a question: first store the request's
    /// input as a user message at this index.
    pub new_question_at: Option<i64>,
    /// The user message the answer belongs to (reported in the final line).
    pub question_id: Option<i64>,
    /// The answer's sequence index.
    pub index: i64,
    /// The active answer this one replaces.
    pub replaces: Option<i64>,
}

/// The answer after `question`: replaces the last answer when that answer
/// follows the question, else goes right after the question.
fn after(question: Slot, last_answer: Option<Slot>) -> (i64, Option<i64>) {
    match last_answer {
        Some(answer) if answer.index > question.index => (answer.index, Some(answer.id)),
        _ => (question.index + 1, None),
    }
}

/// Decides where an answer is written. `None` when the mode's question is
/// missing (normal or edit mode naming a message that is not in the thread).
pub fn place_answer(to: &AnswerTo, state: &ThreadState) -> Option<Plan> {
    match to {
        // Normal mode: a new row right after the question.
        AnswerTo::Message { .. } => {
            let question = state.question?;
            Some(Plan {
                new_question_at: None,
                question_id: Some(question.id),
                index: question.index + 1,
                replaces: None,
            })
        }
        // Edit: the replacement question sits at the old question's index;
        // the old answer after it is replaced.
        AnswerTo::Edit { .. } => {
            let question = state.question?;
            let (index, replaces) = after(question, state.last_answer);
            Some(Plan {
                new_question_at: None,
                question_id: Some(question.id),
                index,
                replaces,
            })
        }
        AnswerTo::Reload { .. } => Some(match state.last_question {
            // The reference reports no user message in reload mode.
            Some(question) => {
                let (index, replaces) = after(question, state.last_answer);
                Plan {
                    new_question_at: None,
                    question_id: None,
                    index,
                    replaces,
                }
            }
            // Nothing to reload: a normal exchange instead.
            None => Plan {
                new_question_at: Some(state.next_index),
                question_id: None,
                index: state.next_index + 1,
                replaces: None,
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(id: i64, index: i64) -> Option<Slot> {
        Some(Slot { id, index })
    }

    fn state(
        question: Option<Slot>,
        last_question: Option<Slot>,
        last_answer: Option<Slot>,
        next_index: i64,
    ) -> ThreadState {
        ThreadState {
            question,
            last_question,
            last_answer,
            next_index,
        }
    }

    const MESSAGE: AnswerTo = AnswerTo::Message { user_message_id: 0 };
    const EDIT: AnswerTo = AnswerTo::Edit { user_message_id: 0 };

    fn reload() -> AnswerTo {
        AnswerTo::Reload {
            input: "again".into(),
        }
    }

    #[test]
    fn a_new_answer_follows_its_question() {
        let plan = place_answer(&MESSAGE, &state(slot(5, 3), slot(5, 3), slot(4, 2), 4));
        assert_eq!(
            plan,
            Some(Plan {
                new_question_at: None,
                question_id: Some(5),
                index: 4,
                replaces: None
            })
        );
        assert_eq!(place_answer(&MESSAGE, &state(None, None, None, 1)), None);
    }

    #[test]
    fn edit_replaces_the_answer_after_the_question() {
        // q1 a2 q3(edited → id 9 at 3) a4: a4 is replaced at 4.
        let plan = place_answer(&EDIT, &state(slot(9, 3), slot(9, 3), slot(4, 4), 5)).unwrap();
        assert_eq!(
            (plan.question_id, plan.index, plan.replaces),
            (Some(9), 4, Some(4))
        );
        // The edited question was never answered (its node died): the last
        // answer belongs to an earlier question and stays; the new answer
        // goes after the question, never before it.
        let plan = place_answer(&EDIT, &state(slot(9, 3), slot(9, 3), slot(2, 2), 4)).unwrap();
        assert_eq!((plan.index, plan.replaces), (4, None));
        // A first question without any answer.
        let plan = place_answer(&EDIT, &state(slot(9, 1), slot(9, 1), None, 2)).unwrap();
        assert_eq!((plan.index, plan.replaces), (2, None));
    }

    #[test]
    fn reload_answers_the_last_question_again() {
        let plan = place_answer(&reload(), &state(None, slot(3, 3), slot(4, 4), 5)).unwrap();
        assert_eq!(
            plan,
            Plan {
                new_question_at: None,
                question_id: None,
                index: 4,
                replaces: Some(4)
            }
        );
        // The last question has no answer: it gets one; the previous
        // question's answer is not replaced.
        let plan = place_answer(&reload(), &state(None, slot(3, 3), slot(2, 2), 4)).unwrap();
        assert_eq!((plan.index, plan.replaces), (4, None));
    }

    #[test]
    fn reload_on_an_empty_thread_is_a_normal_exchange() {
        let plan = place_answer(&reload(), &state(None, None, None, 1)).unwrap();
        assert_eq!(
            plan,
            Plan {
                new_question_at: Some(1),
                question_id: None,
                index: 2,
                replaces: None
            }
        );
    }
}
