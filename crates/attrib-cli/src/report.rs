//! The report of `attrib compare`: `report.json` and a self-contained `report.html` (inline CSS,
//! figures embedded as `data:image/png;base64,...`): what it holds (this module), how it reads as
//! JSON ([`json`]) and as HTML ([`html`], the attack section in `robustness`), and writing it.

use crate::compare::CompareError;
use attrib::metrics::Curves;
use base64::Engine as _;
use serde_json::Value;
use std::path::{Path, PathBuf};
use tch::Tensor;

mod html;
mod json;
mod robustness;
pub use html::to_html;
pub use json::to_json;
pub use robustness::{MethodRobustness, MetricSettings, Robustness};

/// One method's results.
pub struct MethodResult {
    /// Name in the report: the configuration's label, or the method's name.
    pub name: String,
    /// The library's method name.
    pub method: String,
    /// Validated parameters.
    pub params: Value,
    /// The spec the method was built from.
    pub spec: attrib::MethodSpec,
    /// Attribution times (model loading and metrics excluded): the first call, and the warm
    /// repeats of benchmark mode.
    pub timing: attrib::timing::Timing,
    /// Convergence delta per row, when the method has one.
    pub delta: Option<Vec<f64>>,
    /// Deletion and insertion curves.
    pub curves: Curves,
    /// Method extras (adaptive steps...).
    pub extra: Value,
    /// The attributions, one tensor per input.
    pub values: Vec<Tensor>,
    /// Infidelity per row (`--metrics infidelity`).
    pub infidelity: Option<Vec<f64>>,
    /// Max-sensitivity per row (`--metrics sensitivity-max`).
    pub sensitivity: Option<Vec<f64>>,
}

/// The model's prediction for one input row.
pub struct Prediction {
    /// Row index.
    pub row: usize,
    /// Image file of the row, for image inputs.
    pub file: Option<String>,
    /// Predicted class (classifiers).
    pub predicted: Option<i64>,
    /// Its label.
    pub predicted_label: Option<String>,
    /// Its softmax probability.
    pub probability: Option<f64>,
    /// The explained class (classifiers).
    pub target: Option<i64>,
    /// Its label.
    pub target_label: Option<String>,
    /// The explained score: the target's probability, or the raw output of a scalar model.
    pub target_score: f64,
    /// The raw output of a scalar-output model.
    pub value: Option<f64>,
}

/// One PNG of the report.
pub struct Figure {
    /// File name inside the output folder.
    pub file: String,
    /// Input index.
    pub input: usize,
    /// Row index.
    pub row: usize,
    /// The method of a bar chart (tabular inputs); `None` for an image grid of all methods.
    pub method: Option<String>,
    /// Grid columns, left to right.
    pub columns: Vec<String>,
    /// Bar chart bars, top to bottom: (feature name, attribution).
    pub bars: Vec<(String, f64)>,
    /// Token ids: the text view of the row (an HTML fragment, a line per method), embedded in
    /// report.html and written next to it instead of a PNG.
    pub html: Option<String>,
    /// The figure encoded as PNG: embedded in report.html and written next to it.
    pub png: Vec<u8>,
}

/// Everything in the report.
pub struct Report {
    /// The model file.
    pub model: String,
    /// The device it ran on.
    pub device: String,
    /// The inputs as given (files, or the `--text` sentences).
    pub inputs: Vec<String>,
    /// Shape of each input.
    pub input_shapes: Vec<Vec<i64>>,
    /// Kind of each input (image, tabular...).
    pub input_kinds: Vec<&'static str>,
    /// Shape of the model's output.
    pub output_shape: Vec<i64>,
    /// Class names, one per output.
    pub labels: Option<Vec<String>>,
    /// Per row: the prediction and the explained score.
    pub predictions: Vec<Prediction>,
    /// The explained class per row (classifiers).
    pub targets: Option<Vec<i64>>,
    /// Every method's results, in the order run.
    pub methods: Vec<MethodResult>,
    /// Mean Spearman correlation per pair of methods (`None` where undefined).
    pub agreement: Vec<Vec<Option<f64>>>,
    /// Whether features are pixels (channel sums) for the metrics.
    pub pixels: bool,
    /// Steps of the deletion and insertion curves.
    pub curve_steps: usize,
    /// The figures of the first `figure_rows` rows.
    pub figures: Vec<Figure>,
    /// Rows that have figures.
    pub figure_rows: usize,
    /// Rows in the batch.
    pub rows: usize,
    /// Infidelity and max-sensitivity settings, when `--metrics` asked for them.
    pub metric_settings: Option<MetricSettings>,
    /// The attack section (`--attack`).
    pub robustness: Option<Robustness>,
}

/// The mean of the finite values of `v` (`None` when there are none).
pub(crate) fn mean(v: &[f64]) -> Option<f64> {
    let finite: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    (!finite.is_empty()).then(|| finite.iter().sum::<f64>() / finite.len() as f64)
}

impl MethodResult {
    /// The mean |convergence delta| over the rows, when the method has one.
    fn mean_abs_delta(&self) -> Option<f64> {
        self.delta.as_ref().and_then(|d| mean(&d.iter().map(|x| x.abs()).collect::<Vec<_>>()))
    }
}

/// Escape text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A number with `digits` decimals for a table cell; a dash when missing or not finite.
pub(crate) fn num(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.digits$}"),
        _ => "—".into(),
    }
}

/// A figure's PNG as a `data:` URI for an `<img>`.
pub(crate) fn data_uri(f: &Figure) -> String {
    format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(&f.png))
}

/// Write the figures, `report.json` and `report.html` into `dir`, atomically and all or nothing:
/// each is staged (written and synced under a temporary name), then all are renamed into place;
/// a failure while staging (a full disk) replaces none. Returns the paths of the two reports.
pub fn write(r: &Report, dir: &Path) -> Result<(PathBuf, PathBuf), CompareError> {
    let json_path = dir.join("report.json");
    let html_path = dir.join("report.html");
    let text = serde_json::to_string_pretty(&to_json(r)).map_err(|e| CompareError::Usage(format!("internal: JSON: {e}")))?;
    let html = to_html(r)?;
    let stage = |path: &Path, bytes: &[u8]| {
        attrib::fs::stage(path, |w| w.write_all(bytes))
            .map_err(|e| CompareError::Usage(format!("cannot write {}: {}", path.display(), attrib::fs::io_reason(&e))))
    };
    let mut staged = Vec::new();
    let attack_figures = r.robustness.iter().flat_map(|rob| &rob.figures);
    for f in r.figures.iter().chain(attack_figures) {
        staged.push(stage(&dir.join(&f.file), f.html.as_ref().map_or(&f.png[..], |h| h.as_bytes()))?);
    }
    staged.push(stage(&json_path, text.as_bytes())?);
    staged.push(stage(&html_path, html.as_bytes())?);
    attrib::fs::commit_all(staged)
        .map_err(|(p, e)| CompareError::Usage(format!("cannot write {}: {}", p.display(), attrib::fs::io_reason(&e))))?;
    Ok((html_path, json_path))
}

/// Parameters as `key = value` lines, nested objects with dotted keys (`batch.max_batch = 64`),
/// lists as comma-separated values, keys in alphabetical order.
pub fn param_lines(params: &Value) -> Vec<String> {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, x) in m {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    walk(&key, x, out);
                }
            }
            _ => out.push(format!("{prefix} = {}", show(v))),
        }
    }
    fn show(v: &Value) -> String {
        match v {
            Value::String(s) => s.clone(),
            Value::Null => "none".into(),
            Value::Array(a) => a.iter().map(show).collect::<Vec<_>>().join(", "),
            Value::Object(m) if m.is_empty() => "{}".into(),
            other => other.to_string(),
        }
    }
    let mut out = Vec::new();
    if params.as_object().is_some_and(|m| !m.is_empty()) {
        walk("", params, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{esc, param_lines};
    use serde_json::json;

    #[test]
    fn escapes_markup() {
        assert_eq!(esc("<a href=\"x\">&'</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
    }

    #[test]
    fn params_read_as_key_value_lines() {
        let p = json!({"n_steps": 50, "baselines": ["zeros", {"tensor": [1, 3]}], "batch": {"max_batch": null, "memory_format": "auto"}});
        assert_eq!(
            param_lines(&p),
            vec!["baselines = zeros, {\"tensor\":[1,3]}", "batch.max_batch = none", "batch.memory_format = auto", "n_steps = 50"]
        );
        assert!(param_lines(&json!({})).is_empty());
    }
}
