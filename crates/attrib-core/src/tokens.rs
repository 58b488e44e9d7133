//! Integer token-id inputs for layer attribution.
//!
//! A text model takes token ids (int64) and looks them up in an embedding (`nn.Embedding`,
//! `nn.EmbeddingBag`). Ids have no gradient and no path between two of them, so methods that
//! attribute to the model's inputs cannot use them; the layer methods that attribute to the
//! embedding's output (or a later layer) can: their attributed tensor is the layer's value, a
//! float tensor, and the ids only reach the model (Captum's `LayerIntegratedGradients` on an
//! embedding layer). The baseline stays in the input space: token ids too (a pad id such as 0).
//!
//! [`check_token_inputs`] checks such inputs against the model's embeddings before they reach
//! libtorch, where an id out of range is an error on the CPU and a device-side assertion that
//! ends the process on CUDA:
//!
//! - ids must be int64 (or int32) and inside the embedding's rows: `0..rows` of the attributed
//!   layer when it is an embedding, else of the largest embedding of the model;
//! - integer inputs need an embedding in the model;
//! - a layer that is an embedding needs at least one integer input (float values where the
//!   embedding expects ids are an error).

use crate::error::{AttribError, Result, TorchResultExt};
use crate::inputs::Inputs;
use crate::layers::Layer;
use tch::{Kind, Tensor};

/// An embedding submodule of a model (`nn.Embedding` or `nn.EmbeddingBag`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Embedding {
    /// Its submodule path (`embedding`, `encoder.tok`).
    pub name: String,
    /// An `nn.EmbeddingBag`.
    pub bag: bool,
    /// Rows of its weight: ids run from 0 to `rows - 1`.
    pub rows: i64,
}

/// Parse the C++ side's listing (`PATH\tBAG\tROWS` lines).
pub(crate) fn parse_embeddings(listing: &str) -> Vec<Embedding> {
    listing
        .lines()
        .filter_map(|line| {
            let mut f = line.split('\t');
            let name = f.next()?.to_string();
            let bag = f.next()? == "1";
            let rows = f.next()?.parse().ok()?;
            Some(Embedding { name, bag, rows })
        })
        .collect()
}

fn is_ids(t: &Tensor) -> bool {
    matches!(t.kind(), Kind::Int64 | Kind::Int)
}

/// Smallest and largest value of an integer tensor (read on the host).
fn id_range(t: &Tensor) -> Result<(i64, i64)> {
    if t.numel() == 0 {
        return Ok((0, 0));
    }
    let lo = t.f_min().and_then(|m| m.f_to_kind(Kind::Int64)).ctx("reading the smallest token id")?;
    let hi = t.f_max().and_then(|m| m.f_to_kind(Kind::Int64)).ctx("reading the largest token id")?;
    Ok((i64::try_from(&lo).ctx("reading a token id")?, i64::try_from(&hi).ctx("reading a token id")?))
}

/// Check the inputs of a layer method at `layer` of a model with `embeddings` (see the
/// [module docs](self)). Float inputs of a model without embeddings pass unchanged.
pub fn check_token_inputs(inputs: &Inputs, layer: &Layer, embeddings: &[Embedding]) -> Result<()> {
    let at = embeddings.iter().find(|e| e.name == layer.name);
    let ids: Vec<(usize, &Tensor)> = inputs.tensors().iter().enumerate().filter(|(_, t)| is_ids(t)).collect();
    if let Some(e) = at {
        if layer.input && !ids.is_empty() {
            return Err(AttribError::NotApplicable(format!(
                "the input of embedding layer '{}' is the token ids themselves, which have no gradient and no path between \
                 two of them; attribute to the embedding's output (leave out attribute_to_layer_input)",
                e.name
            )));
        }
        if !layer.input && ids.is_empty() {
            let kinds: Vec<String> = inputs.tensors().iter().map(|t| format!("{:?}", t.kind())).collect();
            return Err(AttribError::InputShape(format!(
                "layer '{}' is an nn.{} that looks up integer token ids, but the inputs are {}; pass the token ids \
                 (int64, e.g. an int64 .npy), not float values",
                e.name,
                if e.bag { "EmbeddingBag" } else { "Embedding" },
                kinds.join(", ")
            )));
        }
    }
    if ids.is_empty() {
        return Ok(());
    }
    let (limit_name, limit) = match at.or_else(|| embeddings.iter().max_by_key(|e| e.rows)) {
        Some(e) => (e.name.as_str(), e.rows),
        None => {
            let (i, t) = ids[0];
            return Err(AttribError::InputShape(format!(
                "input {i} holds integers ({:?}), but the model has no nn.Embedding or nn.EmbeddingBag submodule to look \
                 them up; token ids are for text models, other inputs must be floating point",
                t.kind()
            )));
        }
    };
    for (i, t) in ids {
        let (lo, hi) = id_range(t)?;
        if lo < 0 || hi >= limit {
            let bad = if lo < 0 { lo } else { hi };
            return Err(AttribError::InputShape(format!(
                "input {i} holds token id {bad}, outside the embedding '{limit_name}' ({limit} rows: ids 0 to {}); \
                 check the vocabulary the ids were made with",
                limit - 1
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn emb() -> Vec<Embedding> {
        parse_embeddings("embedding\t0\t10\npos\t0\t4\n")
    }

    #[test]
    fn listing_is_parsed() {
        assert_eq!(emb(), vec![Embedding { name: "embedding".into(), bag: false, rows: 10 }, Embedding { name: "pos".into(), bag: false, rows: 4 }]);
        assert!(parse_embeddings("").is_empty());
    }

    #[test]
    fn ids_are_checked_against_the_embedding() {
        let layer = Layer::output("embedding");
        let ok = Tensor::from_slice(&[0i64, 9, 3, 1]).view([2, 2]);
        assert!(check_token_inputs(&Inputs::new(ok), &layer, &emb()).is_ok());
        let high = Tensor::from_slice(&[0i64, 10]).view([1, 2]);
        let msg = check_token_inputs(&Inputs::new(high), &layer, &emb()).unwrap_err().to_string();
        assert!(msg.contains("token id 10") && msg.contains("10 rows"), "{msg}");
        let neg = Tensor::from_slice(&[-1i64, 2]).view([1, 2]);
        assert!(check_token_inputs(&Inputs::new(neg), &layer, &emb()).unwrap_err().to_string().contains("token id -1"));
        // A later layer: the largest embedding bounds the ids.
        let later = Tensor::from_slice(&[7i64, 2]).view([1, 2]);
        assert!(check_token_inputs(&Inputs::new(later), &Layer::output("conv"), &emb()).is_ok());
    }

    #[test]
    fn float_values_at_an_embedding_and_ids_without_one_are_errors() {
        let x = Tensor::zeros([2, 3], (Kind::Float, Device::Cpu));
        let msg = check_token_inputs(&Inputs::new(x.shallow_clone()), &Layer::output("embedding"), &emb()).unwrap_err().to_string();
        assert!(msg.contains("nn.Embedding") && msg.contains("Float"), "{msg}");
        assert!(check_token_inputs(&Inputs::new(x), &Layer::output("conv"), &emb()).is_ok());
        let ids = Tensor::from_slice(&[1i64, 2]).view([1, 2]);
        let msg = check_token_inputs(&Inputs::new(ids), &Layer::output("conv"), &[]).unwrap_err().to_string();
        assert!(msg.contains("no nn.Embedding"), "{msg}");
    }
}
