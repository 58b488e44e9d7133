//! Score-CAM (Wang et al. 2020, "Score-CAM: Score-Weighted Visual Explanations for Convolutional
//! Neural Networks"; Captum has no such method, it was asked for in Captum's issue 350): a
//! class activation map whose channel weights come from forward passes only, no gradient.
//!
//! For row `i` with layer activations `A_k` (`k` over the layer's `K` channels):
//!
//! 1. each map `A_k` is upsampled to the input's spatial size (`interpolate_mode`, bilinear by
//!    default as in the paper) and min-max normalised to `[0, 1]`: `M_k`;
//! 2. the input is masked by it: `x_k = b + (x − b) ⊙ M_k` (broadcast over the input's channels;
//!    with the default zero baseline, `x ⊙ M_k` as in the paper);
//! 3. the masked input's score for the target is the channel's weight `w_k`: the target's softmax
//!    probability (`score = softmax`, the paper's choice and the default) or its raw output
//!    (`score = logit`, for models whose output is already a probability or a single value);
//! 4. the map is `relu(Σ_k w_k A_k)` at the layer's resolution, upsampled to the input's size
//!    (`upsample_result`, default true; false returns the layer-sized map `[N, 1, ...]`).
//!
//! A map that is constant over its spatial positions has no normalisation: its mask is zero
//! and its weight is zero (the reference implementation skips such channels). The paper's
//! "increase of confidence" subtracts the baseline's own score from every weight; that constant
//! shift is not applied here (as in the authors' code), so `w_k` is the masked input's score.
//!
//! The `K · N` masked inputs are one logical batch of the shared evaluator (row `k·N + i` is row
//! `i` masked by channel `k`), built chunk by chunk and run in chunks sized from the memory
//! budget, on the model's inference copy where it has one. The layer's activations take one
//! more forward pass, and an `argmax` target one more.

use crate::access::read_activations;
use crate::common::{baselines_and_differences, check_one_baseline, finish, layer_setters, LayerParams};
use crate::layer_grad_cam::{upsample, Interpolate};
use attrib_core::{AttribError, Attribution, Attributions, Baselines, Inputs, MethodInfo, Model, Result, Target, TorchResultExt};
use attrib_tensor::{ChunkRows, Evaluator, Expanded};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Instant;
use tch::Tensor;

/// How Score-CAM scores a masked input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoreCamScore {
    /// The target class's softmax probability over the model's outputs (the paper). The default.
    #[default]
    Softmax,
    /// The target output itself (a logit, or whatever the model returns).
    Logit,
}

/// Parameters of [`ScoreCam`].
#[derive(Debug)]
pub struct ScoreCamParams {
    /// The layer (usually the last convolutional one), and the chunking of the model calls.
    pub layer: LayerParams,
    /// How a masked input is scored (default: softmax probability).
    pub score: ScoreCamScore,
    /// What the masks blend towards (default zeros: `x ⊙ M_k`).
    pub baselines: Baselines,
    /// How maps are upsampled to the input's size (default bilinear, as the paper);
    /// [`Interpolate::None`] is not accepted (the masks must have the input's size).
    pub interpolate_mode: Interpolate,
    /// Upsample the result to the input's size (default true); false keeps the layer's size.
    pub upsample_result: bool,
}

impl Default for ScoreCamParams {
    fn default() -> Self {
        ScoreCamParams {
            layer: LayerParams::default(),
            score: ScoreCamScore::Softmax,
            baselines: Baselines::default(),
            interpolate_mode: Interpolate::Bilinear,
            upsample_result: true,
        }
    }
}

layer_setters!(ScoreCamParams, baselines);

impl ScoreCamParams {
    /// How masked inputs are scored.
    pub fn score(mut self, score: ScoreCamScore) -> Self {
        self.score = score;
        self
    }
    /// How maps are upsampled.
    pub fn interpolate_mode(mut self, mode: Interpolate) -> Self {
        self.interpolate_mode = mode;
        self
    }
    /// Upsample the result to the input's size, or keep the layer's.
    pub fn upsample_result(mut self, yes: bool) -> Self {
        self.upsample_result = yes;
        self
    }
    /// Validate into a ready-to-use [`ScoreCam`].
    pub fn check(self) -> Result<ScoreCam> {
        if self.interpolate_mode == Interpolate::None {
            return Err(AttribError::param("interpolate_mode", "Score-CAM masks the input with the layer's maps upsampled to its size: choose bilinear (the paper) or nearest"));
        }
        check_one_baseline(&self.baselines, "Score-CAM")?;
        Ok(ScoreCam { params: ScoreCamParams { layer: self.layer.check()?, ..self } })
    }
}

/// Score-CAM (see the [module docs](self)).
#[derive(Debug)]
pub struct ScoreCam {
    params: ScoreCamParams,
}

impl ScoreCam {
    /// Parameters with their defaults (the layer must be set), to adjust and
    /// [`ScoreCamParams::check`].
    pub fn params() -> ScoreCamParams {
        ScoreCamParams::default()
    }
}

/// The normalised masks `M` of rows `samples` and channels `blocks` of the activations `acts`
/// (`[N, K, ...]`), upsampled to `size`: `[rows, 1, size...]`, zero where a map is constant.
fn masks(acts: &Tensor, samples: &Tensor, blocks: &Tensor, size: &[i64], mode: Interpolate) -> Result<Tensor> {
    let maps = acts.f_index(&[Some(samples), Some(blocks)]).and_then(|m| m.f_unsqueeze(1)).ctx("selecting activation maps")?;
    let spatial: Vec<i64> = (2..maps.dim() as i64).collect();
    let flat_range = |t: &Tensor| -> Result<(Tensor, Tensor)> {
        let lo = t.f_amin(spatial.as_slice(), true).ctx("map minimum")?;
        let hi = t.f_amax(spatial.as_slice(), true).ctx("map maximum")?;
        Ok((lo, hi))
    };
    // Constant maps (at the layer's resolution) give no mask.
    let (lo0, hi0) = flat_range(&maps)?;
    let varies = hi0.f_gt_tensor(&lo0).ctx("constant maps")?;
    let up = upsample(&maps, size, mode)?;
    let (lo, hi) = flat_range(&up)?;
    let range = hi.f_sub(&lo).ctx("map range")?;
    let safe = range.f_where_scalarother(&varies, 1.0).ctx("map range")?;
    let norm = up.f_sub(&lo).and_then(|t| t.f_div(&safe)).ctx("normalising maps")?;
    norm.f_mul(&varies.f_to_kind(norm.kind()).ctx("masking constant maps")?).ctx("masking constant maps")
}

impl Attribution for ScoreCam {
    fn info(&self) -> MethodInfo {
        MethodInfo { name: "score-cam", multiplies_by_inputs: false, has_convergence_delta: false }
    }
    fn params(&self) -> serde_json::Value {
        let p = &self.params;
        p.layer.describe(json!({
            "score": p.score,
            "baselines": p.baselines.describe(),
            "interpolate_mode": p.interpolate_mode,
            "upsample_result": p.upsample_result,
        }))
    }
    fn attribute(&self, model: &dyn Model, inputs: &Inputs, target: &Target) -> Result<Attributions> {
        let start = Instant::now();
        let p = &self.params;
        if inputs.tensors().len() != 1 {
            return Err(AttribError::NotApplicable(format!(
                "Score-CAM masks one image-like input with the layer's maps; this model is given {} attributed inputs (pass the others as forward arguments)",
                inputs.tensors().len()
            )));
        }
        let acts = read_activations(model, &p.layer.spec(), p.layer.batch, inputs)?;
        let eval = Evaluator::new(model, p.layer.batch)?;
        let prep = eval.prepare(inputs, target)?;
        let x = &prep.inputs[0];
        let size = x.size()[2.min(x.dim())..].to_vec();
        if acts.dim() < 3 || acts.dim() as usize - 2 != size.len() {
            return Err(AttribError::NotApplicable(format!(
                "Score-CAM needs a layer with spatial maps matching the input's: layer {} gives {:?}, the input is {:?}",
                p.layer.spec().describe(),
                acts.size(),
                x.size()
            )));
        }
        if p.score == ScoreCamScore::Softmax && prep.target.indices().is_none() {
            return Err(AttribError::param("score", "softmax scores need a model with class outputs and a target class; use score=logit for a model with one output per row"));
        }
        let acts = acts.f_to_device(prep.device).and_then(|a| a.f_to_kind(x.kind())).ctx("activations")?;
        let (n, k) = (prep.n, acts.size()[1]);
        let (mut base, mut diff) = baselines_and_differences(&p.baselines, &prep.inputs, inputs)?;
        let (base, diff) = (base.remove(0), diff.remove(0));
        let device = prep.device;
        let batch = Expanded::new(n, k * n, |s, e| {
            let rows = ChunkRows::new(s, e, n, device);
            let (samples, blocks) = (rows.samples()?, rows.blocks()?);
            let m = masks(&acts, &samples, &blocks, &size, p.interpolate_mode)?;
            let b = base.f_index_select(0, &samples).ctx("baseline rows")?;
            let d = diff.f_index_select(0, &samples).ctx("input rows")?;
            Ok(vec![d.f_mul(&m).and_then(|t| t.f_add(&b)).ctx("masking the input")?])
        })
        .rows_like(&prep.inputs);
        let out = eval.raw_outputs(&prep.extra, &batch)?;
        let scored = match p.score {
            ScoreCamScore::Softmax => out.f_softmax(1, out.kind()).ctx("softmax of the outputs")?,
            ScoreCamScore::Logit => out,
        };
        let all = ChunkRows::new(0, k * n, n, device).samples()?;
        let w = prep.target.select(&scored, &all)?.f_reshape([k, n]).and_then(|w| w.f_transpose(0, 1)).ctx("channel weights")?;
        // Constant maps carry no weight.
        let spatial: Vec<i64> = (2..acts.dim() as i64).collect();
        let varies = acts.f_amax(spatial.as_slice(), false).and_then(|hi| acts.f_amin(spatial.as_slice(), false).and_then(|lo| hi.f_gt_tensor(&lo))).ctx("constant maps")?;
        let w = w.f_to_kind(acts.kind()).and_then(|w| w.f_mul(&varies.f_to_kind(acts.kind())?)).ctx("channel weights")?;
        let mut shape = w.size();
        shape.extend(std::iter::repeat(1).take(spatial.len()));
        let cam = acts
            .f_mul(&w.f_reshape(shape.as_slice()).ctx("channel weights")?)
            .and_then(|t| t.f_sum_dim_intlist(1, true, None))
            .and_then(|t| t.f_relu())
            .ctx("weighted sum of the maps")?;
        let cam = if p.upsample_result { upsample(&cam, &size, p.interpolate_mode)? } else { cam };
        finish(self, vec![cam], None, prep.target.indices().map(<[i64]>::to_vec), start)
    }
}
