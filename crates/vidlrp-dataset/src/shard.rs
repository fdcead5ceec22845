//! [`Shard`]: the part `i` of `n` of a manifest one run takes.

use std::fmt;
use std::str::FromStr;

use crate::{DatasetError, Result};

/// Shard `index` of `count`: the items `k` with `k % count == index`.
///
/// ```
/// use vidlrp_dataset::Shard;
/// let s: Shard = "1/4".parse().unwrap();
/// assert!(s.contains(5) && !s.contains(6));
/// assert_eq!(s.to_string(), "1/4");
/// assert!("4/4".parse::<Shard>().is_err());
/// ```
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl Default for Shard {
    fn default() -> Self {
        Self::WHOLE
    }
}

impl Shard {
    /// The whole manifest: shard 0 of 1.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// **Errors** unless `count > 0` and `index < count`.
    pub fn new(index: usize, count: usize) -> Result<Self> {
        if count == 0 || index >= count {
            return Err(DatasetError::Shard(format!(
                "{index}/{count} is out of range (need 0 <= i < n)"
            )));
        }
        Ok(Self { index, count })
    }

    /// Whether item `k` belongs to this shard.
    pub fn contains(self, k: usize) -> bool {
        k % self.count == self.index
    }

    /// Number of the first `items` items in this shard.
    pub fn len_of(self, items: usize) -> usize {
        (items + self.count - 1 - self.index) / self.count
    }

    /// The shard a scheduler assigned through the environment: `SLURM_ARRAY_TASK_ID` and
    /// `SLURM_ARRAY_TASK_COUNT`, or `JOB_COMPLETION_INDEX` and `VIDLRP_SHARD_COUNT`
    /// (Kubernetes indexed jobs); `None` if neither is set.
    ///
    /// **Errors** if the variables are set but not numbers, or out of range.
    pub fn from_env() -> Result<Option<Self>> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// [`Shard::from_env`] over any variable lookup.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let num = |name: &str, v: String| {
            v.trim()
                .parse::<usize>()
                .map_err(|_| DatasetError::Shard(format!("{name}={v:?} is not a number")))
        };
        if let (Some(i), Some(n)) = (var("SLURM_ARRAY_TASK_ID"), var("SLURM_ARRAY_TASK_COUNT")) {
            return Self::new(
                num("SLURM_ARRAY_TASK_ID", i)?,
                num("SLURM_ARRAY_TASK_COUNT", n)?,
            )
            .map(Some);
        }
        if let Some(i) = var("JOB_COMPLETION_INDEX") {
            let n = var("VIDLRP_SHARD_COUNT").ok_or_else(|| {
                DatasetError::Shard(
                    "JOB_COMPLETION_INDEX is set but VIDLRP_SHARD_COUNT (the number of \
                     completions) is not"
                        .into(),
                )
            })?;
            return Self::new(
                num("JOB_COMPLETION_INDEX", i)?,
                num("VIDLRP_SHARD_COUNT", n)?,
            )
            .map(Some);
        }
        Ok(None)
    }
}

impl FromStr for Shard {
    type Err = DatasetError;

    /// `i/n`, e.g. `0/4`.
    fn from_str(s: &str) -> Result<Self> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| DatasetError::Shard(format!("{s:?}: write it as i/n, e.g. 0/4")))?;
        let num = |v: &str| {
            v.trim()
                .parse::<usize>()
                .map_err(|_| DatasetError::Shard(format!("{s:?}: {v:?} is not a number")))
        };
        Self::new(num(i)?, num(n)?)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_partition() {
        assert_eq!(
            "2/3".parse::<Shard>().unwrap(),
            Shard { index: 2, count: 3 }
        );
        for bad in ["3/3", "1/0", "x/2", "1", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        for n in 1..6 {
            let total: usize = (0..n).map(|i| Shard::new(i, n).unwrap().len_of(11)).sum();
            assert_eq!(total, 11);
            for k in 0..11 {
                assert_eq!(
                    (0..n)
                        .filter(|&i| Shard::new(i, n).unwrap().contains(k))
                        .count(),
                    1
                );
            }
            for i in 0..n {
                let s = Shard::new(i, n).unwrap();
                assert_eq!(s.len_of(11), (0..11).filter(|&k| s.contains(k)).count());
            }
        }
    }

    #[test]
    fn environment_variables() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|p| p.0 == k).map(|p| p.1.to_string())
        };
        assert_eq!(Shard::from_vars(env(&[])).unwrap(), None);
        let s = Shard::from_vars(env(&[
            ("SLURM_ARRAY_TASK_ID", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ]));
        assert_eq!(s.unwrap(), Some(Shard { index: 1, count: 3 }));
        let k = Shard::from_vars(env(&[
            ("JOB_COMPLETION_INDEX", "2"),
            ("VIDLRP_SHARD_COUNT", "4"),
        ]));
        assert_eq!(k.unwrap(), Some(Shard { index: 2, count: 4 }));
        assert!(Shard::from_vars(env(&[("JOB_COMPLETION_INDEX", "2")])).is_err());
        assert!(Shard::from_vars(env(&[
            ("SLURM_ARRAY_TASK_ID", "5"),
            ("SLURM_ARRAY_TASK_COUNT", "3")
        ]))
        .is_err());
    }
}
