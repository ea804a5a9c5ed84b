//! Topic mapping.
