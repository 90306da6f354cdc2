//! Chinese-first text primitives for luodi.
//!
//! This crate owns everything that turns bytes into clean, comparable text and nothing else:
//! encoding detection and decoding ([`encoding`]), Unicode and width normalization
//! ([`normalize`]), script detection and 繁↔简 conversion with phrase-level dictionaries
//! ([`script`]), word segmentation ([`segment`]) and sentence splitting ([`sentence`]).
//! It sits at the bottom of the workspace: it knows no documents, indexes or models, so every
//! layer above (ingestion, index, answering) folds text the same way and a query written in
//! 繁體 or full-width characters meets simplified, half-width documents.

pub mod abbrev;
pub mod encoding;
pub mod normalize;
pub mod script;
pub mod segment;
pub mod sentence;

pub use encoding::{
    decode, detect_mojibake, is_han, repair_mojibake, DecodeError, Decoded, Mojibake,
};
pub use normalize::{clean, fold_for_search, nfkc, to_half_width};
pub use script::{detect_script, to_simplified, to_traditional, Script, Variant};
pub use segment::Segmenter;
pub use sentence::split_sentences;
