//! Test helpers shared by the simulator, the conformance runner, the vector
//! generator and the CLI's integration tests; behind the `test-utils` feature.
//! Nothing here is part of the protocol: it builds inputs a Byzantine peer
//! could send, so that tests show every replica handles them.

pub mod forge;
