//! Loading from Hugging Face files: tokenizer.json, tokenizer_config.json,
//! chat_template.jinja, generation_config.json.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value as Json;

use crate::error::{Error, Result};
use crate::gguf::END_OF_TURN_MARKERS;
use crate::template::ChatTemplate;
use crate::text::{SpecialToken, SpecialTokens, TextTokenizer};

/// What tokenizer_config.json says that we use.
#[derive(Debug, Default)]
pub(crate) struct TokenizerConfig {
    /// `(name, source)`; a plain string template is named `default`.
    pub(crate) templates: Vec<(String, String)>,
    pub(crate) bos: Option<String>,
    pub(crate) eos: Option<String>,
    pub(crate) unk: Option<String>,
    pub(crate) pad: Option<String>,
}

impl TokenizerConfig {
    /// Parses the JSON text; `file` names it in errors.
    pub(crate) fn parse(text: &str, file: &str) -> Result<Self> {
        let json: Json = serde_json::from_str(text).map_err(|source| Error::Json {
            file: file.to_owned(),
            source,
        })?;
        let field_error = |field: &'static str, reason: &str| Error::ConfigField {
            file: file.to_owned(),
            field,
            reason: reason.to_owned(),
        };
        if !json.is_object() {
            return Err(field_error("(top level)", "is not an object"));
        }
        let templates = match json.get("chat_template") {
            None | Some(Json::Null) => Vec::new(),
            Some(Json::String(source)) => vec![("default".to_owned(), source.clone())],
            // Several named templates: [{"name": ..., "template": ...}, ...].
            Some(Json::Array(items)) => items
                .iter()
                .map(|item| {
                    match (
                        item.get("name").and_then(Json::as_str),
                        item.get("template").and_then(Json::as_str),
                    ) {
                        (Some(name), Some(source)) => Ok((name.to_owned(), source.to_owned())),
                        _ => Err(field_error(
                            "chat_template",
                            "has an entry without string `name` and `template`",
                        )),
                    }
                })
                .collect::<Result<_>>()?,
            Some(_) => {
                return Err(field_error(
                    "chat_template",
                    "is neither a string nor a list of named templates",
                ));
            }
        };
        let token = |field: &'static str| -> Result<Option<String>> {
            match json.get(field) {
                None | Some(Json::Null) => Ok(None),
                Some(Json::String(s)) => Ok(Some(s.clone())),
                // An AddedToken object: {"content": "<s>", ...}.
                Some(Json::Object(map)) => match map.get("content") {
                    Some(Json::String(s)) => Ok(Some(s.clone())),
                    _ => Err(field_error(
                        field,
                        "is an object without a string `content`",
                    )),
                },
                Some(_) => Err(field_error(field, "is neither a string nor a token object")),
            }
        };
        Ok(Self {
            templates,
            bos: token("bos_token")?,
            eos: token("eos_token")?,
            unk: token("unk_token")?,
            pad: token("pad_token")?,
        })
    }

    /// The template called `name`, or the default one (`default`, else the first).
    pub(crate) fn template(&self, name: Option<&str>) -> Option<&(String, String)> {
        match name {
            Some(name) => self.templates.iter().find(|(n, _)| n == name),
            None => self
                .templates
                .iter()
                .find(|(n, _)| n == "default")
                .or_else(|| self.templates.first()),
        }
    }
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

fn load_tokenizer_json(path: &Path) -> Result<tokenizers::Tokenizer> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    tokenizers::Tokenizer::from_bytes(bytes).map_err(|source| Error::TokenizerJson {
        path: path.to_owned(),
        source,
    })
}

pub(crate) fn from_files(tokenizer_json: &Path, config: Option<&Path>) -> Result<TextTokenizer> {
    let tokenizer = load_tokenizer_json(tokenizer_json)?;
    let config = match config {
        Some(path) => TokenizerConfig::parse(&read_text(path)?, &path.display().to_string())?,
        None => TokenizerConfig::default(),
    };
    assemble(tokenizer, &config, None, &[])
}

pub(crate) fn from_dir(dir: &Path) -> Result<TextTokenizer> {
    let tokenizer = load_tokenizer_json(&dir.join("tokenizer.json"))?;
    let config_path = dir.join("tokenizer_config.json");
    let config = if config_path.is_file() {
        TokenizerConfig::parse(
            &read_text(&config_path)?,
            &config_path.display().to_string(),
        )?
    } else {
        TokenizerConfig::default()
    };
    // Newer repos keep the template in its own file.
    let jinja_path = dir.join("chat_template.jinja");
    let jinja = if jinja_path.is_file() {
        Some(read_text(&jinja_path)?)
    } else {
        None
    };
    let generation_path = dir.join("generation_config.json");
    let extra_eos = if generation_path.is_file() {
        generation_eos_ids(
            &read_text(&generation_path)?,
            &generation_path.display().to_string(),
        )?
    } else {
        Vec::new()
    };
    assemble(tokenizer, &config, jinja, &extra_eos)
}

/// `eos_token_id` of generation_config.json: one id or a list.
fn generation_eos_ids(text: &str, file: &str) -> Result<Vec<u32>> {
    let json: Json = serde_json::from_str(text).map_err(|source| Error::Json {
        file: file.to_owned(),
        source,
    })?;
    let bad = || Error::ConfigField {
        file: file.to_owned(),
        field: "eos_token_id",
        reason: "is neither a token id nor a list of token ids".to_owned(),
    };
    let as_id = |v: &Json| {
        v.as_u64()
            .and_then(|id| u32::try_from(id).ok())
            .ok_or_else(bad)
    };
    match json.get("eos_token_id") {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::Array(items)) => items.iter().map(as_id).collect(),
        Some(one) => Ok(vec![as_id(one)?]),
    }
}

fn assemble(
    tokenizer: tokenizers::Tokenizer,
    config: &TokenizerConfig,
    jinja: Option<String>,
    extra_eos: &[u32],
) -> Result<TextTokenizer> {
    let special = |content: &Option<String>| {
        content.as_ref().and_then(|content| {
            tokenizer.token_to_id(content).map(|id| SpecialToken {
                id,
                content: content.clone(),
            })
        })
    };
    let bos = special(&config.bos);
    let eos = special(&config.eos);
    // What encoding really does is what matters, whatever the config claims.
    let probe = tokenizer
        .encode("", true)
        .map(|e| e.get_ids().to_vec())
        .unwrap_or_default();
    let add_bos = matches!((&bos, probe.first()), (Some(b), Some(&first)) if b.id == first);
    let add_eos = matches!((&eos, probe.last()), (Some(e), Some(&last)) if e.id == last);

    let mut stop_ids: BTreeSet<u32> = eos
        .iter()
        .map(|e| e.id)
        .chain(extra_eos.iter().copied())
        .collect();
    for (id, token) in tokenizer.get_added_tokens_decoder() {
        if token.special && END_OF_TURN_MARKERS.contains(&token.content.as_str()) {
            stop_ids.insert(id);
        }
    }
    let specials = SpecialTokens {
        bos,
        eos,
        pad: special(&config.pad),
        unk: special(&config.unk),
        add_bos,
        add_eos,
        stop_ids,
    };
    let source = config
        .template(None)
        .map(|(name, source)| (name.clone(), source.clone()))
        .or_else(|| jinja.map(|source| ("default".to_owned(), source)));
    let chat_template = source
        .map(|(name, source)| {
            ChatTemplate::named(name, source).map(|template| {
                // The config's strings, even for a token the vocabulary lacks.
                [
                    ("bos_token", &config.bos),
                    ("eos_token", &config.eos),
                    ("unk_token", &config.unk),
                    ("pad_token", &config.pad),
                ]
                .into_iter()
                .fold(template, |t, (var, content)| match content {
                    Some(content) => t.with_token(var, content.clone()),
                    None => t,
                })
            })
        })
        .transpose()?;
    Ok(TextTokenizer::new(tokenizer, specials, chat_template))
}
