//! The pictures of `attrib compare --attack`: for the first attacked rows of each image input,
//! the input and each method's attribution of it above the adversarial example and each
//! method's attribution of that.

use super::figures::{heat_map_params, stretch, value_range};
use super::{CompareError, Result};
use crate::report::Figure;
use attrib::methods::InputKind;
use attrib::robust_attribution::MethodChange;
use attrib::{Result as AResult, TorchResultExt};
use tch::Tensor;

fn usage(s: impl Into<String>) -> CompareError {
    CompareError::Usage(s.into())
}

/// What the pictures of adversarial examples are drawn from.
pub(super) struct Pictures<'a> {
    /// The loaded inputs (display images, model inputs, files).
    pub loaded: &'a crate::input::Loaded,
    /// Kind of each input.
    pub kinds: &'a [InputKind],
    /// The `--normalize` of image files (display = input · std + mean).
    pub normalize: Option<attrib::Normalize>,
}

impl Pictures<'_> {
    /// What a person sees of the adversarial `adv` (input `j`): the display image moved by the
    /// attack's change, undoing `--normalize` for image files.
    fn adversarial_display(&self, j: usize, adv: &Tensor) -> AResult<Tensor> {
        let x = &self.loaded.tensors[j];
        let display = &self.loaded.display[j];
        let delta = adv.f_sub(x).ctx("taking the attack's change")?;
        let delta = match (&self.normalize, self.loaded.files[j].is_empty()) {
            (Some(n), false) => {
                let c = x.size()[1];
                let std: Vec<f32> = if n.std.len() == 1 { vec![n.std[0]; c as usize] } else { n.std.clone() };
                let mut shape = vec![1i64; x.dim()];
                shape[1] = c;
                let s = Tensor::f_from_slice(&std)
                    .and_then(|t| t.f_reshape(&shape))
                    .and_then(|t| t.f_to_device(x.device()))
                    .ctx("undoing the normalisation")?;
                delta.f_mul(&s).ctx("undoing the normalisation")?
            }
            _ => delta,
        };
        display.f_add(&delta).ctx("moving the display image")
    }

    /// One picture per row of `rows` and image input: on top the input and each method's
    /// attribution of it, below the adversarial example and each method's attribution of it.
    pub(super) fn draw(&self, rows: &[usize], adversarial: &[Tensor], methods: &[MethodChange]) -> Result<Vec<Figure>> {
        use attrib::viz::{png_bytes, render_panels, GridParams, Panel, ValidVizParams};
        let viz_err = |e: attrib::viz::VizError| usage(format!("cannot render the attack figures: {e}"));
        let mut out = Vec::new();
        if methods.is_empty() {
            return Ok(out);
        }
        for (j, kind) in self.kinds.iter().enumerate() {
            if !matches!(kind, InputKind::Image | InputKind::GreyImage) || crate::text::is_token_ids(&self.loaded.tensors[j]) {
                continue;
            }
            let adv_display = self.adversarial_display(j, &adversarial[j])?;
            let from_files = !self.loaded.files[j].is_empty();
            for &i in rows {
                let i64_ = i as i64;
                let mut clean = crate::heatmap::row_chw(&self.loaded.display[j], i64_)?;
                let mut adv = crate::heatmap::row_chw(&adv_display, i64_)?;
                // Arrays are stretched to [0, 1] by the clean row's range (as the main figures),
                // the adversarial example by the same map; both clamped.
                let (lo, hi) = if from_files { (0.0, 1.0) } else { value_range(&clean) };
                for img in [&mut clean, &mut adv] {
                    stretch(img, lo, hi);
                }
                let (with_image, params) = heat_map_params(&clean).map_err(viz_err)?;
                let before = methods.iter().map(|m| crate::heatmap::row_chw(&m.before[j], i64_)).collect::<AResult<Vec<_>>>()?;
                let after = methods.iter().map(|m| crate::heatmap::row_chw(&m.after[j], i64_)).collect::<AResult<Vec<_>>>()?;
                let grid = GridParams { include_original: with_image, ..Default::default() };
                fn panels<'a>(methods: &[MethodChange], attrs: &'a [ndarray::Array3<f32>], params: &ValidVizParams) -> Vec<Panel<'a>> {
                    methods
                        .iter()
                        .zip(attrs)
                        .map(|(m, a)| Panel { title: m.name.clone(), attr: a.view(), params: params.clone() })
                        .collect()
                }
                let top = render_panels(with_image.then(|| clean.view()), &panels(methods, &before, &params), &grid).map_err(viz_err)?;
                let bottom = render_panels(with_image.then(|| adv.view()), &panels(methods, &after, &params), &grid).map_err(viz_err)?;
                let image = stack(&top.image, &bottom.image, grid.gap);
                let png = png_bytes(&image).map_err(viz_err)?;
                out.push(Figure {
                    file: format!("attack_input{j}_row{i}.png"),
                    input: j,
                    row: i,
                    method: None,
                    columns: top.columns,
                    bars: Vec::new(),
                    png,
                    html: None,
                });
            }
        }
        Ok(out)
    }
}

/// `top` above `bottom`, `gap` white pixels between them.
fn stack(top: &attrib::viz::RgbaImage, bottom: &attrib::viz::RgbaImage, gap: u32) -> attrib::viz::RgbaImage {
    let width = top.width().max(bottom.width());
    let mut out = attrib::viz::RgbaImage::new(width, top.height() + gap + bottom.height());
    for p in out.pixels_mut() {
        p.0 = [255, 255, 255, 255];
    }
    for (x, y, px) in top.enumerate_pixels() {
        out.put_pixel(x, y, *px);
    }
    for (x, y, px) in bottom.enumerate_pixels() {
        out.put_pixel(x, y + top.height() + gap, *px);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stacked_pictures_keep_both_rows() {
        let mut top = attrib::viz::RgbaImage::new(3, 2);
        let mut bottom = attrib::viz::RgbaImage::new(2, 1);
        for p in top.pixels_mut() {
            p.0 = [1, 2, 3, 255];
        }
        for p in bottom.pixels_mut() {
            p.0 = [9, 9, 9, 255];
        }
        let out = stack(&top, &bottom, 4);
        assert_eq!((out.width(), out.height()), (3, 2 + 4 + 1));
        assert_eq!(out.get_pixel(2, 1).0, [1, 2, 3, 255]);
        assert_eq!(out.get_pixel(0, 3).0, [255, 255, 255, 255], "the gap is white");
        assert_eq!(out.get_pixel(1, 6).0, [9, 9, 9, 255]);
        assert_eq!(out.get_pixel(2, 6).0, [255, 255, 255, 255], "right of a narrower bottom row");
    }
}
