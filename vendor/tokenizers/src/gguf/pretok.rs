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
// Letters of many scripts; written as code points because several of them
// (U+1F7D, U+1FBE, U+1FD3, U+1FDB, U+2126, U+212A) change under Unicode
// normalization, which would turn their ranges inside out.
const DEEPSEEK_LLM_LETTERS: &str = concat!(
    r"\s?[",
    r"A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}",
    r"\x{295}-\x{2AF}\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}",
    r"\x{38C}\x{38E}-\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}",
    r"\x{10A0}-\x{10C5}\x{13A0}-\x{13F5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}",
    r"\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A}\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}",
    r"\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D}",
    r"\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}",
    r"\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107}",
    r"\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}",
    r"\x{212F}-\x{2134}\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}",
    r"\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4}\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}",
    r"\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}",
    r"\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}",
    r"\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF}",
    r"\x{1E900}-\x{1E943}",
    "]+",
);
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
