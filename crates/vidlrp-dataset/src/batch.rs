//! How many snippets of one video the data-set runner explains as one batch.

use std::fmt;
use std::str::FromStr;

use vidlrp_core::{Backend, Sequential};

/// The batch size of [`crate::RunOptions`]: a number, or `auto`, which the runner resolves
/// from the network once it is built ([`BatchSize::resolve`]).
///
/// ```
/// use vidlrp_dataset::BatchSize;
/// assert_eq!("auto".parse::<BatchSize>(), Ok(BatchSize::Auto));
/// assert_eq!("4".parse::<BatchSize>(), Ok(BatchSize::Fixed(4)));
/// assert!("0".parse::<BatchSize>().is_err());
/// assert_eq!(BatchSize::Fixed(4).to_string(), "4");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BatchSize {
    /// As many snippets as fit [`BatchSize::AUTO_BYTES`] of activations, at most
    /// [`BatchSize::AUTO_MAX`].
    #[default]
    Auto,
    /// This many snippets (at least 1).
    Fixed(usize),
}

impl BatchSize {
    /// The activation memory `auto` allows one batch: 256 MiB. A constant, not a share of
    /// this machine's memory, so that the same model gets the same batch (and the same
    /// rounding) everywhere.
    pub const AUTO_BYTES: usize = 256 << 20;
    /// The largest batch `auto` picks: 8 (on the CPU the DTD time per snippet of the
    /// reproduction's model stops falling by then: 13.7 ms alone, 10.4 ms in batches of 4,
    /// 9.6 ms in batches of 32; benches/README.md).
    pub const AUTO_MAX: usize = 8;

    /// The batch for `net` on inputs `[C, T, H, W]`: a fixed size as given; `auto` from an
    /// estimate of one snippet's activations during an explanation (every layer's output,
    /// kept for the relevance pass, plus three tensors of the largest one, the rules'
    /// temporaries; 4 bytes a value): `AUTO_BYTES / estimate`, clamped to `1..=AUTO_MAX`.
    /// Full-width C3D at 112x112 (about 0.4 GB a snippet) gets 1; the reproduction's 1/8-width
    /// model at 48x48 gets [`BatchSize::AUTO_MAX`].
    ///
    /// **Errors** if the input does not fit the network.
    pub fn resolve<B: Backend>(
        self,
        net: &Sequential<B>,
        input: [usize; 4],
    ) -> vidlrp_core::Result<usize> {
        match self {
            BatchSize::Fixed(n) => Ok(n.max(1)),
            BatchSize::Auto => {
                let shape = [&[1], &input[..]].concat();
                let sizes: Vec<usize> = (net.shapes(&shape)?.iter())
                    .map(|s| s.iter().product())
                    .collect();
                let largest = sizes.iter().copied().max().unwrap_or(0);
                let bytes = 4 * (sizes.iter().sum::<usize>() + 3 * largest);
                Ok((Self::AUTO_BYTES / bytes.max(1)).clamp(1, Self::AUTO_MAX))
            }
        }
    }
}

impl FromStr for BatchSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(BatchSize::Auto),
            _ => match s.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(BatchSize::Fixed(n)),
                _ => Err(format!(
                    "batch size {s:?}: expected auto or a whole number of at least 1"
                )),
            },
        }
    }
}

impl fmt::Display for BatchSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchSize::Auto => f.write_str("auto"),
            BatchSize::Fixed(n) => write!(f, "{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vidlrp_c3d::{init_weights, C3dSpec, Pool5};

    fn batch_of(spec: &C3dSpec, size: usize) -> usize {
        let be = vidlrp_cpu::Cpu::new(1).unwrap();
        let input = [3, 16, size, size];
        let (net, _) = vidlrp_c3d::build(&be, init_weights(spec, 0), Pool5::Port, input).unwrap();
        BatchSize::Auto.resolve(&net, input).unwrap()
    }

    #[test]
    fn auto_gives_full_c3d_one_snippet_and_the_small_model_the_most() {
        assert_eq!(batch_of(&C3dSpec::full(), 112), 1);
        let small = C3dSpec::scaled(0.125, 8, [16, 48, 48], Pool5::Port).unwrap();
        assert_eq!(batch_of(&small, 48), BatchSize::AUTO_MAX);
    }
}
