//! `report.html`: the report as one self-contained page (inline CSS, figures embedded), section
//! by section: the heading, the methods table, the agreement matrix, the attack section
//! (`super::robustness`) and the inputs row by row.

use super::{data_uri, esc, mean, num, param_lines, Figure, MethodResult, Prediction, Report};
use crate::compare::CompareError;
use std::fmt::Write as _;

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}\
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}\
th{background:#f3f3f3}td.l,th.l{text-align:left}code{font-size:85%}figure{margin:1em 0}\
figcaption{font-size:90%;color:#555}img{image-rendering:pixelated;border:1px solid #ddd}\
.best{font-weight:bold}.row{border-top:1px solid #ddd;padding-top:.5em}ol{margin:.2em 0;padding-left:1.5em;font-size:85%;text-align:left}";

/// `report.html` as a string, figures embedded.
pub fn to_html(r: &Report) -> Result<String, CompareError> {
    let mut h = String::new();
    heading(&mut h, r);
    methods_table(&mut h, r);
    agreement_table(&mut h, r);
    if let Some(rob) = &r.robustness {
        rob.to_html(&mut h);
    }
    inputs(&mut h, r);
    let _ = writeln!(h, "<p>Written by <code>attrib compare</code>; the same numbers are in <code>report.json</code>.</p></body></html>");
    Ok(h)
}

/// What the metrics count as features, in words.
fn features(r: &Report) -> &'static str {
    if r.pixels { "pixels (attributions summed over channels; a pixel is replaced in every channel)" } else { "scalars of the input" }
}

/// The page's head, title and the line on the model and inputs.
fn heading(h: &mut String, r: &Report) {
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
}

/// The methods table (time, delta, deletion and insertion areas, the `--metrics` columns,
/// parameters) and the note that explains it.
fn methods_table(h: &mut String, r: &Report) {
    let features = features(r);
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
}

/// The matrix of mean rank agreement between every two methods.
fn agreement_table(h: &mut String, r: &Report) {
    let features = features(r);
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
}

/// The inputs: each row's prediction and figures.
fn inputs(h: &mut String, r: &Report) {
    let _ = writeln!(h, "<h2>Inputs</h2>");
    if r.figure_rows < r.rows {
        let _ = writeln!(h, "<p>Figures for the first {} of {} rows (<code>--report-rows</code>).</p>", r.figure_rows, r.rows);
    }
    for p in &r.predictions {
        row(h, r, p);
    }
}

/// One row: its prediction, its heat-map grids or text views, its bar charts.
fn row(h: &mut String, r: &Report, p: &Prediction) {
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

