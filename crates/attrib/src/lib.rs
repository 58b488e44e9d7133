//! # attrib
//!
//! Explain the predictions of neural networks: which input features made this prediction?
//!
//! attrib runs attribution methods behind one [`Attribution`] trait over libtorch (through the
//! `tch` crate), on CPU or CUDA, chunking the work to a memory budget.
//!
//! ```no_run
//! use attrib::prelude::*;
//!
//! # fn main() -> attrib::Result<()> {
//! let model = TorchScriptModel::load("model.pt", tch::Device::Cpu)?;
//! let x = attrib::convert::read_npy_tensor("input.npy", tch::Device::Cpu)?;
//! let saliency = Saliency::params().abs(true).check()?;
//! let attr = saliency.attribute(&model, &Inputs::new(x), &Target::Argmax)?;
//! attrib::convert::write_npy_tensor("saliency.npy", attr.single()?)?;
//! # Ok(()) }
//! ```

pub mod images;
pub mod methods;
pub mod robust_attribution;
pub mod spec;
pub mod timing;
#[doc(hidden)]
pub mod docs;

pub use attrib_core::*;
pub use attrib_ablation as ablation;
pub use attrib_deeplift as deeplift;
pub use attrib_gradient as gradient;
pub use attrib_layer as layer;
pub use attrib_tensor as tensor;
pub use attrib_tensor::transform::{ImageTransform, Normalize, Resize};
pub use attrib_viz as viz;
pub use attrib_metrics as metrics;
/// Adversarial attacks and robustness (`attrib_robust`): FGSM, PGD, minimal perturbations, attack comparison.
pub use attrib_robust as robust;
/// Atomic output files and output-path checks (`attrib_fs`).
pub use attrib_fs as fs;
pub use attrib_tensor::{convert, DeviceSpec, Evaluator, Expanded, Layout, Variant};
pub use tch;

/// Everything needed to explain a prediction.
pub mod prelude {
    pub use attrib_core::{
        AttribError, Attribution, Attributions, BatchOptions, Baseline, Baselines, FeatureMask, FnModel, ForwardArg,
        Inputs, MemoryFormat, MethodInfo, MethodSpec, Model, ModuleModel, Precision, Target, TorchScriptModel,
    };
    pub use attrib_ablation::{
        FeatureAblation, FeatureAblationParams, FeaturePermutation, FeaturePermutationParams, Occlusion, OcclusionParams,
        SlicParams,
    };
    pub use attrib_ablation::{ExactShapley, ExactShapleyParams, ShapleyValueSampling, ShapleyValueSamplingParams};
    pub use attrib_ablation::{KernelShap, KernelShapParams, Lime, LimeParams, OwenValues, OwenValuesParams};
    pub use attrib_gradient::{
        GradientShap, GradientShapParams, InputXGradient, InputXGradientParams, IntegratedGradients,
        IntegratedGradientsParams, NoiseTunnel, NoiseTunnelParams, NoiseTunnelType, Quadrature, Saliency, SaliencyParams,
    };
    pub use attrib_deeplift::{
        Deconvolution, DeconvolutionParams, DeepLift, DeepLiftParams, DeepLiftShap, DeepLiftShapParams, GuidedBackprop, GuidedBackpropParams,
    };
    pub use attrib_layer::{
        Interpolate, LayerActivation, LayerActivationParams, LayerGradCam, LayerGradCamParams, LayerGradientXActivation, LayerGradientXActivationParams,
    };
    pub use attrib_layer::{GuidedGradCam, GuidedGradCamParams, LayerDeepLift, LayerDeepLiftParams, ScoreCam, ScoreCamParams, ScoreCamScore};
    pub use attrib_tensor::DeviceSpec;
}
