//! TODO(storage helper)
