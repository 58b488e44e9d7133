//! `attrib compare`'s view of the model on the inputs: its output width (checked against
//! `--classes`, the labels and the feature names), the target each row explains, and each row's
//! prediction.

use super::{CompareError, Job, Result};
use crate::report::Prediction;
use attrib::convert::tensor_to_vec_f64;
use attrib::methods::InputKind;
use attrib::prelude::*;
use attrib::{Evaluator, Expanded, Result as AResult, TorchResultExt};
use tch::{Kind, Tensor};

/// The model's outputs on the inputs and what follows from them.
pub(super) struct Predicted {
    /// Shape of the model's output.
    pub out_size: Vec<i64>,
    /// Whether the model is a classifier (more than one output per row).
    pub classes: bool,
    /// The target every method explains (argmax resolved to the predictions).
    pub target: Target,
    /// The explained class per row (classifiers).
    pub targets: Option<Vec<i64>>,
    /// Per row: the prediction and the explained score.
    pub predictions: Vec<Prediction>,
}

/// What the predictions are checked against and labelled with.
pub(super) struct Names<'a> {
    /// `--classes`.
    pub classes: Option<i64>,
    /// The class names.
    pub labels: Option<&'a [String]>,
    /// The feature names of a tabular first input.
    pub feature_names: Option<&'a [String]>,
}

/// Run the model on the inputs, check its output against `names`, and resolve `target_spec`
/// (`--target`) into the target of every row.
pub(super) fn predict(job: &Job, names: &Names<'_>, target_spec: Target) -> Result<Predicted> {
    let tensors = &job.tensors;
    let outputs = model_outputs(job)?;
    let out_size = outputs.size();
    let width = output_width(&out_size)?;
    check_names(names, width, tensors, &job.kinds)?;
    let classes = width > 1;
    let scores = if classes { outputs.f_softmax(1, Kind::Double).ctx("softmax")? } else { outputs.to_kind(Kind::Double) };
    let score_rows: Vec<Vec<f64>> = (0..job.n).map(|i| tensor_to_vec_f64(&scores.get(i))).collect::<AResult<_>>()?;
    let predicted: Vec<i64> = score_rows
        .iter()
        .map(|r| r.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i as i64).unwrap_or(0))
        .collect();
    let target = resolve_target(target_spec, &predicted, width, job.n)?;
    let targets = checked_targets(&target, width, job.n)?;
    let files: Vec<Option<String>> =
        (0..job.n as usize).map(|i| job.loaded.files.iter().find_map(|f| f.get(i)).map(|p| p.display().to_string())).collect();
    let label = |c: i64| names.labels.and_then(|l| l.get(c as usize).cloned()).unwrap_or_else(|| c.to_string());
    let predictions = (0..job.n as usize)
        .map(|i| {
            let row = &score_rows[i];
            match &targets {
                Some(t) => Prediction {
                    row: i,
                    file: files[i].clone(),
                    predicted: Some(predicted[i]),
                    predicted_label: Some(label(predicted[i])),
                    probability: Some(row[predicted[i] as usize]),
                    target: Some(t[i]),
                    target_label: Some(label(t[i])),
                    target_score: row[t[i] as usize],
                    value: None,
                },
                None => Prediction {
                    row: i,
                    file: files[i].clone(),
                    predicted: None,
                    predicted_label: None,
                    probability: None,
                    target: None,
                    target_label: None,
                    target_score: row[0],
                    value: Some(row[0]),
                },
            }
        })
        .collect();
    Ok(Predicted { out_size, classes, target, targets, predictions })
}

/// The model's raw outputs on every row, chunked by the batching flags.
fn model_outputs(job: &Job) -> Result<Tensor> {
    let tensors = &job.tensors;
    let eval = Evaluator::new(&job.model, job.batch)?;
    Ok(eval.raw_outputs(&[], &Expanded::identity(tensors)).map_err(|e| match e {
        // Name the shapes the user passed, not those of a chunk.
        AttribError::ModelForward { reason, .. } => AttribError::ModelForward { shapes: attrib::inputs::format_shapes(tensors), reason },
        other => other,
    })?)
}

/// Values per row of an output of shape `out_size`: `[N, classes]`, or `[N]` (1).
fn output_width(out_size: &[i64]) -> Result<i64> {
    match out_size {
        [_] => Ok(1),
        [_, c] => Ok(*c),
        other => Err(CompareError::Usage(format!(
            "the model returns shape {other:?}; `attrib compare` needs one score per class and row, [N, classes], or one value per row, [N] / [N, 1]"
        ))),
    }
}

/// `--classes`, the class labels and the feature names against the model's `width` and the
/// first input.
fn check_names(names: &Names<'_>, width: i64, tensors: &[Tensor], kinds: &[InputKind]) -> Result<()> {
    if let Some(c) = names.classes {
        if c != width {
            return Err(CompareError::Usage(format!(
                "the model returns {width} value(s) per row but --classes is {c}; check that the model matches the data set (or drop --classes)"
            )));
        }
    }
    if let Some(l) = names.labels {
        if l.len() as i64 != width {
            return Err(CompareError::Usage(format!(
                "{} class labels for a model with {width} output(s); give exactly one label per output class",
                l.len()
            )));
        }
    }
    if let (Some(names), Some(first)) = (names.feature_names, tensors.first()) {
        let s = first.size();
        if kinds[0] != InputKind::Tabular || names.len() as i64 != s[1] {
            return Err(CompareError::Usage(format!(
                "{} feature names for the first input of shape {s:?}; --feature-names needs a tabular input [N, F] and one name per feature",
                names.len()
            )));
        }
    }
    Ok(())
}

/// `--target` for a model of `width` outputs: argmax is the `predicted` class of each row, a
/// class the same for all `n` rows.
fn resolve_target(spec: Target, predicted: &[i64], width: i64, n: i64) -> Result<Target> {
    Ok(match (spec, width > 1) {
        (Target::Argmax, true) => Target::PerSample(predicted.to_vec()),
        (Target::Argmax, false) | (Target::None, false) => Target::None,
        (Target::None, true) => {
            return Err(CompareError::Usage(format!(
                "--target none needs a model with one output per row, but it returns {width}; choose a class (an index, argmax or a .npy file)"
            )))
        }
        (Target::Class(c), _) => Target::PerSample(vec![c; n as usize]),
        (t @ Target::PerSample(_), _) => t,
    })
}

/// The class of each row of `target` (classifiers), checked: one per row, each in range.
fn checked_targets(target: &Target, width: i64, n: i64) -> Result<Option<Vec<i64>>> {
    match target {
        Target::PerSample(v) => {
            if v.len() as i64 != n {
                return Err(CompareError::Usage(format!("{} target classes for {n} input rows; give one class index per row", v.len())));
            }
            if let Some(bad) = v.iter().find(|&&c| c < 0 || c >= width) {
                return Err(CompareError::Usage(format!(
                    "target class {bad} is out of range for a model with {width} output(s) (valid: 0..={})",
                    width - 1
                )));
            }
            Ok(Some(v.clone()))
        }
        _ => Ok(None),
    }
}
