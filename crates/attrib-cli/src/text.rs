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

/// Attributions of a model with an image (float) input and a token-id input, split per
/// modality (see [`per_modality`]).
pub struct PerModality {
    /// Integrated gradients of the float input (the ids held at their values), shaped like it.
    pub image: Tensor,
    /// Layer integrated gradients at the embedding (the float input held at its value), `[N, L, D]`.
    pub embedding: Tensor,
    /// Token attributions `[N, L]`: `embedding` summed over the embedding dimension.
    pub tokens: Tensor,
    /// Per row, the convergence deltas of the two attributions.
    pub deltas: (Tensor, Tensor),
    /// Per row, the float input's share of the total |attribution|: `Σ|image| / (Σ|image| +
    /// Σ|tokens|)`; the token input's share is one minus it.
    pub image_share: Vec<f64>,
    /// Per row, the float input's share of the net contributions: `|Σ image| / (|Σ image| +
    /// |Σ tokens|)` (each sum is that modality's completeness gap), which does not grow with
    /// the number of pixels whose attributions cancel.
    pub image_net_share: Vec<f64>,
}

/// Split the attribution of a two-modality model `f(image, ids)` per modality: integrated
/// gradients over the image from zeros with the ids fixed at their values, and layer integrated gradients at the embedding `layer`
/// from the pad ids (0) with the image fixed at its value, `n_steps` each. Each attribution is
/// complete for its own path (it sums to `f(image, ids) − f(baseline, ids)` and to
/// `f(image, ids) − f(image, pads)` within its delta); the split reports each modality's share
/// of the total absolute attribution per row. The two paths are conditional on the other
/// modality (not one joint path), which is what the shares compare.
pub fn per_modality(
    model: &dyn attrib::Model,
    image: &Tensor,
    ids: &Tensor,
    target: &attrib::Target,
    n_steps: usize,
    layer: &str,
) -> Result<PerModality> {
    use attrib::gradient::IntegratedGradients;
    use attrib::layer::LayerIntegratedGradients;
    use attrib::{Attribution, ForwardArg, Inputs};
    if !is_token_ids(ids) || !image.is_floating_point() {
        return Err(AttribError::InputShape(format!(
            "a per-modality split needs a float input and a token-id input, got {:?} and {:?}",
            image.kind(),
            ids.kind()
        )));
    }
    let ig = IntegratedGradients::params().n_steps(n_steps).check()?;
    let with_ids = Inputs::new(image.shallow_clone()).with_extra(vec![ForwardArg::Tensor(ids.shallow_clone())]);
    let a_img = ig.attribute(model, &with_ids, target)?;
    // The image's baseline is the image itself: the model's baseline output is then
    // f(image, pads), the end of the path, so the delta is the path's own error.
    let lig = LayerIntegratedGradients::params()
        .layer(layer)
        .n_steps(n_steps)
        .baselines(attrib::Baselines::per_input(vec![attrib::Baseline::Tensor(image.shallow_clone()), attrib::Baseline::Zeros]))
        .check()?;
    let a_txt = lig.attribute(model, &Inputs::multi(vec![image.shallow_clone(), ids.shallow_clone()]), target)?;
    let image_attr = a_img.single()?.shallow_clone();
    let embedding = a_txt.single()?.shallow_clone();
    let tokens = token_attributions(&embedding)?;
    let conv = |e: tch::TchError| AttribError::Conversion(e.to_string());
    let n = image.size()[0];
    let row_sums = |t: &Tensor, abs: bool| -> Result<Vec<f64>> {
        let t = if abs { t.f_abs().map_err(conv)? } else { t.shallow_clone() };
        let s = t.f_reshape([n, -1]).and_then(|a| a.f_sum_dim_intlist(1, false, Kind::Double)).map_err(conv)?;
        attrib::convert::tensor_to_vec_f64(&s)
    };
    let share = |a: Vec<f64>, b: Vec<f64>| -> Vec<f64> {
        a.iter().zip(&b).map(|(a, b)| (a.abs(), b.abs())).map(|(a, b)| if a + b > 0.0 { a / (a + b) } else { 0.5 }).collect()
    };
    let image_share = share(row_sums(&image_attr, true)?, row_sums(&tokens, true)?);
    let image_net_share = share(row_sums(&image_attr, false)?, row_sums(&tokens, false)?);
    let missing = |what: &str| AttribError::Conversion(format!("{what} returned no convergence delta"));
    let deltas = (
        a_img.convergence_delta.ok_or_else(|| missing("integrated gradients"))?,
        a_txt.convergence_delta.ok_or_else(|| missing("layer integrated gradients"))?,
    );
    Ok(PerModality { image: image_attr, embedding, tokens, deltas, image_share, image_net_share })
}

/// `attrib explain --per-modality`: [`per_modality`] on the two inputs the flags give (the
/// float input first, the token ids second: `--input IMAGE --text ...` or two `--input`s),
/// outputs checked before and written after the work.
pub(crate) fn explain_per_modality(args: &crate::explain::ExplainArgs, reads: &crate::outputs::Reads) -> Result<()> {
    let f = &args.method_flags;
    if args.method != "integrated-gradients" && args.method != "saliency" || !f.baseline.is_empty() || !f.param.is_empty() {
        return Err(AttribError::param(
            "per-modality",
            "--per-modality runs integrated gradients over the image and layer integrated gradients at --layer over the tokens; \
             it takes --steps, --layer and --target (leave out --method, --baseline and --param)",
        ));
    }
    let layer = f.layer.clone().unwrap_or_else(|| "embedding".into());
    let steps = f.steps.unwrap_or(50);
    let choice = args.device.parse::<attrib::DeviceSpec>()?.choose()?;
    let target = crate::explain::parse_target(&args.target)?;
    let outs = crate::explain::output_paths(&args.out, 2)?;
    let mut outputs: Vec<(&str, &Path)> = outs.iter().map(|p| ("--out", p.as_path())).collect();
    if let Some(h) = &args.heatmap {
        check_html_path(h)?;
        outputs.push(("--heatmap", h));
    }
    crate::outputs::check(&outputs, reads)?;
    crate::outputs::check_model(&args.model)?;
    let loaded = args.inputs.load(choice.device)?;
    let (float_at, ids_at) = (0, 1);
    let kinds_ok = loaded.tensors.len() == 2 && loaded.tensors[0].is_floating_point() && is_token_ids(&loaded.tensors[1]);
    if !kinds_ok {
        return Err(AttribError::InputShape(format!(
            "--per-modality needs two inputs, the float one (the image) first and the token ids second, as the model takes them; got {}",
            attrib::inputs::format_shapes(&loaded.tensors)
        )));
    }
    let model = attrib::TorchScriptModel::load(&args.model, choice.device)?;
    let (image, ids) = (&loaded.tensors[float_at], &loaded.tensors[ids_at]);
    let split = per_modality(&model, image, ids, &target, steps, &layer)?;
    let rows = text_rows(ids, &split.tokens, loaded.vocab.as_ref(), &[])?;
    let mut staged = vec![
        attrib::convert::stage_npy_tensor(&outs[0], &split.image)?,
        attrib::convert::stage_npy_tensor(&outs[1], &split.embedding)?,
    ];
    if let Some(path) = &args.heatmap {
        let mut captions = Vec::new();
        for (i, s) in split.image_share.iter().enumerate() {
            captions.push(format!("row {i}: image {:.0} % / text {:.0} % of |attribution|", 100.0 * s, 100.0 * (1.0 - s)));
        }
        let rows: Vec<TextRow> = rows.iter().zip(captions).map(|(r, caption)| TextRow { caption, ..r.clone() }).collect();
        let page = attrib::viz::render_text_page("per-modality attribution: tokens", &rows)
            .map_err(|e| AttribError::param("heatmap", e.to_string()))?;
        crate::outputs::create_parent(path)?;
        staged.push(attrib::fs::stage(path, |w| std::io::Write::write_all(w, page.as_bytes())).map_err(|e| AttribError::Io {
            action: "cannot write",
            path: path.to_path_buf(),
            reason: attrib::fs::io_reason(&e),
        })?);
    }
    crate::outputs::commit(staged)?;
    if args.json {
        let v = |t: &Tensor| attrib::convert::tensor_to_vec_f64(t);
        let summary = serde_json::json!({
            "method": "per-modality",
            "image_input": float_at,
            "token_input": ids_at,
            "layer": layer,
            "n_steps": steps,
            "image_share": split.image_share,
            "token_share": split.image_share.iter().map(|s| 1.0 - s).collect::<Vec<_>>(),
            "image_net_share": split.image_net_share,
            "convergence_delta": {"image": v(&split.deltas.0)?, "tokens": v(&split.deltas.1)?},
            "tokens": rows_json(&rows),
            "outputs": outs,
            "device": attrib::tensor::device_name(choice.device),
        });
        println!("{summary}");
    } else {
        for p in &outs {
            eprintln!("wrote {}", p.display());
        }
    }
    Ok(())
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
