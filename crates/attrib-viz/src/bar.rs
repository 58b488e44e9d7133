//! Horizontal bar chart of the top-k features of a tabular attribution.

use image::{Rgba, RgbaImage};
use ndarray::ArrayView1;

use crate::error::VizError;
use crate::normalize::check_finite_nonempty;
use crate::render::check_size;

/// Layout and colours of [`render_bar_chart`]. No text is drawn; labels are returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BarChartParams {
    /// How many features to show, largest `|value|` first (default 10; fewer when there are
    /// fewer features).
    pub top_k: usize,
    /// Length in pixels of the plot area for the bars (default 200); see [`render_bar_chart`].
    pub width: u32,
    /// Height of each bar in pixels (default 12).
    pub bar_height: u32,
    /// Vertical gap between bars in pixels (default 4).
    pub bar_gap: u32,
    /// Empty border around the chart in pixels (default 4).
    pub margin: u32,
    /// Colour of positive bars (default green `(0, 128, 0)`, the `+1` end of the diverging map).
    pub positive_color: [u8; 3],
    /// Colour of negative bars (default red `(255, 0, 0)`, the `−1` end of the diverging map).
    pub negative_color: [u8; 3],
    /// Colour of the one-pixel zero axis (default grey `(128, 128, 128)`).
    pub axis_color: [u8; 3],
    /// Background colour (default white).
    pub background: [u8; 3],
}

impl Default for BarChartParams {
    fn default() -> Self {
        BarChartParams {
            top_k: 10,
            width: 200,
            bar_height: 12,
            bar_gap: 4,
            margin: 4,
            positive_color: [0, 128, 0],
            negative_color: [255, 0, 0],
            axis_color: [128, 128, 128],
            background: [255, 255, 255],
        }
    }
}

impl BarChartParams {
    /// Validates: `top_k ≥ 1`, `width ≥ 2`, `bar_height ≥ 1`.
    pub fn check(&self) -> Result<(), VizError> {
        if self.top_k == 0 {
            return Err(VizError::InvalidParameter {
                name: "top_k",
                reason: "must be at least 1 (the number of bars to draw)".to_string(),
            });
        }
        if self.width < 2 {
            return Err(VizError::InvalidParameter {
                name: "width",
                reason: format!(
                    "got {}; the bar area needs at least 2 pixels (default 200)",
                    self.width
                ),
            });
        }
        if self.bar_height == 0 {
            return Err(VizError::InvalidParameter {
                name: "bar_height",
                reason: "must be at least 1 pixel (default 12)".to_string(),
            });
        }
        Ok(())
    }
}

/// One drawn bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// Index of the feature in the input.
    pub feature: usize,
    /// Its attribution.
    pub value: f32,
    /// Its name, when names were given.
    pub label: Option<String>,
    /// First and one-past-last pixel row of the bar.
    pub rows: (u32, u32),
    /// First and one-past-last pixel column of the bar (equal when the value is 0).
    pub cols: (u32, u32),
}

/// A rendered bar chart.
#[derive(Debug, Clone)]
pub struct BarChart {
    /// The image.
    pub image: RgbaImage,
    /// The bars from top to bottom (largest `|value|` first).
    pub bars: Vec<Bar>,
    /// Pixel column of the zero axis.
    pub axis_x: u32,
}

/// One name per feature, when names are given.
fn check_names(names: Option<&[String]>, features: usize) -> Result<(), VizError> {
    match names {
        Some(names) if names.len() != features => Err(VizError::ShapeMismatch(format!(
            "{} feature names for {} attribution values; pass one name per feature",
            names.len(),
            features
        ))),
        _ => Ok(()),
    }
}

/// Paint the pixels of columns `x0..x1` and rows `y0..y1` opaque `color`.
fn fill(image: &mut RgbaImage, (x0, x1): (u32, u32), (y0, y1): (u32, u32), color: [u8; 3]) {
    for y in y0..y1 {
        for x in x0..x1 {
            image.put_pixel(x, y, Rgba([color[0], color[1], color[2], 255]));
        }
    }
}

/// Draws the `top_k` features with the largest `|value|` as horizontal bars, top to bottom.
///
/// Ties keep input order. With `m = max |value|` over the shown features:
///
/// * both signs shown: `L = R = ⌊width / 2⌋` pixels left and right of the axis;
///   only non-negative values: `L = 0, R = width`; only negative: `L = width, R = 0`;
/// * the image is `margin + L + 1 + R + margin` wide and
///   `2 · margin + k · bar_height + (k − 1) · bar_gap` tall; the axis is column `margin + L`;
/// * bar `i` covers rows `margin + i (bar_height + bar_gap)` onward for `bar_height` rows; its
///   length is `len = round(|v| / m · E)` with `E = R` for positive and `L` for negative values,
///   at least 1 pixel for a non-zero value; a positive bar covers columns
///   `axis + 1 … axis + len`, a negative one `axis − len … axis − 1`.
///
/// `names`, when given, must have one entry per feature; they are returned as labels (not
/// drawn). Errors: empty or non-finite values, a names/values length mismatch, invalid params.
pub fn render_bar_chart(
    values: ArrayView1<'_, f32>,
    names: Option<&[String]>,
    params: &BarChartParams,
) -> Result<BarChart, VizError> {
    params.check()?;
    check_finite_nonempty("feature attribution", values.shape(), values.iter())?;
    check_names(names, values.len())?;
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].abs().total_cmp(&values[a].abs()));
    order.truncate(params.top_k);
    let k = order.len() as u64;

    let has_pos = order.iter().any(|&i| values[i] > 0.0);
    let has_neg = order.iter().any(|&i| values[i] < 0.0);
    let (left, right) = match (has_neg, has_pos) {
        (true, true) => (params.width / 2, params.width / 2),
        (true, false) => (params.width, 0),
        _ => (0, params.width),
    };
    let m = order
        .iter()
        .map(|&i| f64::from(values[i].abs()))
        .fold(0.0, f64::max);

    let width = 2 * u64::from(params.margin) + u64::from(left) + 1 + u64::from(right);
    let height = 2 * u64::from(params.margin)
        + k * u64::from(params.bar_height)
        + (k - 1) * u64::from(params.bar_gap);
    check_size(width, height)?;
    let bg = params.background;
    let mut image = RgbaImage::from_pixel(
        width as u32,
        height as u32,
        Rgba([bg[0], bg[1], bg[2], 255]),
    );

    let axis_x = params.margin + left;
    let ax = params.axis_color;
    for y in params.margin..(height as u32 - params.margin) {
        image.put_pixel(axis_x, y, Rgba([ax[0], ax[1], ax[2], 255]));
    }

    let mut bars = Vec::with_capacity(order.len());
    for (row, &i) in order.iter().enumerate() {
        let v = values[i];
        let extent = if v < 0.0 { left } else { right };
        let mut len = if m > 0.0 {
            (f64::from(v.abs()) / m * f64::from(extent)).round() as u32
        } else {
            0
        };
        if v != 0.0 {
            len = len.max(1);
        }
        // Fits in u32: the whole image passed `check_size`.
        let y0 = (u64::from(params.margin)
            + row as u64 * (u64::from(params.bar_height) + u64::from(params.bar_gap)))
            as u32;
        let y1 = y0 + params.bar_height;
        let (x0, x1, color) = if v < 0.0 {
            (axis_x - len, axis_x, params.negative_color)
        } else {
            (axis_x + 1, axis_x + 1 + len, params.positive_color)
        };
        fill(&mut image, (x0, x1), (y0, y1), color);
        bars.push(Bar {
            feature: i,
            value: v,
            label: names.map(|n| n[i].clone()),
            rows: (y0, y1),
            cols: (x0, x1),
        });
    }
    Ok(BarChart {
        image,
        bars,
        axis_x,
    })
}
