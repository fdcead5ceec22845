//! Snippet frame indices: snippet frame `i` (`0..L`) is source frame `offset + i * step`.

/// What to do when a video is too short for `offset + (L - 1) * step`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShortPolicy {
    /// Do not sample it (the caller counts and names it).
    #[default]
    Skip,
    /// Repeat the last frame for the missing ones.
    Clamp,
}

impl std::str::FromStr for ShortPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "skip" => Ok(Self::Skip),
            "clamp" => Ok(Self::Clamp),
            other => Err(format!("unknown policy {other:?} (expected skip or clamp)")),
        }
    }
}

/// Length, offset and step of a snippet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnippetSpec {
    /// Frames per snippet `L` (16 for C3D).
    pub length: usize,
    /// First source frame.
    pub offset: usize,
    /// Source frames between snippet frames (`0` repeats one frame).
    pub step: usize,
}

impl Default for SnippetSpec {
    fn default() -> Self {
        Self {
            length: 16,
            offset: 0,
            step: 1,
        }
    }
}

/// Why no indices could be given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SampleError {
    /// The source has `available` frames but the snippet needs frame `needed`.
    TooShort {
        /// Last needed index.
        needed: usize,
        /// Frames in the source.
        available: usize,
    },
    /// Zero length, or an empty source under `clamp`.
    Invalid(String),
}

impl SnippetSpec {
    /// The source frame indices `offset + i * step`, `i = 0..L`, for a source of `total` frames.
    ///
    /// Under [`ShortPolicy::Clamp`] indices past the end become `total - 1`.
    ///
    /// ```
    /// use vidlrp_snippet::{ShortPolicy, SnippetSpec};
    /// let spec = SnippetSpec { length: 4, offset: 2, step: 3 };
    /// assert_eq!(spec.indices(20, ShortPolicy::Skip).unwrap(), vec![2, 5, 8, 11]);
    /// assert!(spec.indices(10, ShortPolicy::Skip).is_err()); // needs frame 11
    /// assert_eq!(spec.indices(10, ShortPolicy::Clamp).unwrap(), vec![2, 5, 8, 9]);
    /// ```
    pub fn indices(&self, total: usize, policy: ShortPolicy) -> Result<Vec<usize>, SampleError> {
        if self.length == 0 {
            return Err(SampleError::Invalid(
                "snippet length must be at least 1".into(),
            ));
        }
        if total == 0 {
            return Err(SampleError::TooShort {
                needed: self.offset,
                available: 0,
            });
        }
        let needed = self.offset + (self.length - 1) * self.step;
        if needed >= total && policy == ShortPolicy::Skip {
            return Err(SampleError::TooShort {
                needed,
                available: total,
            });
        }
        Ok((0..self.length)
            .map(|i| (self.offset + i * self.step).min(total - 1))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_follow_offset_and_step() {
        let s = SnippetSpec {
            length: 4,
            offset: 3,
            step: 2,
        };
        assert_eq!(s.indices(100, ShortPolicy::Skip).unwrap(), vec![3, 5, 7, 9]);
        let s = SnippetSpec {
            length: 3,
            offset: 5,
            step: 0,
        };
        assert_eq!(s.indices(6, ShortPolicy::Skip).unwrap(), vec![5, 5, 5]);
        let s = SnippetSpec {
            length: 4,
            offset: 2,
            step: 3,
        };
        assert_eq!(s.indices(12, ShortPolicy::Skip).unwrap(), vec![2, 5, 8, 11]);
        assert_eq!(
            s.indices(11, ShortPolicy::Skip),
            Err(SampleError::TooShort {
                needed: 11,
                available: 11
            })
        );
        assert_eq!(s.indices(9, ShortPolicy::Clamp).unwrap(), vec![2, 5, 8, 8]);
        assert!(s.indices(0, ShortPolicy::Clamp).is_err());
    }
}
