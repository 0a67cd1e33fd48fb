//! Roaring-bitmap indexes over the rows of a segment.
