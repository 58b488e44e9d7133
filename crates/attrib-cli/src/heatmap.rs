//! `--heatmap OUT.png`: one panel per row of an image input, rendered by `attrib-viz`.

use attrib::convert::tensor_to_array_f32;
use attrib::viz::{compose_row, render, save_png, Sign, VizMethod, VizParams};
use attrib::{AttribError, Result};
use ndarray::{Array3, Ix3};
use std::path::Path;
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

/// Render attributions `attr` of an image batch over `display` (same batch) into one PNG with a
/// panel per row, left to right.
pub fn write(path: &Path, attr: &Tensor, display: &Tensor, (method, sign): (VizMethod, Sign)) -> Result<()> {
    let n = attr.size()[0];
    let first = row_chw(attr, 0)?;
    let side = first.shape()[1].min(first.shape()[2]).max(1);
    let scale = MIN_PANEL_SIDE.div_ceil(side).max(1) as u32;
    let params = VizParams::new(method, sign).scale(scale).check().map_err(viz_err)?;
    let panels = (0..n)
        .map(|i| {
            let a = row_chw(attr, i)?;
            let img = row_chw(display, i)?;
            render(a.view(), Some(img.view()), &params).map_err(viz_err)
        })
        .collect::<Result<Vec<_>>>()?;
    let row = compose_row(&panels, 4, [255, 255, 255, 255]).map_err(viz_err)?;
    save_png(&row, path).map_err(|e| AttribError::Io { action: "cannot write", path: path.to_path_buf(), reason: e.to_string() })
}
