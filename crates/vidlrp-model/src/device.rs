//! [`Device`]: where a model runs, by the names the CLI's `--device` and the Python module's
//! `device=` take.

use std::fmt;
use std::str::FromStr;

/// Where a model runs: `cpu`, `reference`, `cuda` or `cuda:N`.
///
/// ```
/// use vidlrp_model::Device;
/// assert_eq!("cuda:3".parse::<Device>(), Ok(Device::Cuda(3)));
/// assert_eq!(Device::Cuda(0).to_string(), "cuda:0");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// The fast CPU backend.
    #[default]
    Cpu,
    /// The reference backend in `f64`: plain loops, slow, the oracle.
    Reference,
    /// CUDA device `N` (`cuda` is `cuda:0`); needs a build with CUDA support.
    Cuda(usize),
}

impl FromStr for Device {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "reference" => Ok(Device::Reference),
            "cuda" => Ok(Device::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Device::Cuda)
                .ok_or_else(|| format!("{s:?}: expected cpu, reference, cuda or cuda:N")),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Reference => f.write_str("reference"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse() {
        assert_eq!("cpu".parse::<Device>(), Ok(Device::Cpu));
        assert_eq!("reference".parse::<Device>(), Ok(Device::Reference));
        assert_eq!("cuda".parse::<Device>(), Ok(Device::Cuda(0)));
        assert_eq!("cuda:3".parse::<Device>(), Ok(Device::Cuda(3)));
        assert!("gpu".parse::<Device>().is_err());
        assert!("cuda:x".parse::<Device>().is_err());
        assert_eq!(Device::Cuda(2).to_string(), "cuda:2");
    }
}
