//! PNG writing and reading, and input errors.

use std::path::PathBuf;

use attrib_viz::{
    load_image, render, save_png, visualize_image_attr, Sign, VizError, VizMethod, VizParams,
};
use ndarray::{array, Array3};

fn tmp(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("attrib-viz-tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn png_round_trip_heat_map() {
    // s = [[-1, 0.5], [0, 1]] with outlier_perc 0: T = 1, n = s.
    // Red-white-green: n = -1 -> (255,0,0); n = 0 -> white; n = 1 -> (0,128,0);
    // n = 0.5 -> t = 0.75 -> (127.5, 191.5, 127.5) -> (128, 192, 128).
    let attr = array![[[-1.0f32, 0.5], [0.0, 1.0]]];
    let params = VizParams::new(VizMethod::HeatMap, Sign::All)
        .outlier_perc(0.0)
        .scale(4)
        .check()
        .unwrap();
    let path = tmp("heat_map.png");
    let rendered = visualize_image_attr(attr.view(), None, &params, &path).unwrap();
    let back = image::open(&path).unwrap();
    assert_eq!(
        back.color(),
        image::ColorType::Rgb8,
        "opaque images are written as RGB"
    );
    let back = back.to_rgba8();
    assert_eq!(back.dimensions(), (8, 8));
    assert_eq!(back, rendered);
    assert_eq!(back.get_pixel(0, 0).0, [255, 0, 0, 255]);
    assert_eq!(back.get_pixel(7, 3).0, [128, 192, 128, 255]);
    assert_eq!(back.get_pixel(3, 4).0, [255, 255, 255, 255]);
    assert_eq!(back.get_pixel(4, 7).0, [0, 128, 0, 255]);
}

#[test]
fn png_round_trip_keeps_alpha() {
    // alpha_scaling, positive, outlier 0: s = [[0, 2], [1, 4]] -> n = 0, 0.5, 0.25, 1.
    let attr = array![[[0.0f32, 2.0], [1.0, 4.0]]];
    let img = array![[[10.0f32, 20.0], [30.0, 40.0]]];
    let params = VizParams::new(VizMethod::AlphaScaling, Sign::Positive)
        .outlier_perc(0.0)
        .check()
        .unwrap();
    let rendered = render(attr.view(), Some(img.view()), &params).unwrap();
    let path = tmp("alpha.png");
    save_png(&rendered, &path).unwrap();
    let back = image::open(&path).unwrap();
    assert_eq!(back.color(), image::ColorType::Rgba8);
    let back = back.to_rgba8();
    assert_eq!(back.get_pixel(0, 0).0, [10, 10, 10, 0]);
    assert_eq!(back.get_pixel(1, 0).0, [20, 20, 20, 128]);
    assert_eq!(back.get_pixel(0, 1).0, [30, 30, 30, 64]);
    assert_eq!(back.get_pixel(1, 1).0, [40, 40, 40, 255]);
}

#[test]
fn load_image_gives_chw_unit_range() {
    let mut rgb = image::RgbImage::new(3, 2);
    rgb.put_pixel(2, 1, image::Rgb([255, 0, 51]));
    let path = tmp("load_rgb.png");
    rgb.save(&path).unwrap();
    let a = load_image(&path).unwrap();
    assert_eq!(a.shape(), &[3, 2, 3]);
    assert_eq!(a[[0, 1, 2]], 1.0);
    assert_eq!(a[[1, 1, 2]], 0.0);
    assert_eq!(a[[2, 1, 2]], 0.2);

    let grey = image::GrayImage::from_pixel(2, 2, image::Luma([255]));
    let path = tmp("load_grey.png");
    grey.save(&path).unwrap();
    let a = load_image(&path).unwrap();
    assert_eq!(a.shape(), &[1, 2, 2]);
    assert!(a.iter().all(|&v| v == 1.0));
}

#[test]
fn unreadable_and_unwritable_paths_are_errors() {
    let err = load_image("/nonexistent-attrib-viz/missing.png").unwrap_err();
    assert!(matches!(err, VizError::Read { .. }), "{err}");
    assert!(err.to_string().contains("missing.png"));

    let not_an_image = tmp("not_an_image.png");
    std::fs::write(&not_an_image, b"hello").unwrap();
    assert!(matches!(
        load_image(&not_an_image),
        Err(VizError::Read { .. })
    ));

    let img = image::RgbaImage::new(2, 2);
    let err = save_png(&img, "/nonexistent-attrib-viz/dir/out.png").unwrap_err();
    assert!(matches!(err, VizError::Write { .. }), "{err}");
}

#[test]
fn shape_mismatch_between_image_and_attribution() {
    let attr = Array3::<f32>::ones((3, 2, 2));
    let img = Array3::<f32>::ones((3, 3, 2));
    let p = VizParams::new(VizMethod::BlendedHeatMap, Sign::All)
        .check()
        .unwrap();
    let err = render(attr.view(), Some(img.view()), &p).unwrap_err();
    assert!(matches!(err, VizError::ShapeMismatch(_)), "{err}");
    assert!(err.to_string().contains("3 x 2"), "{err}");

    // Two channels are neither grey nor RGB.
    let img = Array3::<f32>::ones((2, 2, 2));
    assert!(matches!(
        render(attr.view(), Some(img.view()), &p),
        Err(VizError::ShapeMismatch(_))
    ));
}

#[test]
fn empty_nan_and_missing_image_are_errors() {
    let p = VizParams::default().check().unwrap();
    let empty = Array3::<f32>::zeros((1, 0, 3));
    assert!(matches!(
        render(empty.view(), None, &p),
        Err(VizError::Empty { .. })
    ));

    let mut nan = Array3::<f32>::ones((1, 2, 2));
    nan[[0, 1, 1]] = f32::NAN;
    nan[[0, 0, 1]] = f32::INFINITY;
    let err = render(nan.view(), None, &p).unwrap_err();
    assert!(matches!(err, VizError::NonFinite { count: 2, .. }), "{err}");

    let attr = Array3::<f32>::ones((1, 2, 2));
    let mut img = Array3::<f32>::ones((1, 2, 2));
    img[[0, 0, 0]] = f32::NAN;
    assert!(matches!(
        render(attr.view(), Some(img.view()), &p),
        Err(VizError::NonFinite { .. })
    ));

    for method in [
        VizMethod::BlendedHeatMap,
        VizMethod::OriginalImage,
        VizMethod::MaskedImage,
        VizMethod::AlphaScaling,
    ] {
        let p = VizParams::new(method, Sign::Positive).check().unwrap();
        let err = render(attr.view(), None, &p).unwrap_err();
        assert!(matches!(err, VizError::MissingImage { .. }), "{err}");
    }
}

#[test]
fn hwc_and_hw_helpers() {
    // HWC 1 x 2 x 3: pixel (0,1) = (0, 51, 102) after the view.
    let hwc = array![[[0.0f32, 0.0, 0.0], [0.0, 51.0, 102.0]]];
    let chw = attrib_viz::hwc_to_chw(hwc.view());
    assert_eq!(chw.shape(), &[3, 1, 2]);
    assert_eq!(chw[[2, 0, 1]], 102.0);
    let hw = array![[1.0f32, 2.0]];
    assert_eq!(attrib_viz::hw_to_chw(hw.view()).shape(), &[1, 1, 2]);
}
