//! Image inputs match torchvision: antialiased bilinear `Resize`, `CenterCrop` and `Normalize`
//! on float tensors, and the same pipeline on PNG files read as `to_tensor` does.

use attrib::convert::{read_npy_f32, tensor_to_array_f32};
use attrib::images::{load_batch, load_image};
use attrib::tensor::transform::{center_crop, resize_bilinear_antialias};
use attrib::{AttribError, ImageTransform, Normalize, Resize};
use attrib_tests::fixtures;
use ndarray::{Array3, ArrayD, Ix3};
use tch::Device;

fn dir() -> std::path::PathBuf {
    fixtures().join("images")
}

fn read3(name: &str) -> Array3<f32> {
    read_npy_f32(dir().join(name)).unwrap().into_dimensionality::<Ix3>().unwrap()
}

fn max_abs(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn float_pipeline_matches_torchvision() {
    let x = read3("float_input.npy");
    let t = ImageTransform {
        resize: Some(Resize::ShorterSide(20)),
        center_crop: Some((16, 16)),
        normalize: Some(Normalize::imagenet()),
        ..Default::default()
    };
    let y = t.apply(x.clone()).unwrap().into_dyn();
    let expected = read_npy_f32(dir().join("float_resize20_crop16_norm.npy")).unwrap();
    let err = max_abs(&y, &expected);
    assert!(err < 1e-5, "resize+crop+normalize differs from torchvision by {err}");

    let up = resize_bilinear_antialias(&x, 50, 70).into_dyn();
    let err = max_abs(&up, &read_npy_f32(dir().join("float_resize50x70.npy")).unwrap());
    assert!(err < 1e-5, "upscaling differs from torchvision by {err}");

    let c = center_crop(&x, 30, 40).unwrap().into_dyn();
    assert_eq!(max_abs(&c, &read_npy_f32(dir().join("float_crop_30x40.npy")).unwrap()), 0.0);
}

#[test]
fn png_files_match_torchvision() {
    let t = ImageTransform {
        resize: Some(Resize::ShorterSide(24)),
        center_crop: Some((20, 20)),
        normalize: Some(Normalize::imagenet()),
        ..Default::default()
    };
    let y = load_image(&dir().join("rgb.png"), &t).unwrap().into_dyn();
    let err = max_abs(&y, &read_npy_f32(dir().join("rgb_resize24_crop20_norm.npy")).unwrap());
    assert!(err < 1e-5, "PNG pipeline differs from torchvision by {err}");
    let g = load_image(&dir().join("grey.png"), &ImageTransform::default()).unwrap().into_dyn();
    assert_eq!(g.shape(), &[1, 12, 12]);
    assert!(max_abs(&g, &read_npy_f32(dir().join("grey.npy")).unwrap()) < 1e-7);
}

#[test]
fn folders_become_batches() {
    let (batch, files) = load_batch(&dir().join("folder"), &ImageTransform::default(), Device::Cpu).unwrap();
    assert_eq!(batch.size(), vec![3, 1, 12, 12]);
    assert_eq!(files.len(), 3);
    assert!(files[0].ends_with("digit_0.png") && files[2].ends_with("digit_2.png"));
    let first = tensor_to_array_f32(&batch.get(0)).unwrap();
    assert!(max_abs(&first, &read_npy_f32(dir().join("grey.npy")).unwrap()) < 1e-7);
}

#[test]
fn bad_image_inputs_are_clear_errors() {
    let err = load_batch(&dir().join("empty_folder"), &ImageTransform::default(), Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("no png/jpg/jpeg"), "{err}");
    let bad = attrib_tests::scratch_dir().join("bad.png");
    std::fs::write(&bad, b"not a png").unwrap();
    let err = load_batch(&bad, &ImageTransform::default(), Device::Cpu).unwrap_err();
    assert!(matches!(err, AttribError::Io { .. }) && err.to_string().contains("cannot read image"), "{err}");
    let err = load_batch(&dir().join("missing.png"), &ImageTransform::default(), Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("no such file"), "{err}");
    let crop = ImageTransform { center_crop: Some((64, 64)), ..Default::default() };
    assert!(load_image(&dir().join("grey.png"), &crop).unwrap_err().to_string().contains("resize first"));
}
