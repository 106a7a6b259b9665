//! Helpers shared by the simulator's membership tests.
#![allow(dead_code, clippy::expect_used, clippy::indexing_slicing)]

use clientful_core::membership::{Role, Scope};
use clientful_sim::membership::MemberNet;

/// Creator A plus `names` users added as `role`, all settled and welcomed;
/// returns the network and the nodes (A first).
pub fn group(seed: u64, names: &[(&str, Role)]) -> (MemberNet, Vec<usize>) {
    let mut net = MemberNet::new(seed, "A");
    let mut idx = vec![0];
    for (name, role) in names {
        let (n, cert) = net.new_user(name);
        let user = net.user_key(n);
        net.nodes[0]
            .space_mut()
            .add_member(&mut net.crypto, &user, *role, &Scope::whole(), &[cert])
            .expect("add");
        idx.push(n);
        net.settle(&idx);
    }
    net.settle(&idx);
    (net, idx)
}
