//! `--heatmap OUT.png`: one panel per row of an image input, rendered by `attrib-viz`.

use attrib::convert::tensor_to_array_f32;
use attrib::viz::{compose_row, render, RgbaImage, Sign, VizMethod, VizParams};
use attrib::{AttribError, Result};
use ndarray::{Array3, Ix3};
use tch::Tensor;

/// Smallest panel side, in pixels, that small inputs (16×16 digits) are upscaled to.
const MIN_PANEL_SIDE: usize = 128;

fn viz_err(e: attrib::viz::VizError) -> AttribError {
    AttribError::param("heatmap", e.to_string())
}

/// Row `i` of a batch as CHW (`[N, H, W]` inputs become one channel).
pub(crate) fn row_chw(t: &Tensor, i: i64) -> Result<Array3<f32>> {
    let a = tensor_to_array_f32(&t.get(i))?;
    let a = match a.ndim() {
        2 => a.insert_axis(ndarray::Axis(0)),
        3 => a,
        _ => {
            return Err(AttribError::param(
                "heatmap",
                format!("heat maps need image inputs [N, C, H, W] or [N, H, W], got {:?}", t.size()),
            ))
        }
    };
    a.into_dimensionality::<Ix3>().map_err(|e| AttribError::Conversion(e.to_string()))
}

/// The visualisation named by `--viz` and `--sign`, checked before any work is done.
pub fn parse(method: &str, sign: &str) -> Result<(VizMethod, Sign)> {
    let method: VizMethod = method.parse().map_err(viz_err)?;
    let sign: Sign = sign.parse().map_err(viz_err)?;
    VizParams::new(method, sign).check().map_err(viz_err)?;
    Ok((method, sign))
}

/// Check, before any work, that a heat map of the first input can be drawn: an image batch
/// (`[N, C, H, W]` or `[N, H, W]`) whose first row renders with these settings (a dry run on
/// uniform attributions).
pub fn check(display: &Tensor, viz: (VizMethod, Sign)) -> Result<()> {
    let shape = display.size();
    if !matches!(shape.len(), 3 | 4) {
        return Err(AttribError::param(
            "heatmap",
            format!("heat maps need image inputs [N, C, H, W] or [N, H, W], got {shape:?}; drop --heatmap for this input"),
        ));
    }
    if shape[0] == 0 {
        return Ok(());
    }
    let img = row_chw(display, 0)?;
    let attr = Array3::<f32>::ones(img.raw_dim());
    let params = params(&img, viz)?;
    render(attr.view(), Some(img.view()), &params).map_err(viz_err)?;
    Ok(())
}

fn params(first: &Array3<f32>, (method, sign): (VizMethod, Sign)) -> Result<attrib::viz::ValidVizParams> {
    let side = first.shape()[1].min(first.shape()[2]).max(1);
    let scale = MIN_PANEL_SIDE.div_ceil(side).clamp(1, attrib::viz::MAX_SCALE as usize) as u32;
    VizParams::new(method, sign).scale(scale).check().map_err(viz_err)
}

/// Render attributions `attr` of an image batch over `display` (same batch) into one image with
/// a panel per row, left to right (written by the caller, with the other outputs).
pub fn render_rows(attr: &Tensor, display: &Tensor, viz: (VizMethod, Sign)) -> Result<RgbaImage> {
    let n = attr.size()[0];
    let first = row_chw(attr, 0)?;
    let params = params(&first, viz)?;
    let panels = (0..n)
        .map(|i| {
            let a = row_chw(attr, i)?;
            let img = row_chw(display, i)?;
            render(a.view(), Some(img.view()), &params).map_err(viz_err)
        })
        .collect::<Result<Vec<_>>>()?;
    compose_row(&panels, 4, [255, 255, 255, 255]).map_err(viz_err)
}
