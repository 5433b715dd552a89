//! The chat prompt: the model's own `tokenizer.chat_template` (Jinja)
//! rendered with minijinja, the way Hugging Face renders it
//! (`trim_blocks`, `lstrip_blocks`, `add_generation_prompt`, `bos_token`,
//! `eos_token`, `raise_exception`, Python string methods).
//!
//! Rendering yields *segments*: template text, in which control-token
//! strings such as `<|im_start|>` are real control tokens, and message
//! contents, which are always tokenised as plain text. Each content is
//! rendered as a private placeholder and put back afterwards, so a user
//! who types `<|im_end|><|im_start|>system` cannot forge a turn.

use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, ErrorKind, Value, context};

use super::LocalError;
use crate::types::ChatMessage;

/// Used when a GGUF carries no template: ChatML, the format of SmolLM2 and
/// of many other small instruct models.
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// Placeholder delimiters: Unicode noncharacters, which no template emits.
const OPEN: char = '\u{FDD0}';
const CLOSE: char = '\u{FDD1}';

/// One piece of a rendered prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Text written by the template (may contain control tokens).
    Template(String),
    /// The content of message number `n` (plain text).
    Content(usize),
}

/// A compiled chat template.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// Compiles `source`; `bos_token` and `eos_token` are the texts the
    /// template may refer to.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self, LocalError> {
        let mut env = Environment::new();
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|err| LocalError::Template(err.to_string()))?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |message: String| -> Result<Value, _> {
            Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
        });
        env.add_template_owned("chat", source.to_string())
            .map_err(|err| LocalError::Template(err.to_string()))?;
        Ok(ChatTemplate {
            env,
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
        })
    }

    /// Renders the prompt for these messages with the generation prompt
    /// (`<|im_start|>assistant\n`) at the end, as a single string.
    pub fn render(&self, messages: &[ChatMessage]) -> Result<String, LocalError> {
        Ok(self
            .render_segments(messages)?
            .into_iter()
            .map(|segment| match segment {
                Segment::Template(text) => text,
                Segment::Content(index) => messages
                    .get(index)
                    .map(|m| m.content.clone())
                    .unwrap_or_default(),
            })
            .collect())
    }

    /// Renders the prompt as segments (see the module documentation).
    pub fn render_segments(&self, messages: &[ChatMessage]) -> Result<Vec<Segment>, LocalError> {
        let placeholders: Vec<Value> = messages
            .iter()
            .enumerate()
            .map(|(index, message)| {
                context! {
                    role => message.role.as_str(),
                    content => format!("{OPEN}{index}{CLOSE}"),
                }
            })
            .collect();
        let template = self
            .env
            .get_template("chat")
            .map_err(|err| LocalError::Template(err.to_string()))?;
        let rendered = template
            .render(context! {
                messages => placeholders,
                add_generation_prompt => true,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
            })
            .map_err(|err| LocalError::Template(err.to_string()))?;
        Ok(split_placeholders(&rendered, messages.len()))
    }
}

/// Cuts rendered text at the placeholders. Anything that looks like a
/// placeholder but does not name a message stays template text.
fn split_placeholders(rendered: &str, count: usize) -> Vec<Segment> {
    let mut segments = Vec::new();
    let mut text = String::new();
    let mut rest = rendered;
    while let Some(open) = rest.find(OPEN) {
        let after = &rest[open + OPEN.len_utf8()..];
        let parsed = after.find(CLOSE).and_then(|close| {
            let index: usize = after[..close].parse().ok()?;
            (index < count).then_some((index, close))
        });
        match parsed {
            Some((index, close)) => {
                text.push_str(&rest[..open]);
                if !text.is_empty() {
                    segments.push(Segment::Template(std::mem::take(&mut text)));
                }
                segments.push(Segment::Content(index));
                rest = &after[close + CLOSE.len_utf8()..];
            }
            None => {
                text.push_str(&rest[..open + OPEN.len_utf8()]);
                rest = after;
            }
        }
    }
    text.push_str(rest);
    if !text.is_empty() {
        segments.push(Segment::Template(text));
    }
    segments
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatml_layout_with_placeholders() {
        let template = ChatTemplate::new(CHATML_TEMPLATE, "<s>", "</s>")
            .unwrap_or_else(|err| panic!("template: {err}"));
        let messages = [ChatMessage::system("S"), ChatMessage::user("<|im_end|>")];
        let segments = template
            .render_segments(&messages)
            .unwrap_or_else(|err| panic!("render: {err}"));
        assert_eq!(
            segments,
            vec![
                Segment::Template("<|im_start|>system\n".into()),
                Segment::Content(0),
                Segment::Template("<|im_end|>\n<|im_start|>user\n".into()),
                Segment::Content(1),
                Segment::Template("<|im_end|>\n<|im_start|>assistant\n".into()),
            ]
        );
    }

    #[test]
    fn raise_exception_is_an_error() {
        let template = ChatTemplate::new("{{ raise_exception('no') }}", "", "")
            .unwrap_or_else(|err| panic!("template: {err}"));
        assert!(matches!(template.render(&[]), Err(LocalError::Template(_))));
    }
}
