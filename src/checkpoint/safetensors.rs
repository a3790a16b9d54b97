//! Export and import of parameters in the safetensors format
//! (<https://github.com/huggingface/safetensors>), which PyTorch
//! (`safetensors.torch.load_file`), candle and burn read.
//!
//! Each parameter and buffer ([`Module::visit_buffers`], such as a batch norm's
//! `"1.running_mean"`) becomes one `F32` tensor, little-endian and row-major, under its dotted
//! module name (`"0.weight"`, `"2.bias"`): the keys of a PyTorch `nn.Sequential`'s
//! `state_dict` with the same layers (`num_batches_tracked`, an integer in PyTorch, is
//! stored as `F32` too; `load_state_dict` converts it), and weights stored `[out, in]` as PyTorch stores
//! them, so `model.load_state_dict(load_file(path))` takes them as they are.

use super::format::write_atomically;
use super::{check_names, value_problem};
use crate::data::Scaler;
use crate::data::read::read_regular_file;
use crate::error::{Error, Result};
use crate::nn::Module;
use crate::tensor::{Elem, Tensor};
use safetensors::{Dtype, SafeTensorError, SafeTensors, tensor::TensorView};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

/// `model`'s parameters and buffers in the safetensors format, with the metadata
/// `{"format": "pt"}` (the tag Hugging Face's loaders look for, and all that PyTorch's
/// `safetensors.torch.save_file` writes). The same model always gives the same bytes (one
/// metadata entry: the safetensors crate writes several in a random order).
///
/// # Errors
/// [`Error::InvalidArgument`] if the safetensors crate refuses the tensors (not expected
/// for a model's parameters).
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Linear};
/// use tapegrad::checkpoint::safetensors_bytes;
/// let model = Linear::from_parts(tensor::from_vec(vec![1.0, 2.0], &[1, 2])?, None)?;
/// let bytes = safetensors_bytes(&model)?;
/// // an 8-byte header length, the JSON header, then the values as little-endian f32
/// let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
/// let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
/// assert!(header.contains("\"weight\"") && header.contains("\"F32\""));
/// assert_eq!(bytes[8 + n..], [1.0f32.to_le_bytes(), 2.0f32.to_le_bytes()].concat());
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub fn safetensors_bytes(model: &dyn Module) -> Result<Vec<u8>> {
    bytes_with_scaler(model, None)
}

/// [`safetensors_bytes`], plus, when `scaler` is given, its factors as the 1-D tensors
/// `"scaler.scale"` and `"scaler.shift"` (the transform is `x·scale + shift` per feature).
fn bytes_with_scaler(model: &dyn Module, scaler: Option<&Scaler>) -> Result<Vec<u8>> {
    let little_endian = |values: &mut dyn Iterator<Item = &Elem>| -> Vec<u8> {
        values.flat_map(|v| v.to_le_bytes()).collect()
    };
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    model.visit_params(&mut |name, p| {
        // `iter` walks in logical (row-major) order whatever the memory layout
        let bytes = little_endian(&mut p.value().iter());
        tensors.push((name.to_string(), p.value().shape().to_vec(), bytes));
    });
    model.visit_buffers(&mut |name, b| {
        let bytes = little_endian(&mut b.iter());
        tensors.push((name.to_string(), b.shape().to_vec(), bytes));
    });
    if let Some(scaler) = scaler {
        for (name, values) in [
            ("scaler.scale", scaler.scale()),
            ("scaler.shift", scaler.shift()),
        ] {
            let bytes = little_endian(&mut values.iter());
            tensors.push((name.to_string(), vec![values.len()], bytes));
        }
    }
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
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize(views, Some(metadata)).map_err(refuse)
}

/// Writes `model`'s parameters and buffers to `path` in the safetensors format (see
/// [`safetensors_bytes`]), atomically as [`Checkpoint::save`](crate::checkpoint::Checkpoint::save) does.
///
/// # Errors
/// [`Error::Io`] naming `path` when it cannot be written, or is refused as
/// [`Checkpoint::save`](crate::checkpoint::Checkpoint::save) refuses it (a read-only file,
/// or a path that exists but is not a regular file).
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Linear};
/// use tapegrad::checkpoint::{export_safetensors, import_safetensors};
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
    export_with_scaler(model, None, path.as_ref())
}

/// [`export_safetensors`], plus the scaler's factors as `"scaler.scale"` and
/// `"scaler.shift"` when one is given (what [`Predictor::export_safetensors`] writes).
///
/// [`Predictor::export_safetensors`]: crate::Predictor::export_safetensors
pub(crate) fn export_with_scaler(
    model: &dyn Module,
    scaler: Option<&Scaler>,
    path: &Path,
) -> Result<()> {
    let bytes = bytes_with_scaler(model, scaler)?;
    write_atomically("safetensors export", path, &bytes, |file, bytes| {
        file.write_all(bytes)
    })
}

/// Reads parameters and buffers from a safetensors file into `model`, matching them by name;
/// the file must hold exactly the model's parameters and buffers, as tensors of the same
/// shapes (other tools' names must follow the module naming, e.g. `"0.weight"`). Nothing
/// changes unless everything fits. Tensors are `F32`, or converted to it as PyTorch's
/// `load_state_dict` converts what it copies into an `f32` model: `F64`, `F16`, `BF16` and
/// integer tensors (a PyTorch batch norm's `num_batches_tracked` is `I64`) are read too.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read or is not a regular file; [`Error::Decode`]
/// naming the file for bytes
/// that are not safetensors, a name that appears twice in the header (the `safetensors`
/// crate would silently keep one of the two), a tensor of another dtype (booleans, 8-bit
/// floats), a tensor whose bytes are not what its dtype and shape need (naming it, with
/// both sizes), or a NaN or infinite value, or an `F64` beyond `f32`'s range (naming the
/// tensor and the element, with the value as the file holds it); [`Error::ParamMismatch`] naming
/// the parameter and both shapes for a missing, extra or differently shaped tensor.
///
/// # Examples
/// ```
/// use tapegrad::{tensor, Linear};
/// use tapegrad::checkpoint::{export_safetensors, import_safetensors};
/// let path = std::env::temp_dir().join(format!("tapegrad-doc-import-{}.safetensors", std::process::id()));
/// let saved = Linear::from_parts(tensor::from_vec(vec![3.0, -1.0], &[2, 1])?, None)?;
/// export_safetensors(&saved, &path)?;
/// let mut model = Linear::from_parts(tensor::zeros(&[2, 1]), None)?;
/// import_safetensors(&mut model, &path)?;
/// assert_eq!(model.weight().value(), saved.weight().value());
/// // a model with a bias finds no "bias" tensor in the file
/// let mut biased = Linear::from_parts(tensor::zeros(&[2, 1]), Some(tensor::zeros(&[2])))?;
/// assert!(import_safetensors(&mut biased, &path).unwrap_err().to_string().contains("bias"));
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), tapegrad::Error>(())
/// ```
pub fn import_safetensors(model: &mut dyn Module, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let bytes = read_regular_file(path, "safetensors import")?;
    assign(model, read_tensors(&bytes, path)?, path)
}

/// Reads a file of [`Predictor::export_safetensors`](crate::Predictor::export_safetensors)
/// into `model` as [`import_safetensors`] does, and returns the scaler its `scaler.scale`
/// and `scaler.shift` tensors hold, if it has them.
///
/// # Errors
/// As [`import_safetensors`]; [`Error::Decode`] when only one of the two scaler tensors is
/// there, or they do not make a valid scaler.
pub(crate) fn import_with_scaler(model: &mut dyn Module, path: &Path) -> Result<Option<Scaler>> {
    let bytes = read_regular_file(path, "safetensors import")?;
    let mut tensors = read_tensors(&bytes, path)?;
    let mut take = |name: &str| {
        let at = tensors.iter().position(|(n, _)| n == name)?;
        Some(tensors.remove(at).1.iter().copied().collect::<Vec<Elem>>())
    };
    let scaler = match (take("scaler.scale"), take("scaler.shift")) {
        (None, None) => None,
        (Some(scale), Some(shift)) => Some(
            Scaler::affine_per_feature(scale, shift)
                .map_err(|e| Error::decode(path, format!("safetensors: {e}")))?,
        ),
        _ => {
            return Err(Error::decode(
                path,
                "safetensors: expected both scaler.scale and scaler.shift, found one",
            ));
        }
    };
    assign(model, tensors, path)?;
    Ok(scaler)
}

/// Checks that `tensors` are exactly `model`'s parameters and buffers, with their shapes,
/// then writes them in.
fn assign(model: &mut dyn Module, tensors: Vec<(String, Tensor)>, path: &Path) -> Result<()> {
    let mut shapes = Vec::new();
    model.visit_params(&mut |name, p| shapes.push((name.to_string(), p.value().shape().to_vec())));
    model.visit_buffers(&mut |name, b| shapes.push((name.to_string(), b.shape().to_vec())));
    check_names(&tensors, &shapes, path)?;
    let values: HashMap<&str, &Tensor> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    model.visit_params_mut(&mut |name, p| p.value_mut().assign(values[name]));
    model.visit_buffers_mut(&mut |name, b| b.assign(values[name]));
    Ok(())
}

/// Every tensor of a safetensors buffer as an `f32` [`Tensor`], in the file's order,
/// refusing a name that appears twice in the header and a value that is not finite.
fn read_tensors(bytes: &[u8], path: &Path) -> Result<Vec<(String, Tensor)>> {
    // the safetensors crate reads the header into a map, which keeps one of two entries
    // with the same name (and may then fail on the data the other one covered): scan the
    // header's own keys first
    let mut seen = std::collections::HashSet::new();
    let mut keys = header_entries(bytes).into_iter().map(|(key, _)| key);
    if let Some(name) = keys.find(|k| !seen.insert(k.clone())) {
        return Err(Error::decode(
            path,
            format!("safetensors: expected unique names in the header, found \"{name}\" twice"),
        ));
    }
    let file = SafeTensors::deserialize(bytes).map_err(|e| {
        let message = match e {
            SafeTensorError::TensorInvalidInfo => size_mismatch(bytes),
            _ => None,
        };
        Error::decode(
            path,
            format!(
                "safetensors: {}",
                message.unwrap_or_else(|| format!("expected a valid file, found: {e}"))
            ),
        )
    })?;
    let mut out = Vec::with_capacity(file.len());
    for (name, view) in file.iter() {
        let Some(values) = as_f32(view.dtype(), view.data()) else {
            return Err(Error::decode(
                path,
                format!(
                    "safetensors: tensor \"{name}\": expected dtype F32 (or F64, F16, BF16 or \
                     an integer type, converted), found {:?}",
                    view.dtype()
                ),
            ));
        };
        if view.dtype() == Dtype::F64
            && let Some((index, value)) = (view.data().chunks_exact(8))
                .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
                .enumerate()
                .find(|(_, v)| v.is_finite() && !(*v as Elem).is_finite())
        {
            return Err(Error::decode(
                path,
                format!(
                    "safetensors: tensor \"{name}\" element {index}: expected a value within \
                     f32's range (magnitude at most {:e}), found {value:e} (F64), out of f32 \
                     range",
                    Elem::MAX
                ),
            ));
        }
        if let Some(problem) = value_problem(name, values.iter()) {
            return Err(Error::decode(
                path,
                format!("safetensors: tensor \"{name}\" {problem}"),
            ));
        }
        let tensor = Tensor::from_shape_vec(view.shape().to_vec(), values).map_err(|e| {
            Error::decode(
                path,
                format!(
                    "safetensors: tensor \"{name}\": expected {} bytes for shape {:?}, found {} ({e})",
                    (view.shape().iter())
                        .try_fold(4usize, |n, &d| n.checked_mul(d))
                        .map_or("more than usize::MAX".into(), |n| n.to_string()),
                    view.shape(),
                    view.data().len()
                ),
            )
        })?;
        out.push((name.to_string(), tensor));
    }
    Ok(out)
}

/// The little-endian elements `data` of dtype `dtype` as `f32`, converted as PyTorch's
/// `load_state_dict` converts what it copies into an `f32` parameter: `F64` rounded (a value
/// beyond `f32`'s range becomes infinite; the caller refuses it first, as it is in the file), `F16` and `BF16` exactly,
/// integers rounded to the nearest `f32` (exact up to 2²⁴; a batch norm's
/// `num_batches_tracked` is `I64`); `None` for other dtypes (booleans, 8-bit and 4-bit floats,
/// complex numbers).
fn as_f32(dtype: Dtype, data: &[u8]) -> Option<Vec<Elem>> {
    fn each<const N: usize>(data: &[u8], f: impl Fn([u8; N]) -> Elem) -> Vec<Elem> {
        let array = |b: &[u8]| b.try_into().expect("chunks of N bytes");
        data.chunks_exact(N).map(|b| f(array(b))).collect()
    }
    Some(match dtype {
        Dtype::F32 => each(data, f32::from_le_bytes),
        Dtype::F64 => each(data, |b| f64::from_le_bytes(b) as f32),
        Dtype::F16 => each(data, |b| f16_to_f32(u16::from_le_bytes(b))),
        Dtype::BF16 => each(data, |b| {
            f32::from_bits(u32::from(u16::from_le_bytes(b)) << 16)
        }),
        Dtype::U8 => each(data, |b: [u8; 1]| f32::from(b[0])),
        Dtype::I8 => each(data, |b| f32::from(i8::from_le_bytes(b))),
        Dtype::U16 => each(data, |b| f32::from(u16::from_le_bytes(b))),
        Dtype::I16 => each(data, |b| f32::from(i16::from_le_bytes(b))),
        Dtype::U32 => each(data, |b| u32::from_le_bytes(b) as f32),
        Dtype::I32 => each(data, |b| i32::from_le_bytes(b) as f32),
        Dtype::U64 => each(data, |b| u64::from_le_bytes(b) as f32),
        Dtype::I64 => each(data, |b| i64::from_le_bytes(b) as f32),
        _ => return None,
    })
}

/// An IEEE 754 half-precision number's value: sign, 5 exponent bits (bias 15) and 10
/// fraction bits, every one of which an `f32` holds exactly.
fn f16_to_f32(half: u16) -> f32 {
    let sign = u32::from(half >> 15) << 31;
    let exponent = u32::from((half >> 10) & 0x1f);
    let fraction = u32::from(half & 0x3ff);
    let magnitude = match exponent {
        // zero and subnormals: fraction · 2⁻²⁴
        0 => (fraction as f32 * f32::powi(2.0, -24)).to_bits(),
        // infinities and NaNs
        0x1f => 0x7f80_0000 | (fraction << 13),
        _ => ((exponent + 127 - 15) << 23) | (fraction << 13),
    };
    f32::from_bits(sign | magnitude)
}

/// The entries of the top-level JSON object in the header of a safetensors buffer: each key
/// (a tensor name or `__metadata__`), in file order, with JSON escapes decoded, so that
/// `"a"` and `"\u0061"` are one name as they are to a JSON reader, and the raw text of its
/// value. Any bytes are safe to scan; for a header that is not valid JSON the entries are
/// only a guess (such a file is refused anyway).
fn header_entries(bytes: &[u8]) -> Vec<(String, &str)> {
    let header = (bytes.get(..8))
        .and_then(|n| usize::try_from(u64::from_le_bytes(n.try_into().ok()?)).ok())
        .and_then(|n| bytes.get(8..8usize.checked_add(n)?))
        .and_then(|h| std::str::from_utf8(h).ok())
        .unwrap_or("");
    let mut entries = Vec::new();
    let (mut depth, mut key_next) = (0usize, false);
    // the key read last, and where its value starts once its `:` is seen
    let (mut key, mut value_start): (Option<String>, Option<usize>) = (None, None);
    let mut chars = header.chars();
    loop {
        let at = header.len() - chars.as_str().len();
        let Some(c) = chars.next() else { break };
        let mut end_value = || {
            if let (Some(key), Some(start)) = (key.take(), value_start.take()) {
                entries.push((key, header[start..at].trim()));
            }
        };
        match c {
            '{' | '[' => {
                depth += 1;
                key_next = depth == 1 && c == '{';
            }
            '}' | ']' => {
                if depth == 1 {
                    end_value();
                }
                depth = depth.saturating_sub(1);
                key_next = false;
            }
            ',' => {
                if depth == 1 {
                    end_value();
                }
                key_next = depth == 1;
            }
            ':' if depth == 1 => value_start = Some(at + 1),
            '"' => {
                let string = json_string(&mut chars);
                if key_next {
                    key = Some(string);
                }
                key_next = false;
            }
            c if c.is_whitespace() => {}
            _ => key_next = false,
        }
    }
    entries
}

/// For a header whose tensor sizes the safetensors crate refuses ("invalid shape, data
/// type, or offset for tensor", without a name), the first tensor whose bytes
/// (`data_offsets`) are not what its dtype and shape need, with both; `None` when no
/// entry can be read as such.
fn size_mismatch(bytes: &[u8]) -> Option<String> {
    use serde::Deserialize;
    use serde::de::value::{Error as ValueError, StrDeserializer};
    /// The text after `"name":` in a JSON object's text.
    fn field<'v>(value: &'v str, name: &str) -> Option<&'v str> {
        let after = &value[value.find(&format!("\"{name}\""))? + name.len() + 2..];
        Some(after.trim_start().strip_prefix(':')?.trim_start())
    }
    /// The unsigned integers of a JSON array at the start of `text`.
    fn numbers(text: &str) -> Option<Vec<usize>> {
        let list = text.strip_prefix('[')?.split(']').next()?.trim();
        if list.is_empty() {
            return Some(Vec::new());
        }
        list.split(',').map(|n| n.trim().parse().ok()).collect()
    }
    header_entries(bytes).into_iter().find_map(|(name, value)| {
        let dtype_name = field(value, "dtype")?
            .strip_prefix('"')?
            .split('"')
            .next()?;
        let shape = numbers(field(value, "shape")?)?;
        let [start, end] = numbers(field(value, "data_offsets")?)?[..] else {
            return None;
        };
        let dtype = Dtype::deserialize(StrDeserializer::<ValueError>::new(dtype_name)).ok()?;
        let needed = (shape
            .iter()
            .try_fold(dtype.bitsize(), |n, &d| n.checked_mul(d)))
        .map(|bits| bits.div_ceil(8));
        let found = end.checked_sub(start)?;
        (needed != Some(found)).then(|| {
            let needed = needed.map_or("more than usize::MAX".into(), |n| n.to_string());
            format!(
                "tensor \"{name}\": expected {needed} bytes for dtype {dtype_name} and shape \
                 {shape:?}, found {found} (data_offsets [{start}, {end}])"
            )
        })
    })
}

/// Reads a JSON string whose opening quote has been consumed, up to and including its
/// closing quote, decoding escapes (`\uXXXX` as UTF-16, pairs included).
fn json_string(chars: &mut std::str::Chars<'_>) -> String {
    let mut out = String::new();
    let mut units: Vec<u16> = Vec::new();
    let flush = |units: &mut Vec<u16>, out: &mut String| {
        out.extend(
            char::decode_utf16(units.drain(..)).map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER)),
        );
    };
    while let Some(c) = chars.next() {
        if c == '\\' {
            let Some(escaped) = chars.next() else { break };
            if escaped == 'u' {
                let hex: String = chars.by_ref().take(4).collect();
                units.push(u16::from_str_radix(&hex, 16).unwrap_or(0xFFFD));
                continue;
            }
            flush(&mut units, &mut out);
            out.push(match escaped {
                'n' => '\n',
                't' => '\t',
                'r' => '\r',
                'b' => '\u{8}',
                'f' => '\u{c}',
                other => other, // '"', '\\' and '/'
            });
        } else {
            flush(&mut units, &mut out);
            if c == '"' {
                break;
            }
            out.push(c);
        }
    }
    flush(&mut units, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Init, Linear, Relu, Sequential};
    use crate::{ChaCha8Rng, SeedableRng};

    fn keys(bytes: &[u8]) -> Vec<String> {
        header_entries(bytes)
            .into_iter()
            .map(|(key, _)| key)
            .collect()
    }

    #[test]
    fn a_negative_running_variance_is_refused() {
        let mut norm = crate::nn::BatchNorm1d::new(3).unwrap();
        norm.visit_buffers_mut(&mut |name, b| {
            if name == "running_var" {
                b[[2]] = -1.0;
            }
        });
        let dir = std::env::temp_dir().join(format!("tapegrad-st-var-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bn.safetensors");
        export_safetensors(&norm, &path).unwrap();
        let mut fresh = crate::nn::BatchNorm1d::new(3).unwrap();
        let err = import_safetensors(&mut fresh, &path)
            .unwrap_err()
            .to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            err.ends_with("tensor \"running_var\" element 2: expected a variance >= 0, found -1"),
            "{err}"
        );
        assert_eq!(fresh.running_var(), Some(crate::tensor::ones(&[3])));
    }

    #[test]
    fn the_same_model_gives_the_same_bytes() {
        let model = mlp(0, 4);
        let first = safetensors_bytes(&model).unwrap();
        for _ in 0..20 {
            assert_eq!(safetensors_bytes(&model).unwrap(), first);
        }
    }

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

    /// A safetensors buffer with `header` as its JSON header and `data` after it.
    fn raw(header: &str, data: &[f32]) -> Vec<u8> {
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend(data.iter().flat_map(|v| v.to_le_bytes()));
        bytes
    }

    #[test]
    fn duplicate_names_are_errors_even_when_the_crate_keeps_one() {
        let entry =
            |offsets: &str| format!(r#"{{"dtype":"F32","shape":[1],"data_offsets":{offsets}}}"#);
        // both entries describe the same bytes, so the map the crate builds is valid
        let same = format!(
            r#"{{"weight":{},"weight":{}}}"#,
            entry("[0,4]"),
            entry("[0,4]")
        );
        let bytes = raw(&same, &[1.0]);
        assert_eq!(SafeTensors::deserialize(&bytes).unwrap().len(), 1);
        let err = read_tensors(&bytes, Path::new("dup.safetensors"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "dup.safetensors: safetensors: expected unique names in the header, found \"weight\" twice"
        );
        // an escaped spelling of the same name, with metadata, nesting and spaces around
        let escaped = format!(
            r#"{{ "__metadata__" : {{"format":"pt","a":"{{\"weight\":1}}"}} , "bias":{} , "w\u0065ight":{}, "weight" :{} }}"#,
            entry("[0,4]"),
            entry("[4,8]"),
            entry("[4,8]")
        );
        let bytes = raw(&escaped, &[1.0, 2.0]);
        assert_eq!(keys(&bytes), ["__metadata__", "bias", "weight", "weight"]);
        let err = read_tensors(&bytes, Path::new("dup.safetensors"))
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("found \"weight\" twice"), "{err}");
        // distinct names pass, and surrogate pairs decode
        let fine = format!(
            r#"{{"\ud83d\ude00":{},"b\"c":{}}}"#,
            entry("[0,4]"),
            entry("[4,8]")
        );
        let bytes = raw(&fine, &[1.0, 2.0]);
        assert_eq!(keys(&bytes), ["\u{1F600}", "b\"c"]);
        assert_eq!(read_tensors(&bytes, Path::new("x")).unwrap().len(), 2);
    }

    #[test]
    fn bytes_that_do_not_fit_dtype_and_shape_are_errors_naming_the_tensor() {
        // "b" declares 2 × 3 F32 values (24 bytes) over 20
        let header = r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[2, 3],"data_offsets":[4,24]}}"#;
        let bytes = raw(header, &[0.0; 6]);
        let err = read_tensors(&bytes, Path::new("m.safetensors"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "m.safetensors: safetensors: tensor \"b\": expected 24 bytes for dtype F32 and \
             shape [2, 3], found 20 (data_offsets [4, 24])"
        );
        let header = r#"{"__metadata__":{"format":"pt"},"w":{"dtype":"F64","shape":[],"data_offsets":[0,4]}}"#;
        let err = read_tensors(&raw(header, &[0.0]), Path::new("m.safetensors"))
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with(
                "tensor \"w\": expected 8 bytes for dtype F64 and shape [], found 4 \
                 (data_offsets [0, 4])"
            ),
            "{err}"
        );
    }

    #[test]
    fn an_f64_beyond_f32_range_is_reported_as_it_is_in_the_file() {
        let values = [0.5f64, -1e300];
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let view = TensorView::new(Dtype::F64, vec![2], &data).unwrap();
        let bytes = safetensors::serialize([("bias", view)], None).unwrap();
        let err = read_tensors(&bytes, Path::new("big.safetensors"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "big.safetensors: safetensors: tensor \"bias\" element 1: expected a value within \
             f32's range (magnitude at most 3.4028235e38), found -1e300 (F64), out of f32 range"
        );
        // an F64 infinity is infinite in the file too
        let data: Vec<u8> = [f64::INFINITY]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let view = TensorView::new(Dtype::F64, vec![1], &data).unwrap();
        let bytes = safetensors::serialize([("bias", view)], None).unwrap();
        let err = read_tensors(&bytes, Path::new("inf.safetensors"))
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("element 0: expected a finite value, found inf"),
            "{err}"
        );
    }

    #[test]
    fn non_finite_values_are_errors_naming_tensor_and_element() {
        for (bad, shown) in [
            (f32::NAN, "NaN"),
            (f32::INFINITY, "inf"),
            (f32::NEG_INFINITY, "-inf"),
        ] {
            let values = [0.5, 1.0, bad, 2.0];
            let view_bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            let view = TensorView::new(Dtype::F32, vec![2, 2], &view_bytes).unwrap();
            let bytes = safetensors::serialize([("0.weight", view)], None).unwrap();
            let err = read_tensors(&bytes, Path::new("nan.safetensors"))
                .unwrap_err()
                .to_string();
            assert_eq!(
                err,
                format!(
                    "nan.safetensors: safetensors: tensor \"0.weight\" element 2: expected a finite value, found {shown}"
                )
            );
        }
    }

    #[test]
    fn other_float_and_integer_dtypes_are_converted_as_pytorch_converts_them() {
        let cases: [(Dtype, Vec<u8>, Vec<f32>); 7] = [
            (
                Dtype::F64,
                [0.1f64, -2.5, 1e300]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
                vec![0.1, -2.5, f32::INFINITY],
            ),
            // 1, −2, 65504 (the largest half), 2⁻²⁴ (the smallest subnormal), −0, inf
            (
                Dtype::F16,
                [0x3c00u16, 0xc000, 0x7bff, 0x0001, 0x8000, 0x7c00]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
                vec![1.0, -2.0, 65504.0, f32::powi(2.0, -24), -0.0, f32::INFINITY],
            ),
            (
                Dtype::BF16,
                [0x3f80u16, 0xc0a0]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
                vec![1.0, -5.0],
            ),
            (
                Dtype::I64,
                [7i64, -3, 1 << 40]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
                vec![7.0, -3.0, 1_099_511_627_776.0],
            ),
            (Dtype::U8, vec![0, 255], vec![0.0, 255.0]),
            (Dtype::I8, vec![0x80, 1], vec![-128.0, 1.0]),
            (
                Dtype::U32,
                [u32::MAX].iter().flat_map(|v| v.to_le_bytes()).collect(),
                vec![4_294_967_296.0],
            ),
        ];
        for (dtype, data, expected) in cases {
            let converted = as_f32(dtype, &data).unwrap();
            assert_eq!(converted.len(), expected.len(), "{dtype:?}");
            for (a, b) in converted.iter().zip(&expected) {
                assert!(
                    a == b && a.is_sign_negative() == b.is_sign_negative(),
                    "{dtype:?}: {a} vs {b}"
                );
            }
        }
        assert!(as_f32(Dtype::F16, &0x7e00u16.to_le_bytes()).unwrap()[0].is_nan());
        // a PyTorch batch norm's `num_batches_tracked` (I64, shape []) reads as a number
        let count = 42i64.to_le_bytes();
        let view = TensorView::new(Dtype::I64, vec![], &count).unwrap();
        let bytes = safetensors::serialize([("1.num_batches_tracked", view)], None).unwrap();
        let tensors = read_tensors(&bytes, Path::new("bn.safetensors")).unwrap();
        assert_eq!(tensors[0].1, ndarray::arr0(42.0).into_dyn());
        // a double beyond f32's range is refused, shown as it is in the file
        let big = 1e300f64.to_le_bytes();
        let view = TensorView::new(Dtype::F64, vec![1], &big).unwrap();
        let bytes = safetensors::serialize([("weight", view)], None).unwrap();
        let err = read_tensors(&bytes, Path::new("x"))
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("element 0: expected a value within f32's range (magnitude at most 3.4028235e38), found 1e300 (F64), out of f32 range"),
            "{err}"
        );
    }

    #[test]
    fn wrong_dtype_and_garbage_are_errors() {
        let data = [1u8; 2];
        let view = TensorView::new(Dtype::BOOL, vec![2], &data).unwrap();
        let bytes = safetensors::serialize([("weight", view)], None).unwrap();
        let err = read_tensors(&bytes, Path::new("x.safetensors"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "x.safetensors: safetensors: tensor \"weight\": expected dtype F32 (or F64, F16, \
             BF16 or an integer type, converted), found BOOL"
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
