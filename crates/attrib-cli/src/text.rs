//! Text inputs: the tokenizer, vocabularies, token attributions and the text view.
//!
//! `attrib explain --text "..." --vocab V.json` turns each `--text` into one row of token ids
//! (int64, `[N, L]`, rows padded at their end with the vocabulary's pad id), a model input after
//! the `--input` files. Token attributions are the attributions at the embedding layer
//! (`--method layer-integrated-gradients --layer embedding`), `[N, L, D]`, summed over the
//! embedding dimension(s): one value per token ([`token_attributions`]).
//!
//! # Tokenizer
//!
//! The rule the bundled sentiment model was trained with (`examples/python/export_text.py`):
//! tokens are the maximal runs of ASCII letters, digits and apostrophes; each run is
//! lower-cased (ASCII only) and stripped of leading and trailing apostrophes, and runs that are
//! then empty are dropped. Every other character (spaces, punctuation, non-ASCII letters)
//! separates tokens. `"It's NOT 'great'!"` gives `it's`, `not`, `great`.
//!
//! # Vocabulary files
//!
//! A JSON object from token to id (non-negative integers, no two tokens with one id) holding
//! `<pad>` and `<unk>`: rows are padded with `<pad>`'s id, and tokens not in the vocabulary get
//! `<unk>`'s.

use attrib::viz::TextRow;
use attrib::{AttribError, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

mod modality;
pub(crate) use modality::explain_per_modality;
pub use modality::{per_modality, PerModality};

/// The padding token of vocabulary files.
pub const PAD: &str = "<pad>";
/// The unknown-token entry of vocabulary files.
pub const UNK: &str = "<unk>";

/// Split `text` into tokens (see the [module docs](self#tokenizer)).
pub fn tokenize(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '\''))
        .map(|run| run.trim_matches('\'').to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

fn vocab_err(path: &Path, reason: impl Into<String>) -> AttribError {
    AttribError::param("vocab", format!("{}: {}", path.display(), reason.into()))
}

/// A vocabulary: token ↔ id, with the pad and unknown ids.
#[derive(Debug, Clone)]
pub struct Vocab {
    ids: HashMap<String, i64>,
    tokens: HashMap<i64, String>,
    pad: i64,
    unk: i64,
    path: PathBuf,
}

impl Vocab {
    /// Read a vocabulary file (see the [module docs](self#vocabulary-files)).
    pub fn load(path: impl AsRef<Path>) -> Result<Vocab> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| AttribError::Io {
            action: "cannot read vocabulary",
            path: path.to_path_buf(),
            reason: attrib::fs::io_reason(&e),
        })?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| vocab_err(path, format!("not valid JSON ({e}); a vocabulary is a JSON object from token to id")))?;
        let object = value
            .as_object()
            .ok_or_else(|| vocab_err(path, "a vocabulary is a JSON object from token to id, like {\"<pad>\": 0, \"<unk>\": 1, \"good\": 2}"))?;
        let mut ids = HashMap::with_capacity(object.len());
        let mut tokens = HashMap::with_capacity(object.len());
        for (token, id) in object {
            let id = id
                .as_i64()
                .filter(|&i| i >= 0)
                .ok_or_else(|| vocab_err(path, format!("the id of {token:?} is {id}; ids are non-negative integers")))?;
            if let Some(other) = tokens.insert(id, token.clone()) {
                return Err(vocab_err(path, format!("{other:?} and {token:?} have the same id {id}")));
            }
            ids.insert(token.clone(), id);
        }
        let special = |name: &str| {
            ids.get(name).copied().ok_or_else(|| {
                vocab_err(path, format!("it has no {name:?} entry; a vocabulary needs \"{PAD}\" (the padding id) and \"{UNK}\""))
            })
        };
        let (pad, unk) = (special(PAD)?, special(UNK)?);
        Ok(Vocab { ids, tokens, pad, unk, path: path.to_path_buf() })
    }

    /// The padding id.
    pub fn pad(&self) -> i64 {
        self.pad
    }

    /// The id of tokens not in the vocabulary.
    pub fn unk(&self) -> i64 {
        self.unk
    }

    /// How many tokens.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether it has no tokens (never, once loaded: it holds the pad and unknown tokens).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The id of `token` (already tokenized), `<unk>`'s if it is not in the vocabulary.
    pub fn id(&self, token: &str) -> i64 {
        self.ids.get(token).copied().unwrap_or(self.unk)
    }

    /// The token of `id`, or `<id N>` for an id the vocabulary does not have.
    pub fn token(&self, id: i64) -> String {
        self.tokens.get(&id).cloned().unwrap_or_else(|| format!("<id {id}>"))
    }

    /// The ids of `text`'s tokens; an error if it has none.
    pub fn encode(&self, text: &str) -> Result<Vec<i64>> {
        let ids: Vec<i64> = tokenize(text).iter().map(|t| self.id(t)).collect();
        if ids.is_empty() {
            let shown: String = text.chars().take(40).collect();
            return Err(AttribError::param(
                "text",
                format!(
                    "{shown:?} has no tokens (tokens are runs of ASCII letters, digits and apostrophes); give a non-empty sentence"
                ),
            ));
        }
        Ok(ids)
    }

    /// One row per text, padded at its end with the pad id to the longest: int64 `[N, L]`.
    pub fn encode_batch(&self, texts: &[String], device: Device) -> Result<Tensor> {
        let rows = texts.iter().map(|t| self.encode(t)).collect::<Result<Vec<_>>>()?;
        let width = rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut flat = Vec::with_capacity(rows.len() * width);
        for r in &rows {
            flat.extend_from_slice(r);
            flat.extend(std::iter::repeat_n(self.pad, width - r.len()));
        }
        Tensor::from_slice(&flat)
            .f_reshape([rows.len() as i64, width as i64])
            .and_then(|t| t.f_to(device))
            .map_err(|e| AttribError::Conversion(format!("token ids: {e}")))
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Token attributions from attributions at the embedding layer: `[N, L, D...]` summed over
/// every dimension after the second (`[N, L]` is returned as it is), as float64.
pub fn token_attributions(attr: &Tensor) -> Result<Tensor> {
    let size = attr.size();
    if size.len() < 2 {
        return Err(AttribError::InputShape(format!(
            "attributions of shape {size:?} are not per token; token attributions need the attributions at the embedding layer, [N, L, D]"
        )));
    }
    let a = attr.f_to_kind(Kind::Double).map_err(|e| AttribError::Conversion(e.to_string()))?;
    if size.len() == 2 {
        return Ok(a);
    }
    let dims: Vec<i64> = (2..size.len() as i64).collect();
    a.f_sum_dim_intlist(dims.as_slice(), false, Kind::Double).map_err(|e| AttribError::Conversion(e.to_string()))
}

/// Per row of token ids `ids` `[N, L]` and token attributions `[N, L]`: the tokens (pad
/// positions left out) and their attributions, as text-view rows with `captions` (one per row,
/// or none).
pub fn text_rows(ids: &Tensor, token_attr: &Tensor, vocab: Option<&Vocab>, captions: &[String]) -> Result<Vec<TextRow>> {
    if ids.size().len() != 2 || token_attr.size() != ids.size() {
        return Err(AttribError::InputShape(format!(
            "token attributions of shape {:?} do not match the token ids {:?}; attribute at the embedding layer \
             (e.g. --method layer-integrated-gradients --layer embedding)",
            token_attr.size(),
            ids.size()
        )));
    }
    let n = ids.size()[0];
    let pad = vocab.map(Vocab::pad);
    (0..n)
        .map(|i| {
            let row_ids = Vec::<i64>::try_from(ids.get(i).to_kind(Kind::Int64).to(Device::Cpu))
                .map_err(|e| AttribError::Conversion(e.to_string()))?;
            let row_attr = Vec::<f64>::try_from(token_attr.get(i).to_kind(Kind::Double).to(Device::Cpu))
                .map_err(|e| AttribError::Conversion(e.to_string()))?;
            let (mut tokens, mut attributions) = (Vec::new(), Vec::new());
            for (&id, &a) in row_ids.iter().zip(&row_attr) {
                if Some(id) == pad {
                    continue;
                }
                tokens.push(vocab.map(|v| v.token(id)).unwrap_or_else(|| format!("#{id}")));
                attributions.push(a as f32);
            }
            let caption = captions.get(i as usize).cloned().unwrap_or_else(|| format!("row {i}"));
            Ok(TextRow { caption, tokens, attributions })
        })
        .collect()
}

/// Whether `t` holds token ids (int64 or int32).
pub fn is_token_ids(t: &Tensor) -> bool {
    matches!(t.kind(), Kind::Int64 | Kind::Int)
}

/// Which input holds token ids (the first), if any.
pub(crate) fn token_input(tensors: &[Tensor]) -> Option<usize> {
    tensors.iter().position(is_token_ids)
}

/// `--heatmap` for text inputs is an HTML page: checked before any work.
pub(crate) fn check_html_path(path: &Path) -> Result<()> {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("html") | Some("htm") => Ok(()),
        _ => Err(AttribError::param(
            "heatmap",
            format!(
                "{}: token attributions render as shaded text in an HTML page; give --heatmap with a .html name",
                path.display()
            ),
        )),
    }
}

/// The text view of attributions `attr` (at the embedding layer, `[N, L, D]`) of the token ids
/// `ids` `[N, L]`, one caption per row.
pub(crate) fn view_rows(ids: &Tensor, attr: &Tensor, vocab: Option<&Vocab>, captions: &[String]) -> Result<Vec<TextRow>> {
    let size = attr.size();
    if size.len() < 2 || size[..2] != ids.size()[..] {
        return Err(AttribError::InputShape(format!(
            "the attributions have shape {size:?}, not one value (or one embedding) per token of the ids {:?};              token attributions come from the embedding layer: --method layer-integrated-gradients --layer embedding",
            ids.size()
        )));
    }
    text_rows(ids, &token_attributions(attr)?, vocab, captions)
}

/// `attrib compare` on token ids: the methods compared by default, at the embedding layer
/// `layer`: layer integrated gradients and layer gradient × activation.
pub(crate) fn compare_defaults(layer: &str) -> Vec<attrib::MethodSpec> {
    ["layer-integrated-gradients", "layer-gradient-x-activation"]
        .into_iter()
        .map(|m| {
            let mut spec = attrib::MethodSpec::new(m);
            spec.params.insert("layer".into(), layer.into());
            spec
        })
        .collect()
}

/// `spec` with `layer` set to the embedding layer when the method takes a layer and the spec
/// names none.
pub(crate) fn with_layer(mut spec: attrib::MethodSpec, registry: &attrib::methods::Registry, layer: &str) -> attrib::MethodSpec {
    let takes_layer = registry.get(&spec.method).is_some_and(|e| e.doc().params.iter().any(|p| p.name == "layer"));
    if takes_layer && !spec.params.contains_key("layer") {
        spec.params.insert("layer".into(), layer.into());
    }
    spec
}

/// Token attributions `[N, L]` (float32) of a method's attributions at the embedding layer, for
/// the ids `[N, L]`: what `compare` ranks, scores and draws for text.
pub(crate) fn compare_values(attr: &Tensor, ids: &Tensor) -> Result<Tensor> {
    let size = attr.size();
    if size.len() < 2 || size[..2] != ids.size()[..] {
        return Err(AttribError::InputShape(format!(
            "the attributions have shape {size:?}, not one value (or one embedding) per token of the ids {:?}; \
             compare token attributions at the embedding layer (--embedding-layer, or `layer` in the method's spec)",
            ids.size()
        )));
    }
    token_attributions(attr)?.f_to_kind(Kind::Float).map_err(|e| AttribError::Conversion(e.to_string()))
}

/// A model on token ids seen as a model on float values (the ids, exactly: ids below 2^24),
/// so that the deletion/insertion curves can replace tokens by the pad id 0 like features.
pub(crate) struct IdsAsFloat<'a>(pub &'a dyn attrib::Model);

impl attrib::Model for IdsAsFloat<'_> {
    fn forward(&self, inputs: &[Tensor], extra: &[attrib::ForwardArg]) -> Result<Tensor> {
        let ids = inputs
            .iter()
            .map(|x| x.f_round().and_then(|r| r.f_to_kind(Kind::Int64)))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| AttribError::Conversion(format!("token ids: {e}")))?;
        self.0.forward(&ids, extra)
    }
    fn device(&self) -> Device {
        self.0.device()
    }
    fn describe(&self) -> String {
        format!("{} (token ids given as floats)", self.0.describe())
    }
}

/// Token attributions as JSON: per row, the tokens and their attributions.
pub(crate) fn rows_json(rows: &[TextRow]) -> serde_json::Value {
    rows.iter().map(|r| serde_json::json!({"tokens": r.tokens, "attributions": r.attributions})).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_follows_the_documented_rule() {
        assert_eq!(tokenize("It's NOT 'great'!"), ["it's", "not", "great"]);
        assert_eq!(tokenize("''Conan'' -- J.R.R. Tolkien's  21st"), ["conan", "j", "r", "r", "tolkien's", "21st"]);
        assert_eq!(tokenize("café naïve"), ["caf", "na", "ve"]);
        assert!(tokenize(" ' '' ?! ").is_empty());
    }

    fn vocab(json: &str) -> Result<Vocab> {
        let dir = std::env::temp_dir().join(format!("attrib-vocab-{}-{}", std::process::id(), json.len()));
        std::fs::write(&dir, json).unwrap();
        let v = Vocab::load(&dir);
        std::fs::remove_file(&dir).unwrap();
        v
    }

    #[test]
    fn encodes_pads_and_decodes() {
        let v = vocab(r#"{"<pad>": 0, "<unk>": 1, "good": 2, "film": 3}"#).unwrap();
        let t = v.encode_batch(&["Good film!".into(), "a good, good film".into()], Device::Cpu).unwrap();
        assert_eq!(t.size(), [2, 4]);
        assert_eq!(Vec::<i64>::try_from(t.reshape([-1])).unwrap(), [2, 3, 0, 0, 1, 2, 2, 3]);
        let attr = Tensor::from_slice(&[1.0f32, -1.0, 9.0, 9.0, 0.5, 0.25, 0.25, 2.0]).reshape([2, 4, 1]);
        let rows = text_rows(&t, &token_attributions(&attr).unwrap(), Some(&v), &[]).unwrap();
        assert_eq!(rows[0].tokens, ["good", "film"]);
        assert_eq!(rows[0].attributions, [1.0, -1.0]);
        assert_eq!(rows[1].tokens, ["<unk>", "good", "good", "film"]);
        assert_eq!(v.token(17), "<id 17>");
    }

    #[test]
    fn token_attributions_sum_the_embedding_dimension() {
        let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0, -4.0, 0.5, 0.5]).reshape([1, 2, 3]);
        let t = token_attributions(&a).unwrap();
        assert_eq!(Vec::<f64>::try_from(t.reshape([-1])).unwrap(), [6.0, -3.0]);
        assert!(token_attributions(&Tensor::from_slice(&[1.0f32])).is_err());
    }

    #[test]
    fn bad_vocabularies_and_empty_text_are_errors() {
        let e = vocab(r#"{"<pad>": 0, "good": 2}"#).unwrap_err().to_string();
        assert!(e.contains("no \"<unk>\" entry"), "{e}");
        let e = vocab(r#"["<pad>"]"#).unwrap_err().to_string();
        assert!(e.contains("JSON object from token to id"), "{e}");
        let e = vocab(r#"{"<pad>": 0, "<unk>": 0}"#).unwrap_err().to_string();
        assert!(e.contains("the same id 0"), "{e}");
        let e = vocab(r#"{"<pad>": 0, "<unk>": -1}"#).unwrap_err().to_string();
        assert!(e.contains("non-negative"), "{e}");
        let e = Vocab::load("/nonexistent/v.json").unwrap_err().to_string();
        assert!(e.contains("cannot read vocabulary") && e.contains("/nonexistent/v.json"), "{e}");
        let v = vocab(r#"{"<pad>": 0, "<unk>": 1}"#).unwrap();
        let e = v.encode_batch(&["fine".into(), " ... ".into()], Device::Cpu).unwrap_err().to_string();
        assert!(e.contains("has no tokens"), "{e}");
    }
}
