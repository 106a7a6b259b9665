//! Shared by the membership integration tests: delivering what one replica wrote to
//! others, as a relay would.
#![allow(dead_code, clippy::indexing_slicing)]

use clientful_core::membership::SpaceReplica;
use clientful_core::membership::space::Outgoing;

/// Takes `from`'s outbox, records its operation envelopes in `log`, and delivers
/// everything to each replica in `to` (welcomes only to the device they name).
pub fn exchange(reps: &mut [SpaceReplica], from: usize, to: &[usize], log: &mut Vec<Vec<u8>>) {
    let out = reps[from].drain_outbox();
    for o in &out {
        if let Outgoing::Envelope(e) = o {
            log.push(e.clone());
        }
    }
    for &t in to {
        if t == from {
            continue;
        }
        let dev = reps[t].identity().device_id();
        for o in &out {
            match o {
                Outgoing::Envelope(e) => {
                    reps[t].receive(e);
                }
                Outgoing::KeyMessage(k) => {
                    let _ = reps[t].receive_key_message(k);
                }
                Outgoing::Welcome { device_id, bytes } if *device_id == dev => {
                    let _ = reps[t].receive_welcome(bytes);
                }
                Outgoing::Welcome { .. } => {}
            }
        }
    }
}
