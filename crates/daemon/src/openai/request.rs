//! The body of `POST /v1/chat/completions` and `POST /v1/completions`:
//! parsed leniently where OpenAI's clients vary (unknown fields ignored,
//! `null` as absent, a string or a list where both occur) and strictly on
//! types (a wrong type is a 400 naming the field).

use serde::Deserialize;
use tektra_inference::{Message, Prompt, Sampling};

use crate::error::ApiError;

/// A string, or a list of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// A message's content: text, or a list of parts of which the text ones count.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize)]
pub(crate) struct Part {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ChatMessage {
    role: String,
    #[serde(default)]
    content: Option<Content>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct StreamOptions {
    #[serde(default)]
    pub(crate) include_usage: Option<bool>,
}

/// Both endpoints' fields; which of `messages` and `prompt` is required
/// depends on the endpoint.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct CompletionRequest {
    #[serde(default)]
    pub(crate) model: Option<String>,
    #[serde(default)]
    messages: Option<Vec<ChatMessage>>,
    #[serde(default)]
    prompt: Option<OneOrMany>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    top_p: Option<f32>,
    #[serde(default)]
    top_k: Option<u32>,
    #[serde(default)]
    min_p: Option<f32>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    stop: Option<OneOrMany>,
    #[serde(default)]
    pub(crate) stream: Option<bool>,
    #[serde(default)]
    pub(crate) stream_options: Option<StreamOptions>,
    #[serde(default)]
    repeat_penalty: Option<f32>,
    #[serde(default)]
    frequency_penalty: Option<f32>,
    #[serde(default)]
    presence_penalty: Option<f32>,
    #[serde(default)]
    n: Option<u32>,
    #[serde(default)]
    logprobs: Option<serde_json::Value>,
    #[serde(default)]
    echo: Option<bool>,
}

/// Parses a body, naming the field whose type is wrong.
pub(crate) fn parse(body: &[u8]) -> Result<CompletionRequest, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            ApiError::invalid(format!(
                "the body is not a JSON object of the request: {inner}"
            ))
        } else {
            ApiError::field(&path, format!("{path}: {inner}"))
        }
    })
}

/// `max_tokens` of 0 means "as many as fit in the context" to the worker.
pub(crate) const FILL_CONTEXT: usize = 0;

impl CompletionRequest {
    /// The chat of a chat completion.
    pub(crate) fn chat(&self) -> Result<Prompt, ApiError> {
        let Some(messages) = &self.messages else {
            return Err(ApiError::field("messages", "messages: missing field"));
        };
        if messages.is_empty() {
            return Err(ApiError::field("messages", "messages: the list is empty"));
        }
        let messages = messages
            .iter()
            .map(|m| {
                let content = match &m.content {
                    None => String::new(),
                    Some(Content::Text(t)) => t.clone(),
                    Some(Content::Parts(parts)) => parts
                        .iter()
                        .filter(|p| p.kind == "text")
                        .filter_map(|p| p.text.as_deref())
                        .collect::<Vec<_>>()
                        .join("\n"),
                };
                // OpenAI renamed `system` to `developer` for newer models.
                let role = if m.role == "developer" {
                    "system"
                } else {
                    &m.role
                };
                Message::new(role, content)
            })
            .collect();
        Ok(Prompt::Chat(messages))
    }

    /// The prompt of a (legacy) completion.
    pub(crate) fn text(&self) -> Result<Prompt, ApiError> {
        match &self.prompt {
            None => Err(ApiError::field("prompt", "prompt: missing field")),
            Some(OneOrMany::One(t)) => Ok(Prompt::Text(t.clone())),
            Some(OneOrMany::Many(list)) => match list.as_slice() {
                [one] => Ok(Prompt::Text(one.clone())),
                _ => Err(ApiError::field(
                    "prompt",
                    "prompt: one prompt per request (send the others as their own requests)",
                )),
            },
        }
    }

    /// Whether the stream ends with a usage chunk.
    pub(crate) fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }

    /// The engine's sampling settings; fields it cannot honour are refused
    /// rather than silently ignored.
    pub(crate) fn sampling(&self) -> Result<Sampling, ApiError> {
        if self.n.is_some_and(|n| n != 1) {
            return Err(ApiError::field("n", "n: one choice per request"));
        }
        if self
            .logprobs
            .as_ref()
            .is_some_and(|v| !v.is_null() && *v != serde_json::Value::Bool(false))
        {
            return Err(ApiError::field("logprobs", "logprobs: not supported"));
        }
        if self.echo == Some(true) {
            return Err(ApiError::field("echo", "echo: not supported"));
        }
        for (name, value) in [
            ("frequency_penalty", self.frequency_penalty),
            ("presence_penalty", self.presence_penalty),
        ] {
            if value.is_some_and(|v| v != 0.0) {
                return Err(ApiError::field(
                    name,
                    format!("{name}: not supported; repeat_penalty (1 = off) is"),
                ));
            }
        }
        let defaults = Sampling::default();
        let stop = match &self.stop {
            None => Vec::new(),
            Some(OneOrMany::One(s)) => vec![s.clone()],
            Some(OneOrMany::Many(list)) => list.clone(),
        };
        let sampling = Sampling {
            temperature: self.temperature.unwrap_or(defaults.temperature),
            top_k: self.top_k.map_or(defaults.top_k, |k| k as usize),
            top_p: self.top_p.unwrap_or(defaults.top_p),
            min_p: self.min_p.unwrap_or(defaults.min_p),
            // OpenAI's clients expect no penalty unless they ask for one.
            repeat_penalty: self.repeat_penalty.unwrap_or(1.0),
            seed: self.seed.unwrap_or(defaults.seed),
            max_tokens: self
                .max_completion_tokens
                .or(self.max_tokens)
                .map_or(FILL_CONTEXT, |n| n as usize),
            stop,
            ..defaults
        };
        if self.max_completion_tokens.or(self.max_tokens) == Some(0) {
            return Err(ApiError::field("max_tokens", "max_tokens: at least 1"));
        }
        // Validate with a stand-in count; the worker sets the real one.
        Sampling {
            max_tokens: sampling.max_tokens.max(1),
            ..sampling.clone()
        }
        .validate()
        .map_err(|e| ApiError::invalid(e.to_string()))?;
        Ok(sampling)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_type_names_its_field_and_unknown_fields_are_ignored() {
        let e = parse(br#"{"model":"m","max_tokens":"ten"}"#).unwrap_err();
        let body = e.body().to_string();
        assert!(body.contains(r#""param":"max_tokens""#), "{body}");
        let e = parse(br#"{"messages":[{"role":"user","content":7}]}"#).unwrap_err();
        assert!(
            e.body().to_string().contains("messages[0].content"),
            "{:?}",
            e.body()
        );
        let r = parse(br#"{"model":"m","prompt":"hi","whatever":{"x":1},"top_p":null}"#).unwrap();
        assert!(matches!(r.text().unwrap(), Prompt::Text(t) if t == "hi"));
        assert!(parse(b"[1,2]").is_err());
    }

    #[test]
    fn sampling_fields_map_and_unsupported_ones_are_refused() {
        let r = parse(br#"{"max_completion_tokens":5,"max_tokens":9,"temperature":0,"stop":"x"}"#)
            .unwrap();
        let s = r.sampling().unwrap();
        assert_eq!(
            (s.max_tokens, s.temperature, s.stop),
            (5, 0.0, vec!["x".into()])
        );
        assert_eq!(s.repeat_penalty, 1.0);
        assert_eq!(
            parse(b"{}").unwrap().sampling().unwrap().max_tokens,
            FILL_CONTEXT
        );
        for bad in [
            &br#"{"n":2}"#[..],
            br#"{"frequency_penalty":0.5}"#,
            br#"{"logprobs":true}"#,
            br#"{"temperature":-1}"#,
            br#"{"max_tokens":0}"#,
        ] {
            assert!(
                parse(bad).unwrap().sampling().is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn content_parts_join_their_text() {
        let r = parse(
            br#"{"messages":[{"role":"developer","content":[{"type":"text","text":"a"},{"type":"image_url"},{"type":"text","text":"b"}]}]}"#,
        )
        .unwrap();
        let Prompt::Chat(m) = r.chat().unwrap() else {
            panic!("a chat")
        };
        assert_eq!(
            (m[0].role.as_str(), m[0].content.as_str()),
            ("system", "a\nb")
        );
    }
}
