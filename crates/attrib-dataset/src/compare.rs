//! Several methods over one data set (`attrib compare-dataset`): one data-set run per method,
//! each in its own folder (so each is sharded, resumed and pinned like any run), with
//! deletion/insertion metrics, and one comparison of their aggregates.

use crate::run::{run, Progress, RunConfig};
use crate::summary;
use attrib::methods::Registry;
use attrib::{MethodSpec, Result};
use serde_json::{json, Value};

/// Folder names of `specs` inside the comparison folder: the label, else the method name, made
/// unique with `-2`, `-3`... in order.
pub fn folder_names(specs: &[MethodSpec]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for s in specs {
        let base: String = s
            .label
            .clone()
            .unwrap_or_else(|| s.method.clone())
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '_' })
            .collect();
        let mut name = base.clone();
        let mut k = 2;
        while names.contains(&name) {
            name = format!("{base}-{k}");
            k += 1;
        }
        names.push(name);
    }
    names
}

/// Run every spec over the data set of `base` (its `spec` and `out_dir` replaced: each method
/// gets `base.out_dir/<name>`), metrics on (`base.metrics`, else deletion/insertion with 20
/// steps), and write `base.out_dir/comparison.json`: per method its folder, spec, items, items/s,
/// mean absolute convergence delta and the aggregates of the metrics computed (deletion/insertion
/// areas, infidelity, max-sensitivity, faithfulness correlation) with their 95 % intervals.
/// Returns that comparison.
pub fn compare(registry: &Registry, base: &RunConfig, specs: &[MethodSpec], progress: &mut dyn FnMut(&str, &Progress)) -> Result<Value> {
    let names = folder_names(specs);
    let mut rows = Vec::new();
    for (spec, name) in specs.iter().zip(&names) {
        let mut cfg = base.clone();
        cfg.spec = spec.clone();
        cfg.spec.label = None;
        cfg.out_dir = base.out_dir.join(name);
        if cfg.metrics.is_empty() {
            cfg.metrics = crate::MetricSet::steps(crate::metrics::DEFAULT_STEPS);
        }
        let report = run(registry, &cfg, &mut |p| progress(name, p))?;
        let s = &report.summary;
        let deltas: Vec<f64> = s["per_item"].as_array().map(|a| a.iter().filter_map(|r| r["convergence_delta"].as_f64()).map(f64::abs).collect()).unwrap_or_default();
        let mut row = json!({
            "name": name,
            "folder": name,
            "method": s["method"],
            "params": s["params"],
            "items": s["items"],
            "computed": s["computed"],
            "items_per_s": s["items_per_s"],
            "abs_convergence_delta": if deltas.is_empty() { Value::Null } else { summary::mean_ci(&deltas) },
        });
        for key in summary::METRIC_KEYS {
            if let Some(v) = s["metrics"].get(*key) {
                row[*key] = v.clone();
            }
        }
        rows.push(row);
    }
    let out = json!({
        "format": "attrib-dataset-comparison/1",
        "input": base.input,
        "model": base.model,
        "interval": "95 % confidence interval of the mean, normal approximation (mean ± 1.96 sd/√n)",
        "methods": rows,
    });
    summary::write_json(&base.out_dir.join("comparison.json"), &out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_are_unique_and_plain() {
        let spec = |m: &str, l: Option<&str>| MethodSpec { method: m.into(), label: l.map(String::from), params: Default::default() };
        let names = folder_names(&[spec("saliency", None), spec("saliency", None), spec("integrated-gradients", Some("ig zeros/1"))]);
        assert_eq!(names, ["saliency", "saliency-2", "ig_zeros_1"]);
    }
}
