//! Image and text together: the attribution of a model with an image (float) input and a
//! token-id input, split per modality ([`per_modality`]), and `attrib explain --per-modality`.

use super::{check_html_path, is_token_ids, rows_json, text_rows, token_attributions};
use attrib::viz::TextRow;
use attrib::{AttribError, Result};
use std::path::Path;
use tch::{Kind, Tensor};

/// Attributions of a model with an image (float) input and a token-id input, split per
/// modality (see [`per_modality`]).
pub struct PerModality {
    /// Integrated gradients of the float input (the ids held at their values), shaped like it.
    pub image: Tensor,
    /// Layer integrated gradients at the embedding (the float input held at its value), `[N, L, D]`.
    pub embedding: Tensor,
    /// Token attributions `[N, L]`: `embedding` summed over the embedding dimension.
    pub tokens: Tensor,
    /// Per row, the convergence deltas of the two attributions.
    pub deltas: (Tensor, Tensor),
    /// Per row, the float input's share of the total |attribution|: `Σ|image| / (Σ|image| +
    /// Σ|tokens|)`; the token input's share is one minus it.
    pub image_share: Vec<f64>,
    /// Per row, the float input's share of the net contributions: `|Σ image| / (|Σ image| +
    /// |Σ tokens|)` (each sum is that modality's completeness gap), which does not grow with
    /// the number of pixels whose attributions cancel.
    pub image_net_share: Vec<f64>,
}

/// Split the attribution of a two-modality model `f(image, ids)` per modality: integrated
/// gradients over the image from zeros with the ids fixed at their values, and layer integrated gradients at the embedding `layer`
/// from the pad ids (0) with the image fixed at its value, `n_steps` each. Each attribution is
/// complete for its own path (it sums to `f(image, ids) − f(baseline, ids)` and to
/// `f(image, ids) − f(image, pads)` within its delta); the split reports each modality's share
/// of the total absolute attribution per row. The two paths are conditional on the other
/// modality (not one joint path), which is what the shares compare.
pub fn per_modality(
    model: &dyn attrib::Model,
    image: &Tensor,
    ids: &Tensor,
    target: &attrib::Target,
    n_steps: usize,
    layer: &str,
) -> Result<PerModality> {
    use attrib::gradient::IntegratedGradients;
    use attrib::layer::LayerIntegratedGradients;
    use attrib::{Attribution, ForwardArg, Inputs};
    if !is_token_ids(ids) || !image.is_floating_point() {
        return Err(AttribError::InputShape(format!(
            "a per-modality split needs a float input and a token-id input, got {:?} and {:?}",
            image.kind(),
            ids.kind()
        )));
    }
    let ig = IntegratedGradients::params().n_steps(n_steps).check()?;
    let with_ids = Inputs::new(image.shallow_clone()).with_extra(vec![ForwardArg::Tensor(ids.shallow_clone())]);
    let a_img = ig.attribute(model, &with_ids, target)?;
    // The image's baseline is the image itself: the model's baseline output is then
    // f(image, pads), the end of the path, so the delta is the path's own error.
    let lig = LayerIntegratedGradients::params()
        .layer(layer)
        .n_steps(n_steps)
        .baselines(attrib::Baselines::per_input(vec![attrib::Baseline::Tensor(image.shallow_clone()), attrib::Baseline::Zeros]))
        .check()?;
    let a_txt = lig.attribute(model, &Inputs::multi(vec![image.shallow_clone(), ids.shallow_clone()]), target)?;
    let image_attr = a_img.single()?.shallow_clone();
    let embedding = a_txt.single()?.shallow_clone();
    let tokens = token_attributions(&embedding)?;
    let conv = |e: tch::TchError| AttribError::Conversion(e.to_string());
    let n = image.size()[0];
    let row_sums = |t: &Tensor, abs: bool| -> Result<Vec<f64>> {
        let t = if abs { t.f_abs().map_err(conv)? } else { t.shallow_clone() };
        let s = t.f_reshape([n, -1]).and_then(|a| a.f_sum_dim_intlist(1, false, Kind::Double)).map_err(conv)?;
        attrib::convert::tensor_to_vec_f64(&s)
    };
    let share = |a: Vec<f64>, b: Vec<f64>| -> Vec<f64> {
        a.iter().zip(&b).map(|(a, b)| (a.abs(), b.abs())).map(|(a, b)| if a + b > 0.0 { a / (a + b) } else { 0.5 }).collect()
    };
    let image_share = share(row_sums(&image_attr, true)?, row_sums(&tokens, true)?);
    let image_net_share = share(row_sums(&image_attr, false)?, row_sums(&tokens, false)?);
    let missing = |what: &str| AttribError::Conversion(format!("{what} returned no convergence delta"));
    let deltas = (
        a_img.convergence_delta.ok_or_else(|| missing("integrated gradients"))?,
        a_txt.convergence_delta.ok_or_else(|| missing("layer integrated gradients"))?,
    );
    Ok(PerModality { image: image_attr, embedding, tokens, deltas, image_share, image_net_share })
}

/// `attrib explain --per-modality`: [`per_modality`] on the two inputs the flags give (the
/// float input first, the token ids second: `--input IMAGE --text ...` or two `--input`s),
/// outputs checked before and written after the work.
pub(crate) fn explain_per_modality(args: &crate::explain::ExplainArgs, reads: &crate::outputs::Reads) -> Result<()> {
    let f = &args.method_flags;
    // Every method or batch flag other than --steps and --layer would change the attribution the
    // user asked for and be dropped: refuse them all, naming them.
    let given = f.values();
    let flag = |key: &str| crate::methods::flag_of(key).map_or_else(|| format!("`{key}`"), |f| format!("`{f}`"));
    let mut others: Vec<String> = given.values.iter().map(|(k, _)| *k).filter(|k| !matches!(*k, "n_steps" | "layer")).map(flag).collect();
    others.extend(given.noise_tunnel.iter().map(|_| "`--noise-tunnel`".to_string()));
    others.extend(given.params.iter().map(|p| format!("`--param {p}`")));
    // The batch flags' spec keys (max_batch, memory_format, ...), named as keys.
    others.extend(args.batch.spec_keys().keys().map(|k| format!("batch setting `{k}`")));
    if args.method != "integrated-gradients" && args.method != "saliency" || !others.is_empty() {
        let also = if others.is_empty() { format!("--method {}", args.method) } else { others.join(", ") };
        return Err(AttribError::param(
            "per-modality",
            format!(
                "--per-modality runs integrated gradients over the image and layer integrated gradients at --layer over the tokens; \
                 it takes --steps, --layer and --target only, and would drop what else was given: {also}"
            ),
        ));
    }
    let layer = f.layer.clone().unwrap_or_else(|| "embedding".into());
    let steps = f.steps.unwrap_or(50);
    let choice = args.device.parse::<attrib::DeviceSpec>()?.choose()?;
    let target = crate::explain::parse_target(&args.target)?;
    let outs = crate::explain::output_paths(&args.out, 2)?;
    let mut outputs: Vec<(&str, &Path)> = outs.iter().map(|p| ("--out", p.as_path())).collect();
    if let Some(h) = &args.heatmap {
        check_html_path(h)?;
        outputs.push(("--heatmap", h));
    }
    crate::outputs::check(&outputs, reads)?;
    crate::outputs::check_model(&args.model)?;
    let loaded = args.inputs.load(choice.device)?;
    let (float_at, ids_at) = (0, 1);
    let kinds_ok = loaded.tensors.len() == 2 && loaded.tensors[0].is_floating_point() && is_token_ids(&loaded.tensors[1]);
    if !kinds_ok {
        return Err(AttribError::InputShape(format!(
            "--per-modality needs two inputs, the float one (the image) first and the token ids second, as the model takes them; got {}",
            attrib::inputs::format_shapes(&loaded.tensors)
        )));
    }
    let model = attrib::TorchScriptModel::load(&args.model, choice.device)?;
    let (image, ids) = (&loaded.tensors[float_at], &loaded.tensors[ids_at]);
    let split = per_modality(&model, image, ids, &target, steps, &layer)?;
    let rows = text_rows(ids, &split.tokens, loaded.vocab.as_ref(), &[])?;
    let mut staged = vec![
        attrib::convert::stage_npy_tensor(&outs[0], &split.image)?,
        attrib::convert::stage_npy_tensor(&outs[1], &split.embedding)?,
    ];
    if let Some(path) = &args.heatmap {
        let mut captions = Vec::new();
        for (i, s) in split.image_share.iter().enumerate() {
            captions.push(format!("row {i}: image {:.0} % / text {:.0} % of |attribution|", 100.0 * s, 100.0 * (1.0 - s)));
        }
        let rows: Vec<TextRow> = rows.iter().zip(captions).map(|(r, caption)| TextRow { caption, ..r.clone() }).collect();
        let page = attrib::viz::render_text_page("per-modality attribution: tokens", &rows)
            .map_err(|e| AttribError::param("heatmap", e.to_string()))?;
        staged.push(crate::outputs::stage_text(path, &page)?);
    }
    crate::outputs::commit(staged)?;
    if args.json {
        let v = |t: &Tensor| attrib::convert::tensor_to_vec_f64(t);
        let summary = serde_json::json!({
            "method": "per-modality",
            "image_input": float_at,
            "token_input": ids_at,
            "layer": layer,
            "n_steps": steps,
            "image_share": split.image_share,
            "token_share": split.image_share.iter().map(|s| 1.0 - s).collect::<Vec<_>>(),
            "image_net_share": split.image_net_share,
            "convergence_delta": {"image": v(&split.deltas.0)?, "tokens": v(&split.deltas.1)?},
            "tokens": rows_json(&rows),
            "outputs": outs,
            "device": attrib::tensor::device_name(choice.device),
        });
        println!("{summary}");
    } else {
        for p in &outs {
            eprintln!("wrote {}", p.display());
        }
    }
    Ok(())
}
