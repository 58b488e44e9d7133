//! Writes every method × sign for a synthetic 16 × 16 RGB image, a grid and a bar chart.
//!
//! `cargo run --release -p attrib-viz --example viz_demo -- OUT_DIR` (default: the temp dir).

use attrib_viz::{
    render, render_bar_chart, render_grid, save_png, BarChartParams, GridParams, Sign, VizMethod,
    VizParams,
};
use ndarray::{array, Array3};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&dir)?;
    let n = 16;
    // A colour gradient with a bright disc in the middle.
    let image = Array3::from_shape_fn((3, n, n), |(c, y, x)| {
        let (dx, dy) = (x as f32 - 7.5, y as f32 - 7.5);
        let disc = if dx * dx + dy * dy < 20.0 { 0.5 } else { 0.0 };
        match c {
            0 => x as f32 / 15.0 * 0.5 + disc,
            1 => y as f32 / 15.0 * 0.5 + disc,
            _ => 0.3 + disc,
        }
    });
    // Positive on the disc, negative in the top-left corner, one outlier pixel.
    let mut attr = Array3::from_shape_fn((3, n, n), |(_, y, x)| {
        let (dx, dy) = (x as f32 - 7.5, y as f32 - 7.5);
        let r2 = dx * dx + dy * dy;
        (-r2 / 20.0).exp() - 0.6 * (-((x * x + y * y) as f32) / 10.0).exp()
    });
    attr[[0, 8, 8]] += 3.0; // about 1.5 % of the mass: clipped by the default 2 %

    for method in VizMethod::ALL {
        for sign in Sign::ALL {
            let Ok(params) = VizParams::new(method, sign).scale(8).check() else {
                continue; // masked_image / alpha_scaling with sign `all`
            };
            let img = render(attr.view(), Some(image.view()), &params)?;
            save_png(&img, dir.join(format!("{method}_{sign}.png")))?;
        }
    }
    let params = VizParams::new(VizMethod::HeatMap, Sign::All)
        .scale(8)
        .check()?;
    let flipped = attr.mapv(|v| -v);
    let grid = render_grid(
        Some(image.view()),
        &[("attr", attr.view()), ("negated", flipped.view())],
        &params,
        &GridParams::default(),
    )?;
    save_png(&grid.image, dir.join("grid.png"))?;
    println!("grid columns: {:?}", grid.columns);

    let row = array![0.3f32, -1.2, 0.05, 0.8, -0.4, 0.1];
    let chart = render_bar_chart(row.view(), None, &BarChartParams::default())?;
    save_png(&chart.image, dir.join("bars.png"))?;
    println!(
        "bar order: {:?}",
        chart.bars.iter().map(|b| b.feature).collect::<Vec<_>>()
    );
    println!("wrote PNGs to {}", dir.display());
    Ok(())
}
