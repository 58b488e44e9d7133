//! Per-item records (one file per finished block) and run summaries, all written atomically.

use crate::layout::OutLayout;
use attrib::{AttribError, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;

/// The format tag of a run summary.
pub const SUMMARY_FORMAT: &str = "attrib-dataset-summary/1";

/// What a run records about one item (no timings, so that records are bit-identical run to
/// run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemRecord {
    /// The item's id (relative path, or row number of a `.npy` source).
    pub item: String,
    /// Its attribution's file, relative to the output folder.
    pub output: String,
    /// The tensor's name in that file (`--format safetensors`: the item id; absent for `.npy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensor: Option<String>,
    /// The shape of its model input (and of the attribution), `[1, ...]`.
    pub shape: Vec<i64>,
    /// The explained class (`None` for scalar-output models).
    pub target: Option<i64>,
    /// The model's predicted class (`None` unless the output is `[N, classes]`).
    pub prediction: Option<i64>,
    /// The method's convergence delta for the item (`None` for methods without one).
    pub convergence_delta: Option<f64>,
    /// Area under the deletion curve (`--metrics`; lower is better).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_auc: Option<f64>,
    /// Area under the insertion curve (`--metrics`; higher is better).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insertion_auc: Option<f64>,
    /// The item's seed of the robustness metrics (`attrib metrics --seed` on the item alone
    /// reproduces them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_seed: Option<u64>,
    /// Infidelity (`--metrics infidelity`; lower is better).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infidelity: Option<f64>,
    /// Max-sensitivity (`--metrics sensitivity-max`; lower is better).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitivity_max: Option<f64>,
    /// Faithfulness correlation (`--metrics faithfulness`; higher is better; `null` where it is
    /// undefined, absent where not asked).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub faithfulness_correlation: Option<Option<f64>>,
}

/// A field that is present (possibly `null`): `Some(value)`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<Option<f64>>, D::Error> {
    Ok(Some(Option::<f64>::deserialize(d)?))
}

/// Mean, sample standard deviation and a 95 % confidence interval of the mean (normal
/// approximation, `mean ± 1.96 · sd / √n`; `null` bounds below two values) of the values given.
pub fn mean_ci(values: &[f64]) -> Value {
    let n = values.len();
    if n == 0 {
        return json!({"n": 0, "mean": null, "sd": null, "ci95": null});
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return json!({"n": 1, "mean": mean, "sd": null, "ci95": null});
    }
    let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
    let half = 1.96 * sd / (n as f64).sqrt();
    json!({"n": n, "mean": mean, "sd": sd, "ci95": [mean - half, mean + half]})
}

/// The metrics of `records` aggregated over the items that have them (`null` without any):
/// `deletion_auc` and `insertion_auc` when any item has them (as before), and `infidelity`,
/// `sensitivity_max`, `faithfulness_correlation` (with `undefined`: items whose correlation is
/// undefined, left out of the mean) when any item has those.
pub fn aggregate_metrics(records: &[ItemRecord]) -> Value {
    let del: Vec<f64> = records.iter().filter_map(|r| r.deletion_auc).collect();
    let ins: Vec<f64> = records.iter().filter_map(|r| r.insertion_auc).collect();
    let inf: Vec<f64> = records.iter().filter_map(|r| r.infidelity).collect();
    let sens: Vec<f64> = records.iter().filter_map(|r| r.sensitivity_max).collect();
    let faith: Vec<Option<f64>> = records.iter().filter_map(|r| r.faithfulness_correlation).collect();
    if del.is_empty() && ins.is_empty() && inf.is_empty() && sens.is_empty() && faith.is_empty() {
        return Value::Null;
    }
    let mut out = serde_json::Map::new();
    if !(del.is_empty() && ins.is_empty()) {
        out.insert("deletion_auc".into(), mean_ci(&del));
        out.insert("insertion_auc".into(), mean_ci(&ins));
    }
    if !inf.is_empty() {
        out.insert("infidelity".into(), mean_ci(&inf));
    }
    if !sens.is_empty() {
        out.insert("sensitivity_max".into(), mean_ci(&sens));
    }
    if !faith.is_empty() {
        let defined: Vec<f64> = faith.iter().flatten().copied().collect();
        let mut v = mean_ci(&defined);
        v["undefined"] = json!(faith.len() - defined.len());
        out.insert("faithfulness_correlation".into(), v);
    }
    Value::Object(out)
}

/// The names of the aggregated metrics, in the order of the summary and the comparison.
pub const METRIC_KEYS: &[&str] = &["deletion_auc", "insertion_auc", "infidelity", "sensitivity_max", "faithfulness_correlation"];

/// Write `value` as pretty JSON to `path`, atomically (missing folders are created).
pub fn write_json(path: &Path, value: &Value) -> Result<()> {
    let io = |e: std::io::Error| AttribError::Io { action: "cannot write", path: path.to_path_buf(), reason: attrib::fs::io_reason(&e) };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let text = serde_json::to_string_pretty(value).map_err(|e| AttribError::Internal(e.to_string()))?;
    attrib::fs::write_atomic(path, |w| {
        w.write_all(text.as_bytes())?;
        w.write_all(b"\n")
    })
    .map_err(io)
}

/// Write the record of block `index` (after its attributions: its presence marks the block
/// complete).
pub fn write_record(path: &Path, index: usize, items: &[ItemRecord]) -> Result<()> {
    write_json(path, &json!({ "block": index, "items": items }))
}

/// The records of `blocks`, in order (every block must have one).
pub fn read_records(layout: &OutLayout, blocks: std::ops::Range<usize>) -> Result<Vec<ItemRecord>> {
    let mut out = Vec::new();
    for b in blocks {
        let path = layout.record(b);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| AttribError::Io { action: "cannot read block record", path: path.clone(), reason: attrib::fs::io_reason(&e) })?;
        #[derive(Deserialize)]
        struct Record {
            items: Vec<ItemRecord>,
        }
        let r: Record = serde_json::from_str(&text)
            .map_err(|e| AttribError::Io { action: "cannot read block record", path: path.clone(), reason: format!("{e}; delete it to recompute the block") })?;
        out.extend(r.items);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_interval_by_hand() {
        // Values 1, 2, 3, 4: mean 2.5, sd sqrt(5/3), half width 1.96 * sd / 2.
        let v = mean_ci(&[1.0, 2.0, 3.0, 4.0]);
        let sd = (5.0f64 / 3.0).sqrt();
        assert_eq!(v["mean"], 2.5);
        assert!((v["sd"].as_f64().unwrap() - sd).abs() < 1e-15);
        let lo = v["ci95"][0].as_f64().unwrap();
        assert!((lo - (2.5 - 1.96 * sd / 2.0)).abs() < 1e-15);
        assert_eq!(mean_ci(&[7.0])["ci95"], Value::Null);
        assert_eq!(mean_ci(&[])["n"], 0);
    }

    fn record(faith: Option<Option<f64>>, inf: Option<f64>) -> ItemRecord {
        ItemRecord {
            item: "a".into(),
            output: "attributions/a.npy".into(),
            tensor: None,
            shape: vec![1, 2],
            target: Some(0),
            prediction: Some(0),
            convergence_delta: None,
            deletion_auc: None,
            insertion_auc: None,
            metric_seed: Some(7),
            infidelity: inf,
            sensitivity_max: None,
            faithfulness_correlation: faith,
        }
    }

    #[test]
    fn undefined_faithfulness_is_kept_apart_from_absent() {
        // null (undefined) survives a round trip as Some(None); an absent field reads as None.
        let r = record(Some(None), Some(2.0));
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains("\"faithfulness_correlation\":null"));
        assert_eq!(serde_json::from_str::<ItemRecord>(&text).unwrap(), r);
        let absent = record(None, None);
        let text = serde_json::to_string(&absent).unwrap();
        assert!(!text.contains("faithfulness") && !text.contains("infidelity"));
        assert_eq!(serde_json::from_str::<ItemRecord>(&text).unwrap(), absent);
        // Aggregates: the undefined item is counted apart; no curves, no curve keys.
        let m = aggregate_metrics(&[record(Some(None), Some(2.0)), record(Some(Some(0.5)), Some(4.0)), record(Some(Some(0.25)), None)]);
        assert_eq!(m["faithfulness_correlation"]["n"], 2);
        assert_eq!(m["faithfulness_correlation"]["undefined"], 1);
        assert_eq!(m["faithfulness_correlation"]["mean"], 0.375);
        assert_eq!(m["infidelity"]["mean"], 3.0);
        assert!(m.get("deletion_auc").is_none() && m.get("sensitivity_max").is_none());
        assert_eq!(aggregate_metrics(&[absent]), Value::Null);
    }
}
