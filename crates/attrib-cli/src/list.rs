//! `attrib methods [NAME]`: the registry, as a table or JSON.

use attrib::methods::{MethodDoc, Param, Registry, ALLOW_NONFINITE_PARAM, BATCH_PARAMS, NOISE_TUNNEL_PARAMS};
use attrib::Result;
use serde_json::{json, Value};
use std::fmt::Write as _;

/// Arguments of `attrib methods`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  attrib methods\n  attrib methods occlusion\n  attrib methods --json")]
pub struct MethodsArgs {
    /// Show one method's parameters, defaults and flags.
    pub name: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

fn flags(doc: &MethodDoc) -> Vec<&'static str> {
    let f = doc.flags;
    let mut v = Vec::new();
    if f.needs_gradients {
        v.push("needs gradients");
    }
    if f.stochastic {
        v.push("stochastic (seed)");
    }
    if f.multiplies_by_inputs {
        v.push("multiplies by inputs");
    }
    if f.has_convergence_delta {
        v.push("convergence delta");
    }
    v
}

fn param_json(p: &Param) -> Value {
    let flag = crate::methods::flag_of(p.name);
    json!({
        "name": p.name,
        "type": p.ty.describe(),
        "default": p.default_value(),
        "required": p.required,
        "flag": flag,
        "doc": p.doc,
    })
}

fn doc_json(doc: &MethodDoc) -> Value {
    json!({
        "name": doc.name,
        "description": doc.description,
        "family": doc.family.name(),
        "flags": doc.flags,
        "params": doc.params.iter().map(param_json).collect::<Vec<_>>(),
    })
}

fn param_lines(out: &mut String, params: &[Param]) {
    for p in params {
        let flag = crate::methods::flag_of(p.name);
        let default = match (p.required, p.default) {
            (true, _) => "required".to_string(),
            (false, Some(d)) => format!("default {d}"),
            (false, None) => "unset".to_string(),
        };
        let flag = flag.map(|f| format!(" ({f})")).unwrap_or_default();
        let _ = writeln!(out, "  {:<24} {:<40} [{default}]{flag}", p.name, p.ty.describe());
        let _ = writeln!(out, "  {:<24} {}", "", p.doc);
    }
}

/// Run `attrib methods`.
pub fn run(args: MethodsArgs, registry: &Registry) -> Result<()> {
    let mut out = String::new();
    match &args.name {
        None if args.json => {
            out = serde_json::to_string_pretty(&registry.entries().map(|e| doc_json(e.doc())).collect::<Vec<_>>()).unwrap_or_default();
        }
        None => {
            for e in registry.entries() {
                let d = e.doc();
                let _ = writeln!(out, "{:<22} {:<13} {}", d.name, d.family.name(), d.description);
            }
            let _ = writeln!(out, "\n`attrib methods NAME` shows a method's parameters; specs: {{\"method\": NAME, PARAM: VALUE, ...}}");
        }
        Some(name) => {
            let entry = registry.entry(name)?;
            let d = entry.doc();
            if args.json {
                let mut v = doc_json(d);
                v["batch_params"] = json!(BATCH_PARAMS.iter().map(param_json).collect::<Vec<_>>());
                v["noise_tunnel_params"] = json!(NOISE_TUNNEL_PARAMS.iter().map(param_json).collect::<Vec<_>>());
                v["check_params"] = json!([param_json(&ALLOW_NONFINITE_PARAM)]);
                out = serde_json::to_string_pretty(&v).unwrap_or_default();
            } else {
                let _ = writeln!(out, "{} ({}): {}", d.name, d.family.name(), d.description);
                let f = flags(d);
                if !f.is_empty() {
                    let _ = writeln!(out, "{}", f.join(", "));
                }
                let _ = writeln!(out, "\nparameters:");
                if d.params.is_empty() {
                    let _ = writeln!(out, "  (none)");
                }
                param_lines(&mut out, d.params);
                let _ = writeln!(out, "\nbatching (every method):");
                param_lines(&mut out, BATCH_PARAMS);
                let _ = writeln!(out, "\nnoise tunnel around any method (spec key `noise_tunnel`, or --noise-tunnel TYPE):");
                param_lines(&mut out, NOISE_TUNNEL_PARAMS);
                let _ = writeln!(out, "\nNaN/inf results (every method; --allow-nonfinite):");
                param_lines(&mut out, &[ALLOW_NONFINITE_PARAM]);
            }
        }
    }
    println!("{}", out.trim_end());
    Ok(())
}
