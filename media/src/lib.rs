//! Sans-IO audio core. See the crate README in ../DESIGN for the pipeline.
