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

/// A welcome (KEY-20) signed by node `from`'s device, naming the operation
/// that added it (`added_by`, the log's record when it is a member, else the
/// given fallback), sealed to `to` with `keys`.
pub fn signed_welcome(
    net: &mut MemberNet,
    from: usize,
    fallback_added_by: [u8; 32],
    to: &clientful_core::membership::epoch::Recipient,
    keys: &[clientful_core::keys::EpochKey],
) -> Vec<u8> {
    let sp = net.nodes[from].space();
    let me = sp.identity();
    let added_by = sp
        .state()
        .devices
        .get(&me.device_id())
        .map_or(fallback_added_by, |d| d.added_by);
    let signer = clientful_core::membership::epoch::WelcomeSigner {
        signing: &me.device.signing,
        certificate: &me.certificate,
        added_by,
    };
    let space_id = *sp.space_id();
    clientful_core::membership::epoch::welcome(&mut net.crypto, &space_id, &signer, to, keys)
        .expect("welcome")
}
