//! Grids of panels and top-k bar charts.

use attrib_viz::{
    compose_row, render_bar_chart, render_grid, BarChartParams, GridParams, Sign, VizError,
    VizMethod, VizParams,
};
use image::{Rgba, RgbaImage};
use ndarray::{array, Array1};

#[test]
fn grid_places_original_then_one_panel_per_method() {
    // Grey image [[0, 1], [1, 0]] (unit range -> 0 / 255); two attributions, heat map with
    // sign positive, outlier 0, scale 2, gap 3.
    let img = array![[[0.0f32, 1.0], [1.0, 0.0]]];
    let a = array![[[1.0f32, 0.0], [0.0, 0.0]]]; // n = 1 at (0,0) -> Greens t = 1 = (0,68,27)
    let b = array![[[0.0f32, 0.0], [0.0, 2.0]]]; // n = 1 at (1,1)
    let params = VizParams::new(VizMethod::HeatMap, Sign::Positive)
        .outlier_perc(0.0)
        .scale(2)
        .check()
        .unwrap();
    let grid = GridParams {
        gap: 3,
        ..GridParams::default()
    };
    let out = render_grid(
        Some(img.view()),
        &[("saliency", a.view()), ("ig", b.view())],
        &params,
        &grid,
    )
    .unwrap();
    assert_eq!(out.columns, vec!["original_image", "saliency", "ig"]);
    assert_eq!(out.x_offsets, vec![0, 7, 14]);
    // 3 panels of 4 x 4 and 2 gaps of 3.
    assert_eq!(out.image.dimensions(), (18, 4));
    let px = |x, y| out.image.get_pixel(x, y).0;
    // Original image panel.
    assert_eq!(px(0, 0), [0, 0, 0, 255]);
    assert_eq!(px(2, 0), [255, 255, 255, 255]);
    // Gap is white.
    assert_eq!(px(4, 0), [255, 255, 255, 255]);
    assert_eq!(px(6, 3), [255, 255, 255, 255]);
    // First heat map: darkest green top-left, lightest (247,252,245) elsewhere.
    assert_eq!(px(7, 0), [0, 68, 27, 255]);
    assert_eq!(px(10, 3), [247, 252, 245, 255]);
    // Second heat map: darkest green bottom-right.
    assert_eq!(px(14, 0), [247, 252, 245, 255]);
    assert_eq!(px(17, 3), [0, 68, 27, 255]);
}

#[test]
fn grid_without_image_and_compose_row() {
    let a = array![[[1.0f32]]];
    let params = VizParams::default().check().unwrap();
    let out = render_grid(None, &[("a", a.view())], &params, &GridParams::default()).unwrap();
    assert_eq!(out.columns, vec!["a"]);
    assert_eq!(out.image.dimensions(), (1, 1));

    // Panels of different heights are top-aligned on the background.
    let p1 = RgbaImage::from_pixel(1, 2, Rgba([1, 2, 3, 255]));
    let p2 = RgbaImage::from_pixel(2, 1, Rgba([4, 5, 6, 255]));
    let row = compose_row(&[p1, p2], 1, [9, 9, 9, 255]).unwrap();
    assert_eq!(row.dimensions(), (4, 2));
    assert_eq!(row.get_pixel(0, 1).0, [1, 2, 3, 255]);
    assert_eq!(row.get_pixel(1, 0).0, [9, 9, 9, 255]);
    assert_eq!(row.get_pixel(3, 0).0, [4, 5, 6, 255]);
    assert_eq!(row.get_pixel(3, 1).0, [9, 9, 9, 255]);
    assert!(matches!(
        compose_row(&[], 1, [0; 4]),
        Err(VizError::Empty { .. })
    ));
}

const WHITE: [u8; 4] = [255, 255, 255, 255];
const GREEN: [u8; 4] = [0, 128, 0, 255];
const RED: [u8; 4] = [255, 0, 0, 255];
const AXIS: [u8; 4] = [128, 128, 128, 255];

/// Counts the pixels of `color` on row `y`.
fn count(img: &RgbaImage, y: u32, color: [u8; 4]) -> usize {
    (0..img.width())
        .filter(|&x| img.get_pixel(x, y).0 == color)
        .count()
}

#[test]
fn bar_chart_sorted_signed_bars() {
    // top 3 of [0.5, -2, 1, 0.1] by |v|: features 1 (-2), 2 (1), 0 (0.5).
    // Both signs: L = R = 40 / 2 = 20; width 4 + 20 + 1 + 20 + 4 = 49; axis at x = 24;
    // height 2*4 + 3*12 + 2*4 = 52. Lengths: 2/2*20 = 20, 1/2*20 = 10, 0.5/2*20 = 5.
    let values = array![0.5f32, -2.0, 1.0, 0.1];
    let names: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
    let params = BarChartParams {
        top_k: 3,
        width: 40,
        ..BarChartParams::default()
    };
    let chart = render_bar_chart(values.view(), Some(&names), &params).unwrap();
    let img = &chart.image;
    assert_eq!(img.dimensions(), (49, 52));
    assert_eq!(chart.axis_x, 24);
    let order: Vec<usize> = chart.bars.iter().map(|b| b.feature).collect();
    assert_eq!(order, vec![1, 2, 0]);
    assert_eq!(chart.bars[0].label.as_deref(), Some("b"));

    // Bar rows: [4, 16), [20, 32), [36, 48). Middle rows 10, 26, 42.
    // Longest bar belongs to the largest |attribution| (feature 1, negative, red).
    let lengths: Vec<usize> = [10, 26, 42]
        .iter()
        .map(|&y| count(img, y, RED) + count(img, y, GREEN))
        .collect();
    assert_eq!(lengths, vec![20, 10, 5]);
    assert_eq!(count(img, 10, RED), 20);
    assert_eq!(count(img, 26, GREEN), 10);
    assert_eq!(count(img, 42, GREEN), 5);
    // Negative bar lies left of the axis, positive bars right of it.
    assert_eq!(img.get_pixel(3, 10).0, WHITE);
    assert_eq!(img.get_pixel(4, 10).0, RED);
    assert_eq!(img.get_pixel(23, 10).0, RED);
    assert_eq!(img.get_pixel(24, 10).0, AXIS);
    assert_eq!(img.get_pixel(25, 26).0, GREEN);
    assert_eq!(img.get_pixel(34, 26).0, GREEN);
    assert_eq!(img.get_pixel(35, 26).0, WHITE);
    assert_eq!(img.get_pixel(29, 42).0, GREEN);
    assert_eq!(img.get_pixel(30, 42).0, WHITE);
    // Gap between bars and margin are background except for the axis.
    assert_eq!(count(img, 18, WHITE), 48);
    assert_eq!(count(img, 1, WHITE), 49);
}

#[test]
fn bar_chart_one_signed_uses_full_width() {
    // Only positive values: L = 0, R = 30; width 4 + 0 + 1 + 30 + 4 = 39; axis at 4.
    let values = Array1::from(vec![3.0f32, 1.0, 0.0]);
    let params = BarChartParams {
        width: 30,
        bar_height: 2,
        bar_gap: 1,
        margin: 1,
        ..BarChartParams::default()
    };
    let chart = render_bar_chart(values.view(), None, &params).unwrap();
    assert_eq!(chart.image.dimensions(), (33, 2 + 3 * 2 + 2));
    assert_eq!(chart.axis_x, 1);
    assert_eq!(count(&chart.image, 1, GREEN), 30); // 3 / 3 * 30
    assert_eq!(count(&chart.image, 4, GREEN), 10); // 1 / 3 * 30
    assert_eq!(count(&chart.image, 7, GREEN), 0); // zero-length bar
                                                  // Only negative values: bars grow leftwards from the axis at margin + width.
    let neg = Array1::from(vec![-1.0f32, -4.0]);
    let chart = render_bar_chart(neg.view(), None, &params).unwrap();
    assert_eq!(chart.axis_x, 31);
    assert_eq!(chart.bars[0].feature, 1);
    assert_eq!(chart.bars[0].cols, (1, 31));
    assert_eq!(count(&chart.image, 1, RED), 30);
    assert_eq!(chart.bars[1].cols, (31 - 8, 31)); // round(1/4 * 30) = 7.5 -> 8
}

#[test]
fn bar_chart_errors() {
    let p = BarChartParams::default();
    let empty = Array1::<f32>::zeros(0);
    assert!(matches!(
        render_bar_chart(empty.view(), None, &p),
        Err(VizError::Empty { .. })
    ));
    let nan = array![1.0f32, f32::NAN];
    assert!(matches!(
        render_bar_chart(nan.view(), None, &p),
        Err(VizError::NonFinite { .. })
    ));
    let names = vec!["only one".to_string()];
    let v = array![1.0f32, 2.0];
    assert!(matches!(
        render_bar_chart(v.view(), Some(&names), &p),
        Err(VizError::ShapeMismatch(_))
    ));
    let bad = BarChartParams {
        top_k: 0,
        ..BarChartParams::default()
    };
    assert!(matches!(
        render_bar_chart(v.view(), None, &bad),
        Err(VizError::InvalidParameter { name: "top_k", .. })
    ));
    let huge = BarChartParams {
        bar_height: u32::MAX,
        ..BarChartParams::default()
    };
    assert!(matches!(
        render_bar_chart(v.view(), None, &huge),
        Err(VizError::TooLarge { .. })
    ));
}
