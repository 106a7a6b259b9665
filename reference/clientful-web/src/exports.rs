//! The `wasm-bindgen` exports: the surface the TypeScript package imports.

use wasm_bindgen::prelude::*;

/// The version of this build.
#[wasm_bindgen]
pub fn version() -> String {
    crate::VERSION.to_owned()
}
