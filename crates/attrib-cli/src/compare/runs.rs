//! `attrib compare`'s methods: built before any runs, then each run (timed, `--repeat`) and
//! scored with deletion/insertion curves and the `--metrics` columns; then the agreement of
//! every pair of methods.

use super::{robustness, CompareArgs, CompareError, Job, Result};
use crate::report::{MethodResult, MetricSettings};
use attrib::convert::tensor_to_vec_f64;
use attrib::methods::Registry;
use attrib::metrics::{deletion_insertion, rank_correlation, DeletionInsertionParams};
use attrib::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use tch::Kind;

/// Build every method before running any, so that a bad parameter fails fast.
pub(super) fn build(registry: &Registry, specs: &[MethodSpec], names: &[String], job: &Job) -> Result<Vec<Box<dyn Attribution>>> {
    specs
        .iter()
        .zip(names)
        .map(|(spec, name)| registry.build(spec, &job.tensors).map_err(|source| CompareError::Method { name: name.clone(), source }))
        .collect()
}

/// The progress bar over `len` methods (hidden with `--quiet` or when stderr is no terminal).
pub(super) fn progress_bar(quiet: bool, len: usize) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::new(len as u64);
        if let Ok(style) = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})") {
            b.set_style(style.progress_chars("=> "));
        }
        b.set_prefix("attrib compare");
        b
    }
}

/// How every method runs and is scored.
pub(super) struct Scoring<'a> {
    /// The target every method explains.
    pub target: &'a Target,
    /// The deletion / insertion curves' parameters.
    pub curves: DeletionInsertionParams,
    /// The `--metrics` settings, if any.
    pub metrics: Option<&'a MetricSettings>,
    /// Whether only the default comparison runs: a method that does not apply is then left out.
    pub defaults_only: bool,
}

/// Run every `built` method (named `names`, built from `specs`) and score it. Returns the
/// results and, alongside, the method of each (a default method that does not apply is left
/// out of both).
pub(super) fn run_all<'m>(
    args: &CompareArgs,
    job: &Job,
    scoring: &Scoring<'_>,
    specs: &[MethodSpec],
    names: &[String],
    built: &'m [Box<dyn Attribution>],
) -> Result<(Vec<MethodResult>, Vec<&'m dyn Attribution>)> {
    let bar = progress_bar(args.quiet, names.len());
    let mut results = Vec::new();
    let mut used: Vec<&dyn Attribution> = Vec::new();
    for ((name, method), spec) in names.iter().zip(built).zip(specs) {
        bar.set_message(name.clone());
        if let Some(result) = run_one(args, job, scoring, name, method.as_ref(), spec)? {
            used.push(method.as_ref());
            results.push(result);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok((results, used))
}

/// Run one method and score it; `None` for a method of the default comparison that does not
/// apply to this model.
fn run_one(args: &CompareArgs, job: &Job, scoring: &Scoring<'_>, name: &str, method: &dyn Attribution, spec: &MethodSpec) -> Result<Option<MethodResult>> {
    let (model, inputs, target) = (&job.model, &job.inputs, scoring.target);
    let fail = |source| CompareError::Method { name: name.to_string(), source };
    let (attr, timing) = match attrib::timing::attribute_repeated(method, model, inputs, target, args.repeat) {
        Ok(done) => done,
        // A method of the default comparison that cannot apply to this model (the graph
        // rules of DeepLIFT and guided backprop on an operation they do not cover) is left
        // out with a note; a method asked for by name fails the run.
        Err(AttribError::NotApplicable(why)) if scoring.defaults_only => {
            eprintln!("note: {name} left out of the comparison: {why}");
            return Ok(None);
        }
        Err(e) => return Err(fail(e)),
    };
    let delta = attr.convergence_delta.as_ref().map(tensor_to_vec_f64).transpose().map_err(fail)?;
    let (values, curves) = match job.token {
        // Token attributions; the curves replace tokens by the pad id 0 in their order.
        Some(j) => {
            let values = vec![crate::text::compare_values(&attr.values[0], &job.tensors[j]).map_err(fail)?];
            let as_float = Inputs::new(job.tensors[j].to_kind(Kind::Float));
            let m = crate::text::IdsAsFloat(model);
            let curves = deletion_insertion(&m, &as_float, target, &values, &scoring.curves).map_err(fail)?;
            (values, curves)
        }
        None => {
            let curves = deletion_insertion(model, inputs, target, &attr.values, &scoring.curves).map_err(fail)?;
            (attr.values, curves)
        }
    };
    let (infidelity, sensitivity) = match (scoring.metrics, job.token) {
        (Some(m), None) => robustness::method_metrics(m, method, model, inputs, target, &values, job.batch).map_err(fail)?,
        _ => (None, None),
    };
    Ok(Some(MethodResult {
        name: name.to_string(),
        method: attr.meta.method.clone(),
        params: attr.meta.params.clone(),
        spec: spec.clone(),
        timing,
        delta,
        curves,
        extra: attr.meta.extra.clone(),
        values,
        infidelity,
        sensitivity,
    }))
}

/// Agreement: Spearman per row, averaged over the rows where it is defined; 1 on the diagonal.
pub(super) fn agreement(results: &[MethodResult], pixels: bool) -> Result<Vec<Vec<Option<f64>>>> {
    let k = results.len();
    let mut agreement = vec![vec![None; k]; k];
    for a in 0..k {
        agreement[a][a] = Some(1.0);
        for b in a + 1..k {
            let per_row = rank_correlation(&results[a].values, &results[b].values, pixels)?;
            let defined: Vec<f64> = per_row.into_iter().flatten().collect();
            let mean = (!defined.is_empty()).then(|| defined.iter().sum::<f64>() / defined.len() as f64);
            agreement[a][b] = mean;
            agreement[b][a] = mean;
        }
    }
    Ok(agreement)
}
