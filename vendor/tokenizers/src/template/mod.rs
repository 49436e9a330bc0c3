//! Chat templates: the Jinja templates of tokenizer_config.json or GGUF
//! `tokenizer.chat_template`, rendered with minijinja the way Hugging Face
//! renders them.
//!
//! What HF templates rely on and minijinja alone does not give: `trim_blocks`
//! and `lstrip_blocks` on, loop controls, Python string/dict methods
//! (`.strip()`, `.startswith()`, `.items()`, via minijinja-contrib's pycompat),
//! `raise_exception(msg)` (a typed [`Error::TemplateRaised`] here),
//! `strftime_now(fmt)` and a Python-compatible `tojson`. The `{% generation %}`
//! markers of some templates (they only mark assistant text for training
//! masks) are removed before compiling.

mod clock;
mod pyjson;

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use candle_core::quantized::gguf_file::{self, Value as GgufValue};
use minijinja::value::ValueKind;
use minijinja::{Environment, ErrorKind, Value};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::gguf::keys;
use crate::load::TokenizerConfig;
use crate::text::SpecialTokens;

/// Instructions one render may execute. Real chat templates over long
/// conversations use a few thousand; a million leaves room for tool lists
/// and long histories while stopping a runaway loop in milliseconds.
pub const TEMPLATE_FUEL: u64 = 1_000_000;

/// One chat message. Templates that need more fields (tool calls, names)
/// can be given any serializable messages through [`ChatTemplate::render_with`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user`, `assistant`, `tool`, ...
    pub role: String,
    /// The text.
    pub content: String,
}

impl Message {
    /// A message with any role.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }

    /// A `system` message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    /// A `user` message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    /// An `assistant` message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// The error `raise_exception` returns, found again in the error chain to
/// tell a template's deliberate refusal from a bug in it.
#[derive(Debug)]
struct Raised(String);

impl fmt::Display for Raised {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Raised {}

/// A compiled chat template with the special-token strings it may refer to
/// (`bos_token`, `eos_token`, ...).
#[derive(Clone)]
pub struct ChatTemplate {
    name: String,
    source: String,
    tokens: BTreeMap<String, String>,
    env: Environment<'static>,
}

impl fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("name", &self.name)
            .field("source_len", &self.source.len())
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Compiles a template named `default`.
    ///
    /// # Errors
    /// [`Error::TemplateSyntax`] when it does not compile.
    pub fn new(source: impl Into<String>) -> Result<Self> {
        Self::named("default", source)
    }

    /// Compiles a template under a name (used in errors).
    ///
    /// # Errors
    /// [`Error::TemplateSyntax`] when it does not compile.
    pub fn named(name: impl Into<String>, source: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let source = source.into();
        let mut env = Environment::new();
        // A template comes from the model file: bound the work one render
        // may do, so a hostile loop is an error instead of a hang.
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |message: String| -> Result<Value, minijinja::Error> {
                Err(
                    minijinja::Error::new(ErrorKind::InvalidOperation, message.clone())
                        .with_source(Raised(message)),
                )
            },
        );
        env.add_filter("tojson", pyjson::tojson);
        // Python's Jinja prints True/False/None; some templates print flags.
        env.set_formatter(|out, state, value| match value.kind() {
            ValueKind::Bool => out
                .write_str(if value.is_true() { "True" } else { "False" })
                .map_err(Into::into),
            ValueKind::None => out.write_str("None").map_err(Into::into),
            _ => minijinja::escape_formatter(out, state, value),
        });
        set_clock(&mut env, None);
        env.add_template_owned(name.clone(), strip_generation_tags(&source))
            .map_err(|source| Error::TemplateSyntax {
                name: name.clone(),
                source,
            })?;
        Ok(Self {
            name,
            source,
            tokens: BTreeMap::new(),
            env,
        })
    }

    /// The default template of a tokenizer_config.json text (a plain string,
    /// or the entry named `default` of a list), with its special-token strings.
    ///
    /// # Errors
    /// Invalid JSON, no template, or a template that does not compile.
    pub fn from_tokenizer_config(json: &str) -> Result<Self> {
        Self::from_config_impl(json, None)
    }

    /// The template called `name` (e.g. `tool_use`) of a tokenizer_config.json text.
    ///
    /// # Errors
    /// Invalid JSON, no such template, or a template that does not compile.
    pub fn from_tokenizer_config_named(json: &str, name: &str) -> Result<Self> {
        Self::from_config_impl(json, Some(name))
    }

    fn from_config_impl(json: &str, name: Option<&str>) -> Result<Self> {
        let config = TokenizerConfig::parse(json, "tokenizer_config.json text")?;
        let (found, source) = config.template(name).ok_or_else(|| Error::NoChatTemplate {
            name: name.map(str::to_owned),
        })?;
        let mut template = Self::named(found.clone(), source.clone())?;
        for (var, content) in [
            ("bos_token", &config.bos),
            ("eos_token", &config.eos),
            ("unk_token", &config.unk),
            ("pad_token", &config.pad),
        ] {
            if let Some(content) = content {
                template = template.with_token(var, content.clone());
            }
        }
        Ok(template)
    }

    /// The GGUF's `tokenizer.chat_template`, with `bos_token`/`eos_token` from its vocabulary.
    ///
    /// # Errors
    /// No template, unusable tokenizer metadata, or a template that does not compile.
    pub fn from_gguf(content: &gguf_file::Content) -> Result<Self> {
        Self::from_gguf_impl(content, None)
    }

    /// The GGUF's `tokenizer.chat_template.NAME`.
    ///
    /// # Errors
    /// No such template, unusable tokenizer metadata, or a template that does not compile.
    pub fn from_gguf_named(content: &gguf_file::Content, name: &str) -> Result<Self> {
        Self::from_gguf_impl(content, Some(name))
    }

    fn from_gguf_impl(content: &gguf_file::Content, name: Option<&str>) -> Result<Self> {
        let specials = crate::gguf::build(&content.metadata)?.specials;
        Self::from_gguf_metadata(&content.metadata, name, &specials)?.ok_or_else(|| {
            Error::NoChatTemplate {
                name: name.map(str::to_owned),
            }
        })
    }

    pub(crate) fn from_gguf_metadata(
        metadata: &HashMap<String, GgufValue>,
        name: Option<&str>,
        specials: &SpecialTokens,
    ) -> Result<Option<Self>> {
        let key = name.map_or_else(
            || keys::CHAT_TEMPLATE.to_owned(),
            |n| format!("{}.{n}", keys::CHAT_TEMPLATE),
        );
        match metadata.get(&key) {
            None => Ok(None),
            Some(GgufValue::String(source)) => Ok(Some(
                Self::named(name.unwrap_or("default"), source.clone())?
                    .with_special_tokens(specials),
            )),
            Some(other) => Err(Error::WrongType {
                key,
                expected: "a string",
                found: crate::gguf::describe(other),
            }),
        }
    }

    /// Sets a token-string variable such as `bos_token`.
    #[must_use]
    pub fn with_token(mut self, variable: &str, content: impl Into<String>) -> Self {
        self.tokens.insert(variable.to_owned(), content.into());
        self
    }

    /// Sets `bos_token`, `eos_token`, `unk_token`, `pad_token` from `specials`.
    #[must_use]
    pub fn with_special_tokens(mut self, specials: &SpecialTokens) -> Self {
        for (var, token) in [
            ("bos_token", &specials.bos),
            ("eos_token", &specials.eos),
            ("unk_token", &specials.unk),
            ("pad_token", &specials.pad),
        ] {
            if let Some(token) = token {
                self.tokens.insert(var.to_owned(), token.content.clone());
            }
        }
        self
    }

    /// Fixes the time `strftime_now` sees (seconds since the Unix epoch, UTC),
    /// for reproducible prompts and tests; by default it is the current time.
    #[must_use]
    pub fn with_fixed_time(mut self, epoch_secs: i64) -> Self {
        set_clock(&mut self.env, Some(epoch_secs));
        self
    }

    /// The template's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The template text as given.
    #[must_use]
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders `messages`; `add_generation_prompt` asks the template to open
    /// the assistant's turn.
    ///
    /// # Errors
    /// [`Error::TemplateRaised`] when the template refuses the conversation,
    /// [`Error::TemplateRender`] for other failures.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        self.render_with(messages, add_generation_prompt, &())
    }

    /// Renders any serializable `messages`, with `extra` (which must
    /// serialize to a map, or to nothing) merged into the context, e.g.
    /// `tools`, `documents`, or an override of `bos_token`.
    ///
    /// # Errors
    /// As [`ChatTemplate::render`], plus [`Error::TemplateContext`] when
    /// `extra` is not a map.
    pub fn render_with<M, E>(
        &self,
        messages: &M,
        add_generation_prompt: bool,
        extra: &E,
    ) -> Result<String>
    where
        M: Serialize + ?Sized,
        E: Serialize + ?Sized,
    {
        let mut context: BTreeMap<String, Value> = self
            .tokens
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.clone())))
            .collect();
        context.insert("messages".to_owned(), Value::from_serialize(messages));
        context.insert(
            "add_generation_prompt".to_owned(),
            Value::from(add_generation_prompt),
        );
        let extra = Value::from_serialize(extra);
        match extra.kind() {
            ValueKind::Undefined | ValueKind::None => {}
            ValueKind::Map => {
                let keys: Vec<Value> = extra
                    .try_iter()
                    .map_err(|e| self.render_error(e))?
                    .collect();
                for key in keys {
                    let value = extra.get_item(&key).map_err(|e| self.render_error(e))?;
                    let key = key.as_str().map_or_else(|| key.to_string(), str::to_owned);
                    context.insert(key, value);
                }
            }
            other => {
                return Err(Error::TemplateContext {
                    found: format!("{other:?}"),
                });
            }
        }
        let template = self
            .env
            .get_template(&self.name)
            .map_err(|e| self.render_error(e))?;
        template
            .render(Value::from(context))
            .map_err(|e| self.render_error(e))
    }

    fn render_error(&self, error: minijinja::Error) -> Error {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&error);
        while let Some(current) = cause {
            if let Some(Raised(message)) = current.downcast_ref::<Raised>() {
                return Error::TemplateRaised {
                    name: self.name.clone(),
                    message: message.clone(),
                };
            }
            cause = current.source();
        }
        Error::TemplateRender {
            name: self.name.clone(),
            source: error,
        }
    }
}

fn set_clock(env: &mut Environment<'static>, fixed: Option<i64>) {
    env.add_function("strftime_now", move |format: String| -> String {
        clock::strftime(&format, fixed.unwrap_or_else(clock::now_epoch_secs))
    });
}

/// Removes `{% generation %}` / `{% endgeneration %}` tags (with any
/// whitespace-control dashes), keeping what they enclose.
fn strip_generation_tags(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(start) = rest.find("{%") {
        let after_open = &rest[start + 2..];
        let inner_end = after_open.find("%}");
        let is_generation = inner_end.is_some_and(|end| {
            let inner =
                after_open[..end].trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
            inner == "generation" || inner == "endgeneration"
        });
        match inner_end {
            Some(end) if is_generation => {
                out.push_str(&rest[..start]);
                rest = &after_open[end + 2..];
            }
            _ => {
                out.push_str(&rest[..start + 2]);
                rest = after_open;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::strip_generation_tags;

    #[test]
    fn generation_tags_are_removed_and_nothing_else() {
        assert_eq!(
            strip_generation_tags("a{% generation %}b{%- endgeneration -%}c{% if x %}d{% endif %}"),
            "abc{% if x %}d{% endif %}"
        );
        assert_eq!(strip_generation_tags("{% unterminated"), "{% unterminated");
    }
}
