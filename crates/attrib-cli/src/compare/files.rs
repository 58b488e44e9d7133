//! The files of `attrib compare`: the label and feature-name files it reads, and the report's
//! paths, checked against every file it reads.

use super::{CompareArgs, CompareError, Result};
use std::path::{Path, PathBuf};

/// The text of a file the command reads (`what`: which, for the message).
pub(super) fn read_text(path: &Path, what: &str) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| CompareError::Usage(format!("cannot read {what} file {}: {e}", path.display())))
}

/// A file holding a JSON array of strings (`what`: which, for the messages).
pub(super) fn json_strings(path: &Path, what: &str) -> Result<Vec<String>> {
    let text = read_text(path, what)?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        CompareError::Usage(format!("{what} file {} is not valid JSON ({e}); write a JSON array of strings", path.display()))
    })?;
    v.as_array()
        .and_then(|a| a.iter().map(|x| x.as_str().map(str::to_string)).collect::<Option<Vec<_>>>())
        .ok_or_else(|| {
            CompareError::Usage(format!("{what} file {} must hold a JSON array of strings, like [\"a\", \"b\"]", path.display()))
        })
}

/// The class names of `--labels` or `--labels-file`, if given.
pub(super) fn read_labels(args: &CompareArgs) -> Result<Option<Vec<String>>> {
    if !args.labels.is_empty() {
        return Ok(Some(args.labels.iter().map(|s| s.trim().to_string()).collect()));
    }
    let Some(path) = &args.labels_file else { return Ok(None) };
    let labels = if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
        json_strings(path, "labels")?
    } else {
        read_text(path, "labels")?.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect()
    };
    if labels.is_empty() {
        return Err(CompareError::Usage(format!("labels file {} holds no class names", path.display())));
    }
    Ok(Some(labels))
}

/// The files `attrib compare` reads: no output may be one of them.
pub(super) fn reads(args: &CompareArgs) -> crate::outputs::Reads {
    let mut r = crate::outputs::Reads::model_run(&args.inputs, &args.model, &args.target);
    for (flag, p) in [("--config", &args.config), ("--labels-file", &args.labels_file), ("--feature-names", &args.feature_names)] {
        if let Some(p) = p {
            r.add(flag, p);
        }
    }
    if let Some(config) = &args.config {
        // A config that does not parse has been refused already (the config reader runs first).
        for spec in super::config::read_config(config).unwrap_or_default() {
            // Every parameter's value (baselines, feature_mask) that names a file is read.
            for (key, value) in &spec.params {
                r.maybe_json(&format!("--config {key}"), value);
            }
        }
    }
    r
}

/// Check the report's paths in `dir`: `report.html`, `report.json` and the figures `files`.
/// Before the work, when the figures' names are not known yet, a file the command reads that sits
/// in `dir` under a figure's name pattern (`input*_row*.png`) is refused too.
pub(super) fn check_report_paths(dir: &Path, files: &[String], reads: &crate::outputs::Reads) -> Result<()> {
    let mut paths: Vec<(&str, PathBuf)> = vec![("report.json", dir.join("report.json")), ("report.html", dir.join("report.html"))];
    paths.extend(files.iter().map(|f| ("a report figure", dir.join(f))));
    let outputs: Vec<(&str, &Path)> = paths.iter().map(|(f, p)| (*f, p.as_path())).collect();
    crate::outputs::check(&outputs, reads)?;
    if files.is_empty() {
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        for (flag, p) in reads.files() {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let inside = p.parent().and_then(|d| std::fs::canonicalize(if d.as_os_str().is_empty() { Path::new(".") } else { d }).ok()) == Some(dir.clone());
            let figure_like = name.starts_with("input") || name.starts_with("attack_input");
            if inside && figure_like && name.contains("_row") && name.ends_with(".png") {
                return Err(CompareError::Usage(format!(
                    "{flag} {} is in --out-dir, where a report figure of the same name may replace it; choose another --out-dir",
                    p.display()
                )));
            }
        }
    }
    Ok(())
}

