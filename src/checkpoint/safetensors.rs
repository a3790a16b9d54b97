//! Export and import of parameters in the safetensors format
//! (<https://github.com/huggingface/safetensors>), which PyTorch
//! (`safetensors.torch.load_file`), candle and burn read.
//!
//! Each parameter becomes one `F32` tensor, little-endian and row-major, under its dotted
//! module name (`"0.weight"`, `"2.bias"`): the keys of a PyTorch `nn.Sequential`'s
//! `state_dict` with the same layers, and weights stored `[out, in]` as PyTorch stores
//! them, so `model.load_state_dict(load_file(path))` takes them as they are.

use super::check_names;
use super::format::write_atomically;
use crate::error::{Error, Result};
use crate::nn::Module;
use crate::tensor::{Elem, Tensor};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

/// `model`'s parameters in the safetensors format, with the metadata
/// `{"format": "pt", "producer": "tapegrad"}` (the `"pt"` tag is what Hugging Face's
/// loaders look for).
///
/// # Errors
/// [`Error::InvalidArgument`] if the safetensors crate refuses the tensors (not expected
/// for a model's parameters).
pub fn safetensors_bytes(model: &dyn Module) -> Result<Vec<u8>> {
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    model.visit_params(&mut |name, p| {
        // `iter` walks in logical (row-major) order whatever the memory layout
        let bytes = p.value().iter().flat_map(|v| v.to_le_bytes()).collect();
        tensors.push((name.to_string(), p.value().shape().to_vec(), bytes));
    });
    let refuse = |e: safetensors::SafeTensorError| Error::InvalidArgument {
        op: "safetensors export",
        message: format!("expected tensors the format accepts, found an error: {e}"),
    };
    let views = (tensors.iter())
        .map(|(name, shape, bytes)| {
            Ok((
                name.as_str(),
                TensorView::new(Dtype::F32, shape.clone(), bytes)?,
            ))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(refuse)?;
    let metadata = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        ("producer".to_string(), "tapegrad".to_string()),
    ]);
    safetensors::serialize(views, Some(metadata)).map_err(refuse)
}

/// Writes `model`'s parameters to `path` in the safetensors format (see
/// [`safetensors_bytes`]), atomically as [`Checkpoint::save`](crate::Checkpoint::save) does.
///
/// # Errors
/// [`Error::Io`] naming `path` when it cannot be written.
///
/// # Examples
/// ```
/// use tapegrad::{export_safetensors, import_safetensors, tensor, Linear};
/// let path = std::env::temp_dir().join(format!("tapegrad-doc-{}.safetensors", std::process::id()));
/// let w = tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2])?;
/// let model = Linear::from_parts(w, Some(tensor::from_vec(vec![0.5, 0.0, -0.5], &[3])?))?;
/// export_safetensors(&model, &path)?;
/// let mut copy = Linear::from_parts(tensor::zeros(&[3, 2]), Some(tensor::zeros(&[3])))?;
/// import_safetensors(&mut copy, &path)?;
/// assert_eq!(copy.weight().value(), model.weight().value());
/// assert_eq!(copy.bias().unwrap().value()[[2]], -0.5);
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub fn export_safetensors(model: &dyn Module, path: impl AsRef<Path>) -> Result<()> {
    let bytes = safetensors_bytes(model)?;
    write_atomically(path.as_ref(), &bytes, |file, bytes| file.write_all(bytes))
}

/// Reads parameters from a safetensors file into `model`, matching them by name; the file
/// must hold exactly the model's parameters, as `F32` tensors of the same shapes (other
/// tools' names must follow the module naming, e.g. `"0.weight"`). Nothing changes unless
/// everything fits.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read; [`Error::Decode`] naming the file for bytes
/// that are not safetensors or a tensor that is not `F32`; [`Error::ParamMismatch`] naming
/// the parameter and both shapes for a missing, extra or differently shaped tensor.
pub fn import_safetensors(model: &mut dyn Module, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let tensors = read_tensors(&bytes, path)?;
    let mut shapes = Vec::new();
    model.visit_params(&mut |name, p| shapes.push((name.to_string(), p.value().shape().to_vec())));
    check_names(&tensors, &shapes, path)?;
    let values: HashMap<&str, &Tensor> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    model.visit_params_mut(&mut |name, p| p.value_mut().assign(values[name]));
    Ok(())
}

/// Every tensor of a safetensors buffer as an `f32` [`Tensor`], in the file's order.
fn read_tensors(bytes: &[u8], path: &Path) -> Result<Vec<(String, Tensor)>> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| {
        Error::decode(
            path,
            format!("safetensors: expected a valid file, found: {e}"),
        )
    })?;
    let mut out = Vec::with_capacity(file.len());
    for (name, view) in file.iter() {
        if view.dtype() != Dtype::F32 {
            return Err(Error::decode(
                path,
                format!(
                    "safetensors: tensor \"{name}\": expected dtype F32, found {:?}",
                    view.dtype()
                ),
            ));
        }
        let values: Vec<Elem> = (view.data().chunks_exact(4))
            .map(|b| Elem::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let tensor = Tensor::from_shape_vec(view.shape().to_vec(), values).map_err(|e| {
            Error::decode(
                path,
                format!(
                    "safetensors: tensor \"{name}\": expected {} bytes for shape {:?}, found {} ({e})",
                    4 * view.shape().iter().product::<usize>(),
                    view.shape(),
                    view.data().len()
                ),
            )
        })?;
        out.push((name.to_string(), tensor));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Init, Linear, Relu, Sequential};
    use crate::{ChaCha8Rng, SeedableRng};

    fn mlp(seed: u64, hidden: usize) -> Sequential {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Sequential::new(vec![
            Box::new(Linear::new(3, hidden, Init::default(), &mut rng).unwrap()),
            Box::new(Relu),
            Box::new(Linear::new(hidden, 2, Init::default(), &mut rng).unwrap()),
        ])
        .unwrap()
    }

    #[test]
    fn layout_is_f32_little_endian_row_major_under_module_names() {
        let w = tensor_of(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2]);
        // stored transposed in memory: the file must hold the logical order anyway
        let t = w.t().to_owned();
        let model = Linear::from_parts(t.clone(), None).unwrap();
        let bytes = safetensors_bytes(&model).unwrap();
        let file = SafeTensors::deserialize(&bytes).unwrap();
        let view = file.tensor("weight").unwrap();
        assert_eq!((view.dtype(), view.shape()), (Dtype::F32, &[2usize, 3][..]));
        let expected: Vec<u8> = [1f32, 3., 5., 2., 4., 6.]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(view.data(), &expected[..]);
        let names = mlp(0, 4);
        let file_bytes = safetensors_bytes(&names).unwrap();
        let mut keys = SafeTensors::deserialize(&file_bytes)
            .unwrap()
            .names()
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>();
        keys.sort();
        assert_eq!(keys, ["0.bias", "0.weight", "2.bias", "2.weight"]);
    }

    fn tensor_of(values: &[f32], shape: &[usize]) -> Tensor {
        Tensor::from_shape_vec(shape.to_vec(), values.to_vec()).unwrap()
    }

    #[test]
    fn wrong_dtype_and_garbage_are_errors() {
        let data = [0u8; 4];
        let view = TensorView::new(Dtype::I32, vec![1], &data).unwrap();
        let bytes = safetensors::serialize([("weight", view)], None).unwrap();
        let err = read_tensors(&bytes, Path::new("x.safetensors"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "x.safetensors: safetensors: tensor \"weight\": expected dtype F32, found I32"
        );
        let err = read_tensors(b"not a safetensors file", Path::new("y"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("y: safetensors: expected a valid file"),
            "{err}"
        );
    }
}
