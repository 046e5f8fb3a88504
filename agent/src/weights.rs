//! A candle `VarMap` as one flat vector of weights, in a stable order (sorted tensor names):
//! what evolution strategies perturb, and what both policy files' networks share.

use candle_core::{Device, Tensor, Var};
use candle_nn::VarMap;

/// The map's variables, sorted by name.
pub(crate) fn sorted(varmap: &VarMap) -> Vec<(String, Var)> {
    let data = varmap.data().lock().map(|d| d.clone()).unwrap_or_default();
    let mut vars: Vec<(String, Var)> = data.into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// How many weights the map holds.
pub(crate) fn count(varmap: &VarMap) -> usize {
    sorted(varmap).iter().map(|(_, v)| v.elem_count()).sum()
}

/// Every weight, flattened in [`sorted`] order.
pub(crate) fn flatten(varmap: &VarMap) -> candle_core::Result<Vec<f32>> {
    let mut out = Vec::new();
    for (_, v) in sorted(varmap) {
        out.extend(v.as_tensor().flatten_all()?.to_vec1::<f32>()?);
    }
    Ok(out)
}

/// Sets every weight from `flat` ([`flatten`]'s order); an error if it is too short.
pub(crate) fn assign(varmap: &VarMap, flat: &[f32]) -> candle_core::Result<()> {
    let mut at = 0;
    for (_, v) in sorted(varmap) {
        let n = v.elem_count();
        let slice = flat.get(at..at + n).ok_or_else(|| {
            candle_core::Error::Msg(format!("weight vector too short: {} < {}", flat.len(), at + n))
        })?;
        v.set(&Tensor::from_slice(slice, v.shape(), &Device::Cpu)?)?;
        at += n;
    }
    Ok(())
}
