//! The pre-tokenizers that `tokenizer.ggml.pre` names.
//!
//! A byte-level BPE vocabulary only tokenizes correctly with the same text
//! splitting it was trained with. GGUF files do not carry that splitting, only
//! its name, so this table maps each name llama.cpp knows (the common ones) to
//! the split regexes. The regexes are facts taken from the models' own
//! tokenizer.json files as llama.cpp lists them; where llama.cpp rewrote a
//! regex for `std::regex`, the original form is used, since `tokenizers`
//! runs Oniguruma, which has the Unicode classes and `(?i:...)`.
//!
//! Each regex splits every piece left by the previous one, keeping both the
//! matches and the text between them ("isolated"), as llama.cpp does; the
//! byte-level mapping comes last.

use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{NormalizerWrapper, PreTokenizerWrapper, SplitDelimiterBehavior};

use crate::error::{Error, Result};

/// A family of pre-tokenizers that share their split regexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PreTokenizerFamily {
    /// llama.cpp's fallback (`default`, or no `tokenizer.ggml.pre` at all).
    Default,
    /// Plain GPT-2 (`gpt-2`, `mpt`, `olmo`, `jais`, `phi-2`, ...).
    Gpt2,
    /// Every digit on its own, then GPT-2 (`smollm`, `starcoder`, `refact`, `command-r`, ...).
    DigitsThenGpt2,
    /// Llama 3 (`llama-bpe`, `llama3`, `smaug-bpe`, `dbrx`, `chatglm-bpe`, ...): digits in groups of up to three.
    Llama3,
    /// Qwen2 (`qwen2`, `stablelm2`, `deepseek-r1-qwen`, ...): like Llama 3 but single digits.
    Qwen2,
    /// DeepSeek LLM (`deepseek-llm`).
    DeepseekLlm,
    /// DeepSeek Coder (`deepseek-coder`).
    DeepseekCoder,
    /// DeepSeek V3 (`deepseek-v3`).
    DeepseekV3,
    /// Falcon (`falcon`).
    Falcon,
    /// Poro, BLOOM, GPT-3 Finnish (`poro-chat`, `bloom`, `gpt3-finnish`).
    Poro,
    /// Viking (`viking`): Poro's split, then single digits.
    Viking,
    /// Mistral's Tekken (`tekken`).
    Tekken,
    /// Chameleon (`chameleon`).
    Chameleon,
    /// GPT-4o and Llama 4 (`gpt-4o`, `llama4`).
    Gpt4o,
}

/// How to build the byte-level pipeline for one `tokenizer.ggml.pre` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreTokenizerSpec {
    /// The family (which regexes).
    pub family: PreTokenizerFamily,
    /// Split regexes, applied in order.
    pub regexes: &'static [&'static str],
    /// NFC-normalize the text first (Qwen2's tokenizer.json does).
    pub nfc: bool,
    /// A piece that is itself a token is taken whole, without merges (Llama 3, Tekken).
    pub ignore_merges: bool,
    /// Whether a BOS token is added when the GGUF does not say (llama.cpp's default for this name).
    pub default_add_bos: bool,
}

const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
const LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const PORO: &str = r" ?[^(\s|.,!?…。，、।۔،)]+";
const CJK: &str = "[一-龥ࠀ-一가-퟿]+";
const TEKKEN: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const GPT4O: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const DEEPSEEK_LLM_LETTERS: &str = r"\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+";
const DEEPSEEK_V3_MAIN: &str = r##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##;

impl PreTokenizerFamily {
    /// The split regexes of this family, in the order they apply.
    #[must_use]
    pub fn regexes(self) -> &'static [&'static str] {
        match self {
            Self::Default => &[r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"],
            Self::Gpt2 => &[GPT2],
            Self::DigitsThenGpt2 => &[r"\p{N}", GPT2],
            Self::Llama3 => &[LLAMA3],
            Self::Qwen2 => &[QWEN2],
            Self::DeepseekLlm => &[
                "[\r\n]",
                DEEPSEEK_LLM_LETTERS,
                r"\s?[!-/:-~！-／：-～‘-‟　-。]+",
                r"\s+$",
                CJK,
                r"\p{N}+",
            ],
            Self::DeepseekCoder => &["[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", CJK, r"\p{N}"],
            Self::DeepseekV3 => &[r"\p{N}{1,3}", "[一-龥぀-ゟ゠-ヿ]+", DEEPSEEK_V3_MAIN],
            Self::Falcon => &[r"[\p{P}\$\+<=>\^~\|`]+", GPT2, "[0-9][0-9][0-9]"],
            Self::Poro => &[PORO],
            Self::Viking => &[PORO, r"\p{N}"],
            Self::Tekken => &[TEKKEN],
            Self::Chameleon => &[
                "<sentinel:[0-9]+>",
                "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z",
                "([\t\n]|    |  )",
                r"\p{N}",
                r"[\p{P}!-/:-@\[-`{-~]",
                GPT2,
            ],
            Self::Gpt4o => &[GPT4O],
        }
    }
}

/// Every `tokenizer.ggml.pre` value this crate accepts.
pub const KNOWN_PRE_TOKENIZERS: &[&str] = &[
    "default",
    "gpt2",
    "gpt-2",
    "mpt",
    "olmo",
    "jais",
    "phi-2",
    "jina-es",
    "jina-de",
    "jina-v2-es",
    "jina-v2-de",
    "jina-v1-en",
    "jina-v2-code",
    "roberta-bpe",
    "gigachat",
    "exaone4",
    "trillion",
    "granite-docling",
    "smollm",
    "starcoder",
    "refact",
    "command-r",
    "codeshell",
    "exaone",
    "minerva-7b",
    "llama3",
    "llama-v3",
    "llama-bpe",
    "falcon3",
    "falcon-h1",
    "pixtral",
    "lfm2",
    "smaug-bpe",
    "dbrx",
    "chatglm-bpe",
    "glm4",
    "qwen2",
    "deepseek-r1-qwen",
    "stablelm2",
    "megrez",
    "deepseek-llm",
    "deepseek-coder",
    "deepseek-v3",
    "falcon",
    "poro-chat",
    "bloom",
    "gpt3-finnish",
    "viking",
    "tekken",
    "chameleon",
    "gpt-4o",
    "llama4",
];

/// The spec for a `tokenizer.ggml.pre` value; `None` (key absent) means llama.cpp's default.
///
/// # Errors
/// [`Error::UnsupportedPreTokenizer`] for a name not in [`KNOWN_PRE_TOKENIZERS`].
pub fn pre_tokenizer_spec(name: Option<&str>) -> Result<PreTokenizerSpec> {
    use PreTokenizerFamily as F;
    let Some(name) = name else {
        return Ok(spec(F::Default, false, false, false));
    };
    // (family, nfc, ignore_merges, default_add_bos), as llama.cpp sets them per name.
    let (family, nfc, ignore_merges, add_bos) = match name {
        "default" => (F::Default, false, false, false),
        "gpt2" | "gpt-2" | "mpt" | "olmo" | "jais" | "phi-2" | "jina-es" | "jina-de"
        | "jina-v2-es" | "jina-v2-de" | "jina-v1-en" | "jina-v2-code" | "roberta-bpe"
        | "gigachat" | "exaone4" | "trillion" | "granite-docling" => (F::Gpt2, false, false, false),
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva-7b" => {
            (F::DigitsThenGpt2, false, false, false)
        }
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "lfm2" => {
            (F::Llama3, false, true, true)
        }
        "smaug-bpe" | "dbrx" | "chatglm-bpe" | "glm4" => (F::Llama3, false, false, false),
        "qwen2" | "deepseek-r1-qwen" | "megrez" => (F::Qwen2, true, false, false),
        "stablelm2" => (F::Qwen2, false, false, false),
        "deepseek-llm" => (F::DeepseekLlm, false, false, false),
        "deepseek-coder" => (F::DeepseekCoder, false, false, false),
        "deepseek-v3" => (F::DeepseekV3, false, false, false),
        "falcon" => (F::Falcon, false, false, false),
        "poro-chat" | "bloom" | "gpt3-finnish" => (F::Poro, false, false, false),
        "viking" => (F::Viking, false, false, false),
        "tekken" => (F::Tekken, false, true, true),
        "chameleon" => (F::Chameleon, false, false, true),
        "gpt-4o" | "llama4" => (F::Gpt4o, false, false, false),
        other => {
            return Err(Error::UnsupportedPreTokenizer {
                name: other.to_owned(),
            });
        }
    };
    Ok(spec(family, nfc, ignore_merges, add_bos))
}

fn spec(
    family: PreTokenizerFamily,
    nfc: bool,
    ignore_merges: bool,
    add_bos: bool,
) -> PreTokenizerSpec {
    PreTokenizerSpec {
        family,
        regexes: family.regexes(),
        nfc,
        ignore_merges,
        default_add_bos: add_bos,
    }
}

impl PreTokenizerSpec {
    /// The `tokenizers` pre-tokenizer: the regex splits, then the byte-level mapping.
    pub(crate) fn pre_tokenizer(&self) -> Result<PreTokenizerWrapper> {
        let mut steps: Vec<PreTokenizerWrapper> = Vec::with_capacity(self.regexes.len() + 1);
        for regex in self.regexes {
            let split = Split::new(
                SplitPattern::Regex((*regex).to_owned()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(|source| Error::Build {
                part: "pre-tokenizer regex",
                source,
            })?;
            steps.push(split.into());
        }
        // The regexes did the splitting; ByteLevel only maps bytes to its alphabet.
        steps.push(ByteLevel::new(false, false, false).into());
        Ok(Sequence::new(steps).into())
    }

    pub(crate) fn normalizer(&self) -> Option<NormalizerWrapper> {
        self.nfc.then(|| NFC.into())
    }
}
