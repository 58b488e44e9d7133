//! Pixel values of every method and sign against hand-computed expectations.
//!
//! Shared fixture: a 3-channel 2 x 2 attribution whose channel sum is
//! `s = [[1, 2], [-4, 4]]`, and an RGB image on the 0–255 scale
//! `(0,0) = [0, 0, 0]`, `(0,1) = [0, 51, 102]`, `(1,0) = [255, 255, 255]`, `(1,1) = [200, 100, 0]`.
//!
//! With `outlier_perc = 0` the threshold is the largest selected value, so by hand:
//!
//! | sign | values v | T | n (row-major) |
//! |---|---|---|---|
//! | all | |s| = 1, 2, 4, 4 | 4 | 0.25, 0.5, −1, 1 |
//! | positive | 1, 2, 0, 4 | 4 | 0.25, 0.5, 0, 1 |
//! | negative | 0, 0, 4, 0 | 4 | 0, 0, 1, 0 |
//! | absolute_value | 1, 2, 4, 4 | 4 | 0.25, 0.5, 1, 1 |

use attrib_viz::{normalize_attr, render, Colormap, Sign, VizError, VizMethod, VizParams};
use ndarray::{array, Array3};

fn attr() -> Array3<f32> {
    // Channel sums: [[1+0+0, 1+2-1], [-1-1-2, 2+1+1]] = [[1, 2], [-4, 4]].
    array![
        [[1.0, 1.0], [-1.0, 2.0]],
        [[0.0, 2.0], [-1.0, 1.0]],
        [[0.0, -1.0], [-2.0, 1.0]],
    ]
}

fn image() -> Array3<f32> {
    // CHW: channel R, G, B.
    array![
        [[0.0, 0.0], [255.0, 200.0]],
        [[0.0, 51.0], [255.0, 100.0]],
        [[0.0, 102.0], [255.0, 0.0]],
    ]
}

fn params(method: VizMethod, sign: Sign) -> attrib_viz::ValidVizParams {
    VizParams::new(method, sign)
        .outlier_perc(0.0)
        .check()
        .unwrap()
}

/// Renders and returns the 4 pixels in row-major order (x, y) = (0,0), (1,0), (0,1), (1,1).
fn pixels(method: VizMethod, sign: Sign, with_image: bool) -> [[u8; 4]; 4] {
    let a = attr();
    let img = image();
    let out = render(
        a.view(),
        with_image.then(|| img.view()),
        &params(method, sign),
    )
    .unwrap();
    assert_eq!(out.dimensions(), (2, 2));
    [
        out.get_pixel(0, 0).0,
        out.get_pixel(1, 0).0,
        out.get_pixel(0, 1).0,
        out.get_pixel(1, 1).0,
    ]
}

#[test]
fn normalised_values_for_each_sign() {
    let a = attr();
    let cases = [
        (Sign::All, [[0.25, 0.5], [-1.0, 1.0]]),
        (Sign::Positive, [[0.25, 0.5], [0.0, 1.0]]),
        (Sign::Negative, [[0.0, 0.0], [1.0, 0.0]]),
        (Sign::AbsoluteValue, [[0.25, 0.5], [1.0, 1.0]]),
    ];
    for (sign, expected) in cases {
        let n = normalize_attr(a.view(), sign, 0.0).unwrap();
        assert_eq!(n, ndarray::arr2(&expected), "sign {sign}");
    }
}

#[test]
fn heat_map_positive_uses_greens() {
    // Greens anchors (ColorBrewer, 9 classes at t = k/8): t = 0 -> #f7fcf5, 0.25 -> anchor 2
    // #c7e9c0, 0.5 -> anchor 4 #74c476, 1 -> anchor 8 #00441b.
    let px = pixels(VizMethod::HeatMap, Sign::Positive, false);
    assert_eq!(px[0], [0xc7, 0xe9, 0xc0, 255]); // n = 0.25
    assert_eq!(px[1], [0x74, 0xc4, 0x76, 255]); // n = 0.5
    assert_eq!(px[2], [0xf7, 0xfc, 0xf5, 255]); // n = 0
    assert_eq!(px[3], [0x00, 0x44, 0x1b, 255]); // n = 1
}

#[test]
fn heat_map_negative_uses_reds() {
    let px = pixels(VizMethod::HeatMap, Sign::Negative, false);
    let lightest = [0xff, 0xf5, 0xf0, 255]; // Reds t = 0
    assert_eq!(px[0], lightest);
    assert_eq!(px[1], lightest);
    assert_eq!(px[2], [0x67, 0x00, 0x0d, 255]); // s = -4 -> n = 1 -> Reds t = 1
    assert_eq!(px[3], lightest); // s = +4 is not negative
}

#[test]
fn heat_map_absolute_value_uses_blues() {
    let px = pixels(VizMethod::HeatMap, Sign::AbsoluteValue, false);
    assert_eq!(px[0], [0xc6, 0xdb, 0xef, 255]); // n = 0.25 -> anchor 2
    assert_eq!(px[1], [0x6b, 0xae, 0xd6, 255]); // n = 0.5 -> anchor 4
    assert_eq!(px[2], [0x08, 0x30, 0x6b, 255]); // n = 1
    assert_eq!(px[3], [0x08, 0x30, 0x6b, 255]); // n = 1
}

#[test]
fn heat_map_all_uses_red_white_green() {
    // t = (n + 1) / 2 on red (255,0,0) - white (255,255,255) - green (0,128,0), anchors at 0, 0.5, 1.
    // n = 0.25: t = 0.625, between white and green with f = 0.25:
    //   R = 255 - 0.25*255 = 191.25 -> 191, G = 255 - 0.25*127 = 223.25 -> 223, B = 191.
    // n = 0.5: t = 0.75, f = 0.5: R = 127.5 -> 128, G = 255 - 63.5 = 191.5 -> 192, B = 128.
    let px = pixels(VizMethod::HeatMap, Sign::All, false);
    assert_eq!(px[0], [191, 223, 191, 255]);
    assert_eq!(px[1], [128, 192, 128, 255]);
    assert_eq!(px[2], [255, 0, 0, 255]); // n = -1
    assert_eq!(px[3], [0, 128, 0, 255]); // n = 1
}

// Blended heat maps: grey = channel mean = 0, 51, 255, 100; min 0 and max 255, so the
// min-max stretch leaves it unchanged. Pixel = round(0.5 * heat + 0.5 * grey).

#[test]
fn blended_heat_map_positive() {
    let px = pixels(VizMethod::BlendedHeatMap, Sign::Positive, true);
    // heat (199,233,192), grey 0 -> 99.5, 116.5, 96 -> 100, 117, 96
    assert_eq!(px[0], [100, 117, 96, 255]);
    // heat (116,196,118), grey 51 -> 58+25.5, 98+25.5, 59+25.5 = 83.5, 123.5, 84.5
    assert_eq!(px[1], [84, 124, 85, 255]);
    // heat (247,252,245), grey 255 -> 123.5+127.5, 126+127.5, 122.5+127.5 = 251, 253.5, 250
    assert_eq!(px[2], [251, 254, 250, 255]);
    // heat (0,68,27), grey 100 -> 50, 84, 63.5
    assert_eq!(px[3], [50, 84, 64, 255]);
}

#[test]
fn blended_heat_map_negative() {
    let px = pixels(VizMethod::BlendedHeatMap, Sign::Negative, true);
    // heat (255,245,240), grey 0 -> 127.5, 122.5, 120
    assert_eq!(px[0], [128, 123, 120, 255]);
    // heat (255,245,240), grey 51 -> 153, 148, 145.5
    assert_eq!(px[1], [153, 148, 146, 255]);
    // heat (103,0,13), grey 255 -> 51.5+127.5, 127.5, 6.5+127.5 = 179, 127.5, 134
    assert_eq!(px[2], [179, 128, 134, 255]);
    // heat (255,245,240), grey 100 -> 177.5, 172.5, 170
    assert_eq!(px[3], [178, 173, 170, 255]);
}

#[test]
fn blended_heat_map_absolute_value() {
    let px = pixels(VizMethod::BlendedHeatMap, Sign::AbsoluteValue, true);
    // heat (198,219,239), grey 0 -> 99, 109.5, 119.5
    assert_eq!(px[0], [99, 110, 120, 255]);
    // heat (107,174,214), grey 51 -> 53.5+25.5, 87+25.5, 107+25.5 = 79, 112.5, 132.5
    assert_eq!(px[1], [79, 113, 133, 255]);
    // heat (8,48,107), grey 255 -> 4+127.5, 24+127.5, 53.5+127.5 = 131.5, 151.5, 181
    assert_eq!(px[2], [132, 152, 181, 255]);
    // heat (8,48,107), grey 100 -> 54, 74, 103.5
    assert_eq!(px[3], [54, 74, 104, 255]);
}

#[test]
fn blended_heat_map_all() {
    let px = pixels(VizMethod::BlendedHeatMap, Sign::All, true);
    // heat (191.25,223.25,191.25) unrounded, grey 0 -> 95.625, 111.625, 95.625
    assert_eq!(px[0], [96, 112, 96, 255]);
    // heat (127.5,191.5,127.5), grey 51 -> 63.75+25.5, 95.75+25.5, 89.25 = 89.25, 121.25, 89.25
    assert_eq!(px[1], [89, 121, 89, 255]);
    // heat (255,0,0), grey 255 -> 255, 127.5, 127.5
    assert_eq!(px[2], [255, 128, 128, 255]);
    // heat (0,128,0), grey 100 -> 50, 114, 50
    assert_eq!(px[3], [50, 114, 50, 255]);
}

#[test]
fn blended_heat_map_alpha_one_is_the_heat_map() {
    let a = attr();
    let img = image();
    let p = VizParams::new(VizMethod::BlendedHeatMap, Sign::Positive)
        .outlier_perc(0.0)
        .alpha_overlay(1.0)
        .check()
        .unwrap();
    let out = render(a.view(), Some(img.view()), &p).unwrap();
    assert_eq!(out.get_pixel(1, 1).0, [0x00, 0x44, 0x1b, 255]);
}

#[test]
fn blended_heat_map_stretches_grey() {
    // One-channel image with means 100 and 200 (min 100, max 200): stretched to 0 and 255.
    // Attribution all zeros -> n = 0 -> Blues t = 0 = (247, 251, 255), alpha 0.5.
    let a = Array3::<f32>::zeros((1, 1, 2));
    let img = array![[[100.0f32, 200.0]]];
    let p = VizParams::new(VizMethod::BlendedHeatMap, Sign::AbsoluteValue)
        .check()
        .unwrap();
    let out = render(a.view(), Some(img.view()), &p).unwrap();
    // 123.5, 125.5, 127.5 (+0) and (+127.5) -> 251, 253, 255
    assert_eq!(out.get_pixel(0, 0).0, [124, 126, 128, 255]);
    assert_eq!(out.get_pixel(1, 0).0, [251, 253, 255, 255]);
}

#[test]
fn masked_image_per_sign() {
    // round(img * n)
    let pos = pixels(VizMethod::MaskedImage, Sign::Positive, true);
    assert_eq!(
        pos,
        [
            [0, 0, 0, 255],
            [0, 26, 51, 255],
            [0, 0, 0, 255],
            [200, 100, 0, 255]
        ]
    );
    let neg = pixels(VizMethod::MaskedImage, Sign::Negative, true);
    assert_eq!(
        neg,
        [
            [0, 0, 0, 255],
            [0, 0, 0, 255],
            [255, 255, 255, 255],
            [0, 0, 0, 255]
        ]
    );
    let abs = pixels(VizMethod::MaskedImage, Sign::AbsoluteValue, true);
    assert_eq!(
        abs,
        [
            [0, 0, 0, 255],
            [0, 26, 51, 255],
            [255, 255, 255, 255],
            [200, 100, 0, 255]
        ]
    );
}

#[test]
fn alpha_scaling_per_sign() {
    // RGB = image, alpha = round(255 n): 0.25 -> 63.75 -> 64, 0.5 -> 127.5 -> 128.
    let pos = pixels(VizMethod::AlphaScaling, Sign::Positive, true);
    assert_eq!(
        pos,
        [
            [0, 0, 0, 64],
            [0, 51, 102, 128],
            [255, 255, 255, 0],
            [200, 100, 0, 255]
        ]
    );
    let neg = pixels(VizMethod::AlphaScaling, Sign::Negative, true);
    assert_eq!(
        neg,
        [
            [0, 0, 0, 0],
            [0, 51, 102, 0],
            [255, 255, 255, 255],
            [200, 100, 0, 0]
        ]
    );
    let abs = pixels(VizMethod::AlphaScaling, Sign::AbsoluteValue, true);
    assert_eq!(
        abs,
        [
            [0, 0, 0, 64],
            [0, 51, 102, 128],
            [255, 255, 255, 255],
            [200, 100, 0, 255]
        ]
    );
}

#[test]
fn masked_and_alpha_reject_sign_all() {
    for method in [VizMethod::MaskedImage, VizMethod::AlphaScaling] {
        let err = VizParams::new(method, Sign::All).check().unwrap_err();
        assert!(
            matches!(err, VizError::InvalidParameter { name: "sign", .. }),
            "{err}"
        );
    }
}

#[test]
fn original_image_for_every_sign() {
    for sign in Sign::ALL {
        let px = pixels(VizMethod::OriginalImage, sign, true);
        assert_eq!(
            px,
            [
                [0, 0, 0, 255],
                [0, 51, 102, 255],
                [255, 255, 255, 255],
                [200, 100, 0, 255]
            ]
        );
    }
}

#[test]
fn unit_range_grey_image_is_scaled_by_255() {
    // max <= 1 -> values * 255: 0.5 -> 127.5 -> 128, 0.25 -> 63.75 -> 64; grey repeated over RGB.
    let a = Array3::<f32>::ones((1, 2, 2));
    let img = array![[[0.5f32, 1.0], [0.25, 0.0]]];
    let p = params(VizMethod::OriginalImage, Sign::Positive);
    let out = render(a.view(), Some(img.view()), &p).unwrap();
    assert_eq!(out.get_pixel(0, 0).0, [128, 128, 128, 255]);
    assert_eq!(out.get_pixel(1, 0).0, [255, 255, 255, 255]);
    assert_eq!(out.get_pixel(0, 1).0, [64, 64, 64, 255]);
    assert_eq!(out.get_pixel(1, 1).0, [0, 0, 0, 255]);
}

#[test]
fn custom_colormap_override() {
    // Gray map for positive: n = 0.25 -> 63.75 -> 64, n = 0.5 -> 127.5 -> 128.
    let a = attr();
    let p = VizParams::new(VizMethod::HeatMap, Sign::Positive)
        .outlier_perc(0.0)
        .cmap(Some(Colormap::Gray))
        .check()
        .unwrap();
    let out = render(a.view(), None, &p).unwrap();
    assert_eq!(out.get_pixel(0, 0).0, [64, 64, 64, 255]);
    assert_eq!(out.get_pixel(1, 0).0, [128, 128, 128, 255]);
    // Blue-white-red for all: n = -1 -> blue.
    let p = VizParams::new(VizMethod::HeatMap, Sign::All)
        .outlier_perc(0.0)
        .cmap(Some(Colormap::BlueWhiteRed))
        .check()
        .unwrap();
    let out = render(a.view(), None, &p).unwrap();
    assert_eq!(out.get_pixel(0, 1).0, [0, 0, 255, 255]);
    assert_eq!(out.get_pixel(1, 1).0, [255, 0, 0, 255]);
}

#[test]
fn upscale_is_nearest_neighbour() {
    let a = attr();
    let p = VizParams::new(VizMethod::HeatMap, Sign::All)
        .outlier_perc(0.0)
        .scale(3)
        .check()
        .unwrap();
    let out = render(a.view(), None, &p).unwrap();
    assert_eq!(out.dimensions(), (6, 6));
    for y in 0..6 {
        for x in 0..6 {
            let expected = match (x / 3, y / 3) {
                (0, 0) => [191, 223, 191, 255],
                (1, 0) => [128, 192, 128, 255],
                (0, 1) => [255, 0, 0, 255],
                _ => [0, 128, 0, 255],
            };
            assert_eq!(out.get_pixel(x, y).0, expected, "pixel ({x}, {y})");
        }
    }
}

#[test]
fn all_zero_attribution_gives_zero_map() {
    let a = Array3::<f32>::zeros((3, 2, 2));
    for sign in Sign::ALL {
        let n = normalize_attr(a.view(), sign, 2.0).unwrap();
        assert!(n.iter().all(|&v| v == 0.0));
    }
}
