//! The report of `attrib compare`: `report.json` and a self-contained `report.html` (inline CSS,
//! figures embedded as `data:image/png;base64,...`).

use crate::compare::CompareError;
use attrib::metrics::Curves;
use base64::Engine as _;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use tch::Tensor;

mod robustness;
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
    pub model: String,
    pub device: String,
    pub inputs: Vec<String>,
    pub input_shapes: Vec<Vec<i64>>,
    pub input_kinds: Vec<&'static str>,
    pub output_shape: Vec<i64>,
    pub labels: Option<Vec<String>>,
    pub predictions: Vec<Prediction>,
    pub targets: Option<Vec<i64>>,
    pub methods: Vec<MethodResult>,
    /// Mean Spearman correlation per pair of methods (`None` where undefined).
    pub agreement: Vec<Vec<Option<f64>>>,
    /// Whether features are pixels (channel sums) for the metrics.
    pub pixels: bool,
    pub curve_steps: usize,
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

pub(crate) fn mean(v: &[f64]) -> Option<f64> {
    let finite: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    (!finite.is_empty()).then(|| finite.iter().sum::<f64>() / finite.len() as f64)
}

impl MethodResult {
    fn mean_abs_delta(&self) -> Option<f64> {
        self.delta.as_ref().and_then(|d| mean(&d.iter().map(|x| x.abs()).collect::<Vec<_>>()))
    }
}

/// `report.json` as a value.
pub fn to_json(r: &Report) -> Value {
    let mut v = to_json_base(r);
    if let Some(m) = &r.metric_settings {
        if let (Some(obj), Value::Object(extra)) = (v["metrics"].as_object_mut(), m.to_json()) {
            obj.extend(extra);
        }
    }
    for (m, json) in r.methods.iter().zip(v["methods"].as_array_mut().into_iter().flatten()) {
        if let Some(inf) = &m.infidelity {
            json["infidelity"] = json!(inf);
            json["mean_infidelity"] = json!(mean(inf));
        }
        if let Some(sens) = &m.sensitivity {
            json["sensitivity_max"] = json!(sens);
            json["mean_sensitivity_max"] = json!(mean(sens));
        }
    }
    v["robustness"] = r.robustness.as_ref().map_or(Value::Null, Robustness::to_json);
    v
}

fn to_json_base(r: &Report) -> Value {
    let features = if r.pixels { "pixels: attributions summed over channels" } else { "every scalar of every input" };
    json!({
        "model": r.model,
        "device": r.device,
        "inputs": r.inputs.iter().zip(&r.input_shapes).zip(&r.input_kinds).enumerate().map(|(i, ((p, s), k))| json!({
            "index": i, "path": p, "shape": s, "kind": k,
        })).collect::<Vec<_>>(),
        "rows": r.rows,
        "output_shape": r.output_shape,
        "labels": r.labels,
        "predictions": r.predictions.iter().map(|p| json!({
            "row": p.row,
            "file": p.file,
            "predicted": p.predicted,
            "predicted_label": p.predicted_label,
            "probability": p.probability,
            "target": p.target,
            "target_label": p.target_label,
            "target_score": p.target_score,
            "value": p.value,
        })).collect::<Vec<_>>(),
        "targets": r.targets,
        "metrics": {
            "deletion_insertion": {
                "steps": r.curve_steps,
                "baseline": "zeros",
                "score": if r.targets.is_some() { "softmax probability of the target" } else { "raw model output" },
                "order": "features by attribution, largest first (ties in index order)",
                "features": features,
                "auc": "trapezoid rule over the fraction of features replaced, in [0, 1]",
            },
            "agreement": format!("Spearman rank correlation per row (average ranks for ties) over {features}, averaged over the rows where both attributions vary"),
        },
        "methods": r.methods.iter().map(|m| json!({
            "name": m.name,
            "method": m.method,
            "params": m.params,
            "spec": m.spec,
            "elapsed_ms": m.timing.median_ms,
            "first_ms": m.timing.first_ms,
            "repeats": m.timing.repeats,
            "elapsed_min_ms": m.timing.min_ms,
            "elapsed_max_ms": m.timing.max_ms,
            "convergence_delta": m.delta,
            "mean_abs_convergence_delta": m.mean_abs_delta(),
            "deletion_auc": m.curves.deletion_auc,
            "insertion_auc": m.curves.insertion_auc,
            "mean_deletion_auc": mean(&m.curves.deletion_auc),
            "mean_insertion_auc": mean(&m.curves.insertion_auc),
            "curve_fractions": m.curves.fractions,
            "deletion_curves": m.curves.deletion,
            "insertion_curves": m.curves.insertion,
            "extra": m.extra,
        })).collect::<Vec<_>>(),
        "agreement": {
            "methods": r.methods.iter().map(|m| m.name.clone()).collect::<Vec<_>>(),
            "matrix": r.agreement,
        },
        "figure_rows": r.figure_rows,
        "images": r.figures.iter().map(|f| json!({
            "file": f.file,
            "input": f.input,
            "row": f.row,
            "method": f.method,
            "columns": f.columns,
            "bars": f.bars.iter().map(|(n, v)| json!({"feature": n, "attribution": v})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "html": "report.html",
    })
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

pub(crate) fn num(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.digits$}"),
        _ => "—".into(),
    }
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}\
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}\
th{background:#f3f3f3}td.l,th.l{text-align:left}code{font-size:85%}figure{margin:1em 0}\
figcaption{font-size:90%;color:#555}img{image-rendering:pixelated;border:1px solid #ddd}\
.best{font-weight:bold}.row{border-top:1px solid #ddd;padding-top:.5em}ol{margin:.2em 0;padding-left:1.5em;font-size:85%;text-align:left}";

/// `report.html` as a string, figures embedded.
pub fn to_html(r: &Report) -> Result<String, CompareError> {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>attrib compare: {}</title><style>{CSS}</style></head><body>\n",
        esc(&r.model)
    );
    let _ = writeln!(h, "<h1>Attribution methods compared</h1>");
    let _ = writeln!(
        h,
        "<p>Model <code>{}</code> on {} ({} rows); output shape {:?}. Inputs: {}.</p>",
        esc(&r.model),
        esc(&r.device),
        r.rows,
        r.output_shape,
        r.inputs
            .iter()
            .zip(&r.input_shapes)
            .zip(&r.input_kinds)
            .map(|((p, s), k)| format!("<code>{}</code> {s:?} ({k})", esc(p)))
            .collect::<Vec<_>>()
            .join(", ")
    );

    // Methods.
    let best_del = r.methods.iter().filter_map(|m| mean(&m.curves.deletion_auc)).fold(f64::INFINITY, f64::min);
    let best_ins = r.methods.iter().filter_map(|m| mean(&m.curves.insertion_auc)).fold(f64::NEG_INFINITY, f64::max);
    let repeated = r.methods.iter().any(|m| m.timing.repeats > 0);
    let time_head = if repeated { "<th>first call (ms)</th><th>warm median (ms)</th><th>warm min–max (ms)</th>" } else { "<th>time (ms)</th>" };
    let _ = writeln!(h, "<h2>Methods</h2><table><tr><th class=\"l\">method</th>{time_head}<th>mean |delta|</th><th>deletion AUC ↓</th><th>insertion AUC ↑</th>{}<th class=\"l\">parameters</th></tr>", robust_heads(r));
    for m in &r.methods {
        let (d, i) = (mean(&m.curves.deletion_auc), mean(&m.curves.insertion_auc));
        let cls = |best: bool| if best { " class=\"best\"" } else { "" };
        let _ = writeln!(
            h,
            "<tr><td class=\"l\">{}</td>{}<td>{}</td><td{}>{}</td><td{}>{}</td>{}<td class=\"l params\">{}</td></tr>",
            esc(&m.name),
            if repeated {
                format!("<td>{:.2}</td><td>{:.2}</td><td>{:.2}–{:.2}</td>", m.timing.first_ms, m.timing.median_ms, m.timing.min_ms, m.timing.max_ms)
            } else {
                format!("<td>{:.1}</td>", m.timing.first_ms)
            },
            num(m.mean_abs_delta(), 4),
            cls(d == Some(best_del)),
            num(d, 4),
            cls(i == Some(best_ins)),
            num(i, 4),
            robust_cells(r, m),
            param_lines(&m.params).iter().map(|l| format!("<code>{}</code>", esc(l))).collect::<Vec<_>>().join("<br>")
        );
    }
    let _ = writeln!(h, "</table>");
    let score = if r.targets.is_some() { "the softmax probability of the explained class" } else { "the model's output" };
    let features = if r.pixels { "pixels (attributions summed over channels; a pixel is replaced in every channel)" } else { "scalars of the input" };
    let _ = writeln!(
        h,
        "<p>Time: wall time of one attribution of the whole batch (model loading and metrics excluded). \
         Delta: the convergence delta Σ attributions − (f(x) − f(baseline)) where the method has one. \
         Deletion / insertion (Petsiuk et al. 2018): the {features} are ordered by attribution, largest first; in {} steps \
         the top features are replaced by the baseline (zeros) — deletion — or put back on top of the baseline — insertion — and {score} \
         is recorded; the area under each curve is the trapezoid rule over the fraction of features replaced. Lower deletion and \
         higher insertion areas are better; the best mean is in bold. Means are over all {} rows.</p>",
        r.curve_steps, r.rows
    );
    if let Some(m) = &r.metric_settings {
        let _ = writeln!(h, "{}", m.html_note());
    }

    // Agreement.
    let _ = writeln!(h, "<h2>Agreement</h2><p>Spearman rank correlation between the attributions of two methods over the {features}, per row (average ranks for ties), averaged over the rows where both vary (— where never defined).</p><table><tr><th></th>");
    for m in &r.methods {
        let _ = write!(h, "<th>{}</th>", esc(&m.name));
    }
    let _ = writeln!(h, "</tr>");
    for (m, row) in r.methods.iter().zip(&r.agreement) {
        let _ = write!(h, "<tr><th class=\"l\">{}</th>", esc(&m.name));
        for v in row {
            let _ = write!(h, "<td>{}</td>", num(*v, 3));
        }
        let _ = writeln!(h, "</tr>");
    }
    let _ = writeln!(h, "</table>");

    if let Some(rob) = &r.robustness {
        rob.to_html(&mut h);
    }

    // Predictions and figures, row by row.
    let _ = writeln!(h, "<h2>Inputs</h2>");
    if r.figure_rows < r.rows {
        let _ = writeln!(h, "<p>Figures for the first {} of {} rows (<code>--report-rows</code>).</p>", r.figure_rows, r.rows);
    }
    for p in &r.predictions {
        let _ = write!(h, "<div class=\"row\"><h3>Row {}{}</h3><p>", p.row, p.file.as_deref().map(|f| format!(": <code>{}</code>", esc(f))).unwrap_or_default());
        match (p.predicted, p.probability, &p.target) {
            (Some(_), Some(prob), Some(_)) => {
                let _ = write!(
                    h,
                    "Predicted <b>{}</b> with probability {prob:.4}; explained class <b>{}</b> (probability {:.4}).",
                    esc(p.predicted_label.as_deref().unwrap_or("")),
                    esc(p.target_label.as_deref().unwrap_or("")),
                    p.target_score
                );
            }
            _ => {
                let _ = write!(h, "Model output {}.", num(p.value, 4));
            }
        }
        let _ = writeln!(h, "</p>");
        let figs: Vec<&Figure> = r.figures.iter().filter(|f| f.row == p.row).collect();
        let grids: Vec<&&Figure> = figs.iter().filter(|f| f.method.is_none()).collect();
        for f in grids {
            if let Some(fragment) = &f.html {
                let _ = writeln!(
                    h,
                    "<figure>{fragment}<figcaption>Input {}: token attributions, one line per method ({}).</figcaption></figure>",
                    f.input,
                    esc(&f.columns.join(", "))
                );
                continue;
            }
            let _ = writeln!(
                h,
                "<figure><img src=\"{}\" alt=\"{}\"><figcaption>Input {}, left to right: {}. Blended heat maps, signed (green positive, red negative).</figcaption></figure>",
                data_uri(f),
                esc(&f.file),
                f.input,
                esc(&f.columns.join(", "))
            );
        }
        let bars: Vec<&&Figure> = figs.iter().filter(|f| f.method.is_some()).collect();
        if !bars.is_empty() {
            let _ = writeln!(h, "<table><tr>");
            for f in &bars {
                let _ = write!(h, "<th>{} (input {})</th>", esc(f.method.as_deref().unwrap_or("")), f.input);
            }
            let _ = writeln!(h, "</tr><tr>");
            for f in &bars {
                let _ = write!(h, "<td class=\"l\"><img src=\"{}\" alt=\"{}\"><ol>", data_uri(f), esc(&f.file));
                for (name, v) in &f.bars {
                    let _ = write!(h, "<li>{}: {:.4}</li>", esc(name), v);
                }
                let _ = write!(h, "</ol></td>");
            }
            let _ = writeln!(h, "</tr></table>");
        }
        let _ = writeln!(h, "</div>");
    }
    let _ = writeln!(h, "<p>Written by <code>attrib compare</code>; the same numbers are in <code>report.json</code>.</p></body></html>");
    Ok(h)
}

/// The infidelity / max-sensitivity headers of the methods table, when computed.
fn robust_heads(r: &Report) -> String {
    let Some(m) = &r.metric_settings else { return String::new() };
    let mut h = String::new();
    if m.infidelity {
        h.push_str("<th>infidelity ↓</th>");
    }
    if m.sensitivity {
        h.push_str("<th>max-sensitivity ↓</th>");
    }
    h
}

/// A method's infidelity / max-sensitivity cells (means over the rows), the best in bold.
fn robust_cells(r: &Report, m: &MethodResult) -> String {
    let Some(s) = &r.metric_settings else { return String::new() };
    let cell = |get: fn(&MethodResult) -> Option<&Vec<f64>>| {
        let best = r.methods.iter().filter_map(|x| get(x).and_then(|v| mean(v))).fold(f64::INFINITY, f64::min);
        let v = get(m).and_then(|v| mean(v));
        format!("<td{}>{}</td>", if v == Some(best) { " class=\"best\"" } else { "" }, num(v, 4))
    };
    let mut h = String::new();
    if s.infidelity {
        h.push_str(&cell(|x| x.infidelity.as_ref()));
    }
    if s.sensitivity {
        h.push_str(&cell(|x| x.sensitivity.as_ref()));
    }
    h
}

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
