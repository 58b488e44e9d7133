//! The robustness parts of the `attrib compare` report: the infidelity and max-sensitivity
//! settings (their columns sit in the methods table) and the attack section (success, each
//! method's attribution change, pictures of adversarial examples beside their attributions).

use super::{esc, mean, num, Figure};
use serde_json::{json, Value};
use std::fmt::Write as _;

/// How infidelity and max-sensitivity were computed (`--metrics`).
pub struct MetricSettings {
    /// Infidelity computed.
    pub infidelity: bool,
    /// Max-sensitivity computed.
    pub sensitivity: bool,
    /// Perturbations per row, both metrics.
    pub samples: usize,
    /// Standard deviation of infidelity's Gaussian noise.
    pub infidelity_stdev: f64,
    /// Radius of max-sensitivity's uniform L∞ noise.
    pub sensitivity_radius: f64,
    /// Seed of the noise.
    pub seed: u64,
}

impl MetricSettings {
    /// The settings as JSON (under `metrics` in report.json).
    pub fn to_json(&self) -> Value {
        let mut v = json!({});
        if self.infidelity {
            v["infidelity"] = json!({
                "definition": "(1/S) sum_s (sum(attribution * I_s) - (f(x) - f(x - eps_s)))^2 per row (Yeh et al. 2019, Captum's infidelity); lower is better",
                "n_perturb_samples": self.samples,
                "noise": {"gaussian": {"stdev": self.infidelity_stdev}},
                "perturbation": "x~ = x - eps; I = eps, or I = eps / x (1 where x = 0) for methods that multiply by inputs",
                "normalize": false,
                "seed": self.seed,
            });
        }
        if self.sensitivity {
            v["sensitivity_max"] = json!({
                "definition": "max_s ||A(x + eps_s) - A(x)|| / ||A(x)|| per row (Yeh et al. 2019, Captum's sensitivity_max); lower is better",
                "n_perturb_samples": self.samples,
                "noise": {"uniform": {"radius": self.sensitivity_radius}},
                "seed": self.seed,
            });
        }
        v
    }

    /// The sentence under the methods table.
    pub fn html_note(&self) -> String {
        let mut parts = Vec::new();
        if self.infidelity {
            parts.push(format!(
                "Infidelity (Yeh et al. 2019; lower is better): per row the mean over {} Gaussian perturbations ε (σ = {}) of \
                 (Σ attribution · I − (f(x) − f(x − ε)))², with I = ε, or ε / x for methods that multiply by inputs; \
                 f is the explained class's raw output.",
                self.samples, self.infidelity_stdev
            ));
        }
        if self.sensitivity {
            parts.push(format!(
                "Max-sensitivity (lower is better): per row the largest ‖A(x + ε) − A(x)‖ / ‖A(x)‖ over {} uniform perturbations in the \
                 L∞ ball of radius {} (the method rerun on each).",
                self.samples, self.sensitivity_radius
            ));
        }
        format!("<p>{} Noise seed {}; means over all rows.</p>", parts.join(" "), self.seed)
    }
}

/// One method's attribution change on the attacked rows.
pub struct MethodRobustness {
    /// The method's name in the report.
    pub name: String,
    /// Per attacked row: the share of the top-k pixels/features kept.
    pub top_k_intersection: Vec<f64>,
    /// Per attacked row: Spearman's correlation of |attribution| (`None` where undefined).
    pub rank_correlation: Vec<Option<f64>>,
    /// Per attacked row: Spearman's correlation of the signed attributions.
    pub signed_rank_correlation: Vec<Option<f64>>,
}

/// The attack section.
pub struct Robustness {
    /// `fgsm` or `pgd`.
    pub attack: String,
    /// The attack's parameters.
    pub params: Value,
    /// The loss the attack used.
    pub loss: String,
    /// The attack's label per row (the clean prediction).
    pub labels: Vec<i64>,
    /// Prediction before and after, per row.
    pub before: Vec<i64>,
    /// Prediction on the adversarial example.
    pub after: Vec<i64>,
    /// Per row, whether the prediction changed.
    pub success: Vec<bool>,
    /// The rows with `success`.
    pub attacked: Vec<usize>,
    /// The `k` of the top-k intersection, and the features per row.
    pub k: usize,
    /// Features per row (pixels for images).
    pub features: usize,
    /// Wall time of the attack.
    pub elapsed_ms: f64,
    /// Per method.
    pub methods: Vec<MethodRobustness>,
    /// Pictures: per attacked row (the first few), the input and its attributions on top, the
    /// adversarial example and its attributions below.
    pub figures: Vec<Figure>,
    /// Whether features are pixels (channel sums).
    pub pixels: bool,
}

impl Robustness {
    fn success_rate(&self) -> f64 {
        if self.success.is_empty() {
            0.0
        } else {
            self.attacked.len() as f64 / self.success.len() as f64
        }
    }

    /// The section of report.json.
    pub fn to_json(&self) -> Value {
        let features = if self.pixels { "pixels (attributions summed over channels)" } else { "every scalar of every input" };
        json!({
            "attack": self.attack,
            "params": self.params,
            "loss": self.loss,
            "labels": self.labels,
            "before": self.before,
            "after": self.after,
            "success": self.success,
            "success_rate": self.success_rate(),
            "attacked_rows": self.attacked,
            "elapsed_ms": self.elapsed_ms,
            "k": self.k,
            "features": self.features,
            "definitions": {
                "success": "the model's prediction on the adversarial example differs from its prediction on the input",
                "explained": "both attributions of a row explain the class explained before the attack",
                "top_k_intersection": format!("share of the {} {features} of largest |attribution| before that are among the {} largest after (Ghorbani et al. 2019), ties by index", self.k, self.k),
                "rank_correlation": format!("Spearman rank correlation of |attribution| over the {features}, before against after"),
                "signed_rank_correlation": "Spearman rank correlation of the signed attributions",
                "rows": "attacked rows only; means over them (rank correlations over the rows where defined)",
            },
            "methods": self.methods.iter().map(|m| json!({
                "name": m.name,
                "top_k_intersection": m.top_k_intersection,
                "rank_correlation": m.rank_correlation,
                "signed_rank_correlation": m.signed_rank_correlation,
                "mean_top_k_intersection": mean(&m.top_k_intersection),
                "mean_rank_correlation": mean(&m.rank_correlation.iter().flatten().copied().collect::<Vec<_>>()),
                "mean_signed_rank_correlation": mean(&m.signed_rank_correlation.iter().flatten().copied().collect::<Vec<_>>()),
            })).collect::<Vec<_>>(),
            "images": self.figures.iter().map(|f| json!({
                "file": f.file,
                "input": f.input,
                "row": f.row,
                "columns": f.columns,
                "layout": "top: the input, then each method's attribution of it; bottom: the adversarial example, then each method's attribution of it (same class)",
            })).collect::<Vec<_>>(),
        })
    }

    /// The section of report.html.
    pub fn to_html(&self, h: &mut String) {
        let features = if self.pixels { "pixels (attributions summed over channels)" } else { "features" };
        // Unset bounds are null (infinite): left out.
        let params: Vec<String> = super::param_lines(&self.params).into_iter().filter(|l| !l.ends_with(" = none")).collect();
        let _ = writeln!(h, "<h2>Robustness under attack</h2>");
        let _ = writeln!(
            h,
            "<p>Attack <b>{}</b> ({} loss; <code>{}</code>), away from the model's prediction, on all {} rows in {:.1} ms: \
             the prediction changed on <b>{} of {}</b> rows (success rate {:.3}).</p>",
            esc(&self.attack),
            esc(&self.loss),
            esc(&params.join(", ")),
            self.success.len(),
            self.elapsed_ms,
            self.attacked.len(),
            self.success.len(),
            self.success_rate()
        );
        let _ = writeln!(
            h,
            "<table><tr><th class=\"l\">row</th>{}</tr><tr><th class=\"l\">before</th>{}</tr><tr><th class=\"l\">after</th>{}</tr></table>",
            (0..self.success.len()).map(|i| format!("<th>{i}</th>")).collect::<String>(),
            self.before.iter().map(|c| format!("<td>{c}</td>")).collect::<String>(),
            self.after
                .iter()
                .zip(&self.success)
                .map(|(c, s)| if *s { format!("<td class=\"best\">{c}</td>") } else { format!("<td>{c}</td>") })
                .collect::<String>()
        );
        let _ = writeln!(
            h,
            "<table><tr><th class=\"l\">method</th><th>top-{} intersection ↑</th><th>rank correlation of |attribution| ↑</th><th>signed rank correlation</th></tr>",
            self.k
        );
        for m in &self.methods {
            let _ = writeln!(
                h,
                "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&m.name),
                num(mean(&m.top_k_intersection), 3),
                num(mean(&m.rank_correlation.iter().flatten().copied().collect::<Vec<_>>()), 3),
                num(mean(&m.signed_rank_correlation.iter().flatten().copied().collect::<Vec<_>>()), 3)
            );
        }
        let _ = writeln!(h, "</table>");
        let _ = writeln!(
            h,
            "<p>Attribution change (Ghorbani et al. 2019), means over the {} attacked rows: each method explains the same class \
             before and after the attack (the class explained above); top-{} intersection: the share of the {} of {} {features} with \
             the largest |attribution| before that are still among the {} largest after; rank correlation: Spearman's, of |attribution| \
             (signed beside it; — where never defined). Higher means a more robust attribution.</p>",
            self.attacked.len(),
            self.k,
            self.k,
            self.features,
            self.k
        );
        for f in &self.figures {
            let _ = writeln!(
                h,
                "<figure><img src=\"{}\" alt=\"{}\"><figcaption>Row {} (input {}): prediction {} → {}. Top: the input, then {}; bottom: the \
                 adversarial example, then the same methods' attributions of it. Blended heat maps, signed (green positive, red negative).</figcaption></figure>",
                super::data_uri(f),
                esc(&f.file),
                f.row,
                f.input,
                self.before[f.row],
                self.after[f.row],
                esc(&f.columns.iter().skip(1).cloned().collect::<Vec<_>>().join(", "))
            );
        }
        if self.figures.is_empty() && !self.attacked.is_empty() {
            let _ = writeln!(h, "<p>(Pictures are drawn for image inputs only.)</p>");
        }
    }
}
