//! Several renderings of one input side by side.

use image::{Rgba, RgbaImage};
use ndarray::ArrayView3;

use crate::error::VizError;
use crate::params::ValidVizParams;
use crate::render::{check_size, render, render_image};

/// Layout of a grid row; no titles are drawn (the column order is returned instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GridParams {
    /// Gap between panels, in output pixels (default 4).
    pub gap: u32,
    /// Colour of the gaps and of the area below shorter panels (default opaque white).
    pub background: [u8; 4],
    /// Whether the original image, when given, is the first panel (default `true`).
    pub include_original: bool,
}

impl Default for GridParams {
    fn default() -> Self {
        GridParams {
            gap: 4,
            background: [255, 255, 255, 255],
            include_original: true,
        }
    }
}

/// A rendered grid row.
#[derive(Debug, Clone)]
pub struct Grid {
    /// The composed image.
    pub image: RgbaImage,
    /// Column titles, left to right (`"original_image"` first when the image is included).
    pub columns: Vec<String>,
    /// Left edge of each column in `image`, in pixels.
    pub x_offsets: Vec<u32>,
}

/// One panel of [`render_panels`]: an attribution with its own parameters.
#[derive(Debug, Clone)]
pub struct Panel<'a> {
    /// Column title (returned in [`Grid::columns`], not drawn).
    pub title: String,
    /// CHW attribution for the input.
    pub attr: ArrayView3<'a, f32>,
    /// How to draw it.
    pub params: ValidVizParams,
}

/// Places `panels` left to right, top-aligned, with `gap` pixels of `background` between them.
///
/// The result is `Σ widths + gap · (panels − 1)` wide and as tall as the tallest panel; the
/// area under shorter panels is `background`. Errors on an empty list or an output above
/// [`crate::MAX_SIDE`] pixels per side.
pub fn compose_row(
    panels: &[RgbaImage],
    gap: u32,
    background: [u8; 4],
) -> Result<RgbaImage, VizError> {
    compose_row_offsets(panels, gap, background).map(|(img, _)| img)
}

fn compose_row_offsets(
    panels: &[RgbaImage],
    gap: u32,
    background: [u8; 4],
) -> Result<(RgbaImage, Vec<u32>), VizError> {
    if panels.is_empty() {
        return Err(VizError::Empty {
            what: "list of panels",
            shape: vec![0],
        });
    }
    let width: u64 = panels.iter().map(|p| u64::from(p.width())).sum::<u64>()
        + u64::from(gap) * (panels.len() as u64 - 1);
    let height = panels
        .iter()
        .map(|p| u64::from(p.height()))
        .max()
        .unwrap_or(0);
    check_size(width, height)?;
    let mut out = RgbaImage::from_pixel(width as u32, height as u32, Rgba(background));
    let mut offsets = Vec::with_capacity(panels.len());
    let mut x0 = 0u32;
    for p in panels {
        offsets.push(x0);
        for (x, y, px) in p.enumerate_pixels() {
            out.put_pixel(x0 + x, y, *px);
        }
        x0 += p.width() + gap;
    }
    Ok((out, offsets))
}

/// Renders each panel with its own parameters (see [`crate::render`]) and places them in a row,
/// preceded by the original image when `image` is given and `grid.include_original` is set.
///
/// The original-image panel uses the upscale factor of the first panel (1 when there are no
/// panels). Errors as [`crate::render`], or [`VizError::Empty`] when there is nothing to draw.
pub fn render_panels(
    image: Option<ArrayView3<'_, f32>>,
    panels: &[Panel<'_>],
    grid: &GridParams,
) -> Result<Grid, VizError> {
    let mut images = Vec::with_capacity(panels.len() + 1);
    let mut columns = Vec::with_capacity(panels.len() + 1);
    if let (Some(img), true) = (image, grid.include_original) {
        let scale = panels.first().map_or(1, |p| p.params.scale());
        images.push(render_image(img, scale)?);
        columns.push("original_image".to_string());
    }
    for p in panels {
        images.push(render(p.attr, image, &p.params)?);
        columns.push(p.title.clone());
    }
    let (image, x_offsets) = compose_row_offsets(&images, grid.gap, grid.background)?;
    Ok(Grid {
        image,
        columns,
        x_offsets,
    })
}

/// Renders several attributions of one input (one per attribution method, say) with the same
/// parameters, side by side after the original image: the usual "image + one heat map per
/// method" figure. `attributions` holds `(title, CHW attribution)` pairs; see [`render_panels`].
pub fn render_grid(
    image: Option<ArrayView3<'_, f32>>,
    attributions: &[(&str, ArrayView3<'_, f32>)],
    params: &ValidVizParams,
    grid: &GridParams,
) -> Result<Grid, VizError> {
    let panels: Vec<Panel<'_>> = attributions
        .iter()
        .map(|(title, attr)| Panel {
            title: (*title).to_string(),
            attr: attr.view(),
            params: params.clone(),
        })
        .collect();
    render_panels(image, &panels, grid)
}
