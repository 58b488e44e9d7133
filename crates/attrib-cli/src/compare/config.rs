//! `attrib compare`, first step: the method specs to run, from `--config` or `--methods`, else
//! the registry's default comparison, each filled in with the registry's settings for these
//! inputs, `--seed` and the batching flags.

use super::files::read_text;
use super::{CompareArgs, CompareError, Result};
use attrib::methods::{DefaultsContext, Registry};
use attrib::prelude::*;
use std::path::Path;

/// A method the registry does not know, with the names it knows.
fn unknown_method(name: &str, registry: &Registry) -> CompareError {
    CompareError::Usage(format!("unknown method `{name}`; available: {}", registry.names().join(", ")))
}

/// The specs the user asked for (`--config`, else `--methods` names), or `None` for the default
/// comparison; unknown names fail here, before any work.
pub(super) fn requested_specs(args: &CompareArgs, registry: &Registry) -> Result<Option<Vec<MethodSpec>>> {
    let given: Vec<MethodSpec> = if let Some(path) = &args.config {
        read_config(path)?
    } else {
        let names: Vec<String> = args.methods.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
        if names.is_empty() {
            return Ok(None);
        }
        names.into_iter().map(MethodSpec::new).collect()
    };
    for spec in &given {
        registry.entry(&spec.method).map_err(|_| unknown_method(&spec.method, registry))?;
        registry.check_given(spec).map_err(|source| CompareError::Method { name: spec.display_name().to_string(), source })?;
    }
    Ok(Some(given))
}

/// The specs to run: those asked for, else the registry's default comparison. The registry's
/// settings for these inputs sit under what a configuration sets; `--seed` and the batching flags
/// fill in what it leaves unset.
pub(super) fn method_specs(args: &CompareArgs, registry: &Registry, given: Option<Vec<MethodSpec>>, ctx: &DefaultsContext) -> Result<Vec<MethodSpec>> {
    let given = match given {
        Some(g) => g,
        None => registry.compare_defaults(ctx)?.into_iter().map(|s| MethodSpec::new(s.method)).collect(),
    };
    if given.is_empty() {
        return Err(CompareError::Usage("no method to compare; list some with --methods or --config".into()));
    }
    let mut out: Vec<MethodSpec> = Vec::new();
    for spec in given {
        let entry = registry.get(&spec.method).ok_or_else(|| unknown_method(&spec.method, registry))?;
        let label = spec.display_name().to_string();
        if label.is_empty() || label.chars().any(|c| c.is_control() || c == '/' || c == '\\') {
            return Err(CompareError::Usage(format!("label `{label}` must be non-empty and contain no slashes or control characters")));
        }
        if out.iter().any(|o| o.display_name() == label) {
            return Err(CompareError::Usage(format!(
                "`{label}` is listed twice; list each method once, or give each configuration of a method its own `label`"
            )));
        }
        let fail = |source| CompareError::Method { name: label.clone(), source };
        let mut params = entry.compare_settings(ctx).map_err(fail)?;
        params.extend(spec.params);
        if let Some(seed) = args.seed {
            if entry.doc().params.iter().any(|p| p.name == "seed") {
                params.entry("seed").or_insert(seed.into());
            }
        }
        for (k, v) in args.batch.spec_keys() {
            params.entry(k).or_insert(v);
        }
        let spec = MethodSpec { method: spec.method, label: spec.label, params };
        registry.check(&spec).map_err(fail)?;
        out.push(spec);
    }
    Ok(out)
}

/// A `--config` file: TOML (`[[methods]]` tables) or JSON (`{"methods": [...]}` or an array).
pub(super) fn read_config(path: &Path) -> Result<Vec<MethodSpec>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Config {
        methods: Vec<MethodSpec>,
    }
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Json {
        Wrapped(Config),
        List(Vec<MethodSpec>),
    }
    let text = read_text(path, "config")?;
    let bad = |e: String| {
        CompareError::Usage(format!(
            "config file {} is not a list of method specs ({e}); write `[[methods]]` tables in TOML, e.g.\n[[methods]]\nmethod = \"integrated-gradients\"\nlabel = \"ig-zeros\"\nbaselines = \"zeros\"",
            path.display()
        ))
    };
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let start = text.trim_start();
    let is_json = match ext.as_deref() {
        Some("json") => true,
        Some("toml") => false,
        _ => start.starts_with('{') || (start.starts_with('[') && !start.starts_with("[[")),
    };
    if is_json {
        match serde_json::from_str::<Json>(&text).map_err(|e| bad(e.to_string()))? {
            Json::Wrapped(c) => Ok(c.methods),
            Json::List(v) => Ok(v),
        }
    } else {
        toml::from_str::<Config>(&text).map(|c| c.methods).map_err(|e| bad(e.to_string().trim().to_string()))
    }
}

