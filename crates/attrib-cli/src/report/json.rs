//! `report.json`: the report as a JSON value.

use super::{mean, Report, Robustness};
use serde_json::{json, Value};

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

/// Everything but the `--metrics` columns and the attack section.
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

