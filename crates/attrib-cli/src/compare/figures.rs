//! `attrib compare`'s figures: for the first `--report-rows` rows, an image grid of every
//! method's heat map (image inputs), a bar chart per method (tabular inputs) or a text view
//! (token ids), encoded in memory and written with the report.

use super::{CompareArgs, CompareError, Result};
use crate::report::{Figure, MethodResult};
use attrib::convert::tensor_to_vec_f64;
use attrib::methods::InputKind;
use attrib::viz::{png_bytes, render_bar_chart, render_panels, BarChartParams, GridParams, Panel, Sign, ValidVizParams, VizError, VizMethod, VizParams};
use attrib::Result as AResult;
use ndarray::Array3;

/// A rendering error as `attrib compare` reports it.
fn viz_err(e: VizError) -> CompareError {
    CompareError::Usage(format!("cannot render the report figures: {e}"))
}

/// Render the figures of the first `--report-rows` rows, encoded as PNG in memory (written with
/// the report, last).
pub(super) fn figures(
    args: &CompareArgs,
    loaded: &crate::input::Loaded,
    kinds: &[InputKind],
    results: &[MethodResult],
    feature_names: Option<&[String]>,
    n: i64,
) -> Result<Vec<Figure>> {
    let rows = (n as usize).min(args.report_rows) as i64;
    let mut out = Vec::new();
    for (j, kind) in kinds.iter().enumerate() {
        if crate::text::is_token_ids(&loaded.tensors[j]) {
            out.extend(text_figures(loaded, j, results, rows)?);
            continue;
        }
        match kind {
            InputKind::Image | InputKind::GreyImage => out.extend(image_figures(loaded, j, results, rows)?),
            InputKind::Tabular => {
                let names = if j == 0 { feature_names } else { None };
                out.extend(tabular_figures(args, j, results, names, rows)?);
            }
            InputKind::Other => {}
        }
    }
    Ok(out)
}

/// Token ids (input `j`): one text view per row, a line per method.
fn text_figures(loaded: &crate::input::Loaded, j: usize, results: &[MethodResult], rows: i64) -> Result<Vec<Figure>> {
    let mut out = Vec::new();
    for i in 0..rows {
        let ids = loaded.tensors[j].narrow(0, i, 1);
        let mut text_rows = Vec::new();
        for r in results {
            let row = crate::text::text_rows(&ids, &r.values[j].narrow(0, i, 1), loaded.vocab.as_ref(), std::slice::from_ref(&r.name))?;
            text_rows.extend(row);
        }
        let html = attrib::viz::render_text_html(&text_rows).map_err(viz_err)?;
        let file = format!("input{j}_row{i}_text.html");
        let columns = results.iter().map(|r| r.name.clone()).collect();
        out.push(Figure { file, input: j, row: i as usize, method: None, columns, bars: Vec::new(), png: Vec::new(), html: Some(html) });
    }
    Ok(out)
}

/// The range of `img`'s values (infinite bounds when it is empty).
pub(super) fn value_range(img: &Array3<f32>) -> (f32, f32) {
    img.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)))
}

/// Map `[lo, hi]` onto `[0, 1]` for display (values outside clamped); all grey (0.5) when the
/// range is empty.
pub(super) fn stretch(img: &mut Array3<f32>, lo: f32, hi: f32) {
    if hi > lo {
        img.mapv_inplace(|v| ((v - lo) / (hi - lo)).clamp(0.0, 1.0));
    } else {
        img.fill(0.5);
    }
}

/// How a `[C, H, W]` display image and its heat maps are drawn: whether the image itself is
/// shown (one or three channels: blended heat maps over it, else plain heat maps), and the
/// parameters, scaled so that the shorter side is about 128 pixels.
pub(super) fn heat_map_params(img: &Array3<f32>) -> std::result::Result<(bool, ValidVizParams), VizError> {
    let side = img.shape()[1].min(img.shape()[2]).max(1);
    let scale = 128usize.div_ceil(side).clamp(1, attrib::viz::MAX_SCALE as usize) as u32;
    let with_image = matches!(img.shape()[0], 1 | 3);
    let method = if with_image { VizMethod::BlendedHeatMap } else { VizMethod::HeatMap };
    Ok((with_image, VizParams::new(method, Sign::All).scale(scale).check()?))
}

/// Image input `j`: one grid per row, the input and every method's heat map.
fn image_figures(loaded: &crate::input::Loaded, j: usize, results: &[MethodResult], rows: i64) -> Result<Vec<Figure>> {
    let display = &loaded.display[j];
    let from_files = !loaded.files[j].is_empty();
    let mut out = Vec::new();
    for i in 0..rows {
        let mut img = crate::heatmap::row_chw(display, i)?;
        if !from_files {
            // Arrays: stretch each row to [0, 1] for display.
            let (lo, hi) = value_range(&img);
            stretch(&mut img, lo, hi);
        }
        let (with_image, params) = heat_map_params(&img).map_err(viz_err)?;
        let attrs = results.iter().map(|r| crate::heatmap::row_chw(&r.values[j], i)).collect::<AResult<Vec<_>>>()?;
        let panels: Vec<Panel<'_>> =
            results.iter().zip(&attrs).map(|(r, a)| Panel { title: r.name.clone(), attr: a.view(), params: params.clone() }).collect();
        let grid = render_panels(with_image.then(|| img.view()), &panels, &GridParams { include_original: with_image, ..Default::default() })
            .map_err(viz_err)?;
        let file = format!("input{j}_row{i}.png");
        let png = png_bytes(&grid.image).map_err(viz_err)?;
        out.push(Figure { file, input: j, row: i as usize, method: None, columns: grid.columns, bars: Vec::new(), png, html: None });
    }
    Ok(out)
}

/// Tabular input `j`: one bar chart per row and method (`names`: the features' names).
fn tabular_figures(args: &CompareArgs, j: usize, results: &[MethodResult], names: Option<&[String]>, rows: i64) -> Result<Vec<Figure>> {
    let params = BarChartParams { top_k: args.top_k, ..Default::default() };
    let mut out = Vec::new();
    for i in 0..rows {
        for r in results {
            let v = tensor_to_vec_f64(&r.values[j].get(i))?;
            let v = ndarray::Array1::from_iter(v.iter().map(|&x| x as f32));
            let chart = render_bar_chart(v.view(), names, &params).map_err(viz_err)?;
            let file = format!("input{j}_row{i}_{}.png", file_safe(&r.name));
            let png = png_bytes(&chart.image).map_err(viz_err)?;
            let bars = chart
                .bars
                .iter()
                .map(|b| (b.label.clone().unwrap_or_else(|| format!("feature {}", b.feature)), f64::from(b.value)))
                .collect();
            out.push(Figure { file, input: j, row: i as usize, method: Some(r.name.clone()), columns: Vec::new(), bars, png, html: None });
        }
    }
    Ok(out)
}

/// A label as part of a file name: letters, digits, `-`, `_` and `.` kept, anything else `_`.
fn file_safe(label: &str) -> String {
    label.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect()
}
